// A table of runs: status, who started them, when, which version and how long they took.

import { Link } from 'react-router'
import { useExecutions } from '../api/queries'
import type { Execution, ExecutionStatus } from '../api/types'
import { ErrorBanner } from '../components/ErrorBanner'
import { StatusBadge } from '../components/StatusBadge'
import { formatDateTime, formatDuration, formatRelative, spanMs } from '../util/format'

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
        </tr>
      </thead>
      <tbody>
        {executions.map((execution) => (
          <tr key={execution.id} data-testid={`execution-${execution.id}`}>
            <td>
              <Link to={`/executions/${execution.id}`} className="row-link" aria-label={`Open run ${execution.id}`}>
                <StatusBadge status={execution.status} />
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
            <td>{execution.finished_at ? formatDuration(spanMs(execution.started_at, execution.finished_at, 0)) : <span className="muted">{execution.started_at ? 'running…' : '—'}</span>}</td>
          </tr>
        ))}
      </tbody>
    </table>
  )
}

export function RunsTab({ runbookId, status }: { runbookId: string; status?: ExecutionStatus }) {
  const executions = useExecutions(runbookId, status)
  if (executions.isPending) return <div className="loading">Loading runs…</div>
  if (executions.isError) return <ErrorBanner error={executions.error} title="Could not load the runs" />
  if (executions.data.items.length === 0) {
    return <div className="empty-card">No runs yet. Press Run to start one.</div>
  }
  return (
    <div className="card card-flush">
      <ExecutionTable executions={executions.data.items} />
    </div>
  )
}
