// Tables of runs: status, who started them, when, which version, how long they took and which
// run they retry; the runbook's Runs tab pages through its whole history.

import { ChevronLeft, ChevronRight, RotateCw } from 'lucide-react'
import { useState } from 'react'
import { Link } from 'react-router'
import { useExecutions } from '../api/queries'
import type { Execution, ExecutionStatus } from '../api/types'
import { isFinished } from '../api/types'
import { ErrorBanner } from '../components/ErrorBanner'
import { StatusBadge } from '../components/StatusBadge'
import { formatDateTime, formatDuration, formatRelative, shortId, spanMs } from '../util/format'
import { useNow } from '../util/hooks'

export const RUNS_PAGE_SIZE = 20

function RunDuration({ execution }: { execution: Execution }) {
  const live = !isFinished(execution.status) && execution.started_at !== null
  const now = useNow(live, 1000)
  const ms = spanMs(execution.started_at, execution.finished_at, now)
  if (ms === null) return <span className="muted">—</span>
  return <span className={live ? 'live-duration' : undefined}>{formatDuration(ms)}</span>
}

export function ExecutionTable({ executions, showRunbook }: { executions: Execution[]; showRunbook?: boolean }) {
  return (
    <table className="table">
      <thead>
        <tr>
          <th>Status</th>
          {showRunbook && <th>Runbook</th>}
          <th>Started by</th>
          <th>Started</th>
          <th>Version</th>
          <th>Duration</th>
          <th>Retry of</th>
        </tr>
      </thead>
      <tbody>
        {executions.map((execution) => {
          // A live run whose stop was accepted winds down: say so, and who asked.
          const stop = isFinished(execution.status) ? null : (execution.stop_requested ?? null)
          return (
            <tr key={execution.id} data-testid={`execution-${execution.id}`}>
              <td>
                {/* The name says the status too: a label replaces the badge it holds for a screen reader. */}
                <Link
                  to={`/executions/${execution.id}`}
                  className="row-link"
                  aria-label={`Open run ${execution.id}, ${execution.status}${stop ? `, stop requested by ${stop.by}` : ''}`}
                >
                  <StatusBadge status={execution.status} />
                  {stop && (
                    <span className="stop-requested" title={`Stop requested by ${stop.by} at ${formatDateTime(stop.at)}`}>
                      stopping
                    </span>
                  )}
                </Link>
              </td>
              {showRunbook && (
                <td>
                  <Link to={`/executions/${execution.id}`}>{execution.runbook_name ?? execution.runbook_id.slice(0, 8)}</Link>
                </td>
              )}
              <td>{execution.started_by}</td>
              <td title={formatDateTime(execution.started_at ?? execution.created_at)}>
                <Link to={`/executions/${execution.id}`}>{formatRelative(execution.started_at ?? execution.created_at)}</Link>
              </td>
              <td className="mono">v{execution.runbook_version}</td>
              <td>
                <RunDuration execution={execution} />
              </td>
              <td>
                {execution.retry_of ? (
                  <Link to={`/executions/${execution.retry_of}`} className="retry-link" title={`Retry of run ${execution.retry_of}`}>
                    <RotateCw size={12} aria-hidden /> <span className="mono">{shortId(execution.retry_of)}</span>
                  </Link>
                ) : (
                  <span className="muted">—</span>
                )}
              </td>
            </tr>
          )
        })}
      </tbody>
    </table>
  )
}

interface PagerProps {
  offset: number
  limit: number
  total: number
  shown: number
  onOffset: (offset: number) => void
}

/** "21–40 of 75" with previous / next page buttons. */
export function Pager({ offset, limit, total, shown, onOffset }: PagerProps) {
  if (total <= limit && offset === 0) return null
  const pages = Math.max(1, Math.ceil(total / limit))
  const page = Math.floor(offset / limit) + 1
  return (
    <nav className="pager" aria-label="Pages">
      <span className="pager-range">
        {shown === 0 ? 0 : offset + 1}–{offset + shown} of {total}
      </span>
      <span className="spacer" />
      <button type="button" className="btn btn-ghost btn-sm" disabled={offset === 0} onClick={() => onOffset(Math.max(0, offset - limit))}>
        <ChevronLeft size={14} aria-hidden /> Previous
      </button>
      <span className="pager-page">
        Page {page} of {pages}
      </span>
      <button type="button" className="btn btn-ghost btn-sm" disabled={offset + limit >= total} onClick={() => onOffset(offset + limit)}>
        Next <ChevronRight size={14} aria-hidden />
      </button>
    </nav>
  )
}

interface PagedRunsProps {
  runbookId?: string
  status?: ExecutionStatus
  showRunbook?: boolean
  emptyText: string
}

/** One page of runs at a time, newest first, with the pager under it. */
export function PagedRuns({ runbookId, status, showRunbook, emptyText }: PagedRunsProps) {
  const [offset, setOffset] = useState(0)
  // A new filter starts again on the first page.
  const filterKey = `${runbookId ?? ''}|${status ?? ''}`
  const [seenFilter, setSeenFilter] = useState(filterKey)
  if (filterKey !== seenFilter) {
    setSeenFilter(filterKey)
    setOffset(0)
  }
  const executions = useExecutions({ runbookId, status, limit: RUNS_PAGE_SIZE, offset })
  if (executions.isPending) return <div className="loading">Loading runs…</div>
  if (executions.isError) return <ErrorBanner error={executions.error} title="Could not load the runs" />
  const { items, total } = executions.data
  if (items.length === 0 && offset === 0) return <div className="empty-card">{emptyText}</div>
  return (
    <div className="card card-flush">
      <ExecutionTable executions={items} showRunbook={showRunbook} />
      <Pager offset={offset} limit={RUNS_PAGE_SIZE} total={total ?? items.length} shown={items.length} onOffset={setOffset} />
    </div>
  )
}

export function RunsTab({ runbookId }: { runbookId: string }) {
  return <PagedRuns runbookId={runbookId} emptyText="No runs yet. Press Run to start one." />
}
