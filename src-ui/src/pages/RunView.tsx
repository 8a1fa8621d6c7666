// The run view: status, controls, the step timeline and the live console of one execution.

import { useQueryClient } from '@tanstack/react-query'
import { ArrowLeft, Check, Pause, Play, Square } from 'lucide-react'
import { useCallback, useMemo } from 'react'
import { Link, useParams } from 'react-router'
import { normalizeError } from '../api/errors'
import { keys, useControl, useExecution, useVersion } from '../api/queries'
import type { ControlAction, Execution, ExecutionEvent, ExecutionStatus } from '../api/types'
import { isFinished } from '../api/types'
import { Console } from '../components/Console'
import { ErrorBanner } from '../components/ErrorBanner'
import { KindIcon } from '../components/KindIcon'
import { Markdown } from '../components/Markdown'
import { StatusBadge } from '../components/StatusBadge'
import { BLOCK_LABELS } from '../editor/draft'
import { formatDateTime, formatDuration, spanMs } from '../util/format'
import { useNow } from '../util/hooks'
import { timelineRows } from './timeline'

const CONTROLS: { action: ControlAction; label: string; icon: typeof Pause; enabledIn: ExecutionStatus[] }[] = [
  { action: 'pause', label: 'Pause', icon: Pause, enabledIn: ['running'] },
  { action: 'resume', label: 'Resume', icon: Play, enabledIn: ['paused'] },
  { action: 'stop', label: 'Stop', icon: Square, enabledIn: ['queued', 'running', 'paused', 'waiting'] },
  { action: 'acknowledge', label: 'Acknowledge', icon: Check, enabledIn: ['waiting'] },
]

export function RunView() {
  const { id = '' } = useParams()
  const execution = useExecution(id)
  if (execution.isPending) return <div className="page loading">Loading run…</div>
  if (execution.isError) {
    return (
      <div className="page">
        <ErrorBanner error={execution.error} title="Could not load this run" />
      </div>
    )
  }
  return <RunDetail execution={execution.data} />
}

function RunDetail({ execution }: { execution: Execution }) {
  const client = useQueryClient()
  const version = useVersion(execution.runbook_id, execution.runbook_version)
  const control = useControl(execution.id)
  const finished = isFinished(execution.status)
  const now = useNow(!finished, 1000)
  const rows = useMemo(() => timelineRows(execution, version.data?.blocks), [execution, version.data])
  const name = execution.runbook_name ?? version.data?.name ?? 'Run'
  const waitingRow = rows.find((row) => row.step?.status === 'waiting')
  const runDuration = spanMs(execution.started_at, execution.finished_at, now)

  const onEvent = useCallback(
    (event: ExecutionEvent) => {
      if (event.type !== 'output') void client.invalidateQueries({ queryKey: keys.execution(execution.id) })
      if (event.type === 'status') void client.invalidateQueries({ queryKey: keys.executions })
    },
    [client, execution.id],
  )

  return (
    <div className="page run-page">
      <header className="page-header">
        <div className="page-title-block">
          <Link to={`/runbooks/${execution.runbook_id}`} className="back-link">
            <ArrowLeft size={14} aria-hidden /> Runbook
          </Link>
          <div className="title-row">
            <h1 className="page-title">{name}</h1>
            <StatusBadge status={execution.status} testId="execution-status" />
          </div>
          <div className="page-meta">
            <span>Run by {execution.started_by}</span>
            <span title={formatDateTime(execution.started_at ?? execution.created_at)}>
              {formatDateTime(execution.started_at ?? execution.created_at)}
            </span>
            <span className="chip chip-version">v{execution.runbook_version}</span>
            {runDuration !== null && <span>{formatDuration(runDuration)}</span>}
            {Object.entries(execution.params ?? {}).map(([key, value]) => (
              <span key={key} className="chip chip-param">
                {key}={String(value)}
              </span>
            ))}
          </div>
        </div>
        <div className="page-actions controls" role="group" aria-label="Run controls">
          {CONTROLS.map(({ action, label, icon: Icon, enabledIn }) => (
            <button
              key={action}
              type="button"
              className={`btn ${action === 'stop' ? 'btn-danger' : action === 'acknowledge' ? 'btn-primary' : 'btn-secondary'}`}
              disabled={!enabledIn.includes(execution.status) || control.isPending}
              onClick={() => control.mutate(action)}
            >
              <Icon size={16} aria-hidden /> {label}
            </button>
          ))}
        </div>
      </header>
      {control.isError && <ErrorBanner error={control.error} title={normalizeError(control.error).code === 'invalid_state' ? 'Not possible right now' : 'The action failed'} />}
      {waitingRow && (
        <div className="banner banner-waiting" role="status">
          <div className="banner-body">
            <strong>Step “{waitingRow.blockId}” waits for you.</strong> Do what it says, then press Acknowledge.
            {waitingRow.block?.kind === 'instruction' && waitingRow.block.text && <Markdown text={waitingRow.block.text} />}
          </div>
        </div>
      )}
      <div className="run-layout">
        <ol className="timeline" aria-label="Steps">
          {rows.length === 0 && <li className="muted">Waiting for the run to start…</li>}
          {rows.map((row) => {
            const status = row.step?.status ?? 'pending'
            const duration = spanMs(row.step?.started_at, row.step?.finished_at, now)
            return (
              <li key={row.blockId} className={`step step-${status}`} data-testid={`step-${row.blockId}`}>
                <span className="step-rail" aria-hidden />
                <div className="step-main">
                  <div className="step-title">
                    {row.block && <KindIcon kind={row.block.kind} size={14} />}
                    <span className="step-id">{row.blockId}</span>
                    <span className="spacer" />
                    <StatusBadge status={status} />
                  </div>
                  <div className="step-meta">
                    {row.block && <span>{BLOCK_LABELS[row.block.kind]}</span>}
                    {duration !== null && <span>{formatDuration(duration)}</span>}
                    {row.step?.exit_code !== null && row.step?.exit_code !== undefined && <span>exit {row.step.exit_code}</span>}
                    {row.step?.http_status && <span>HTTP {row.step.http_status}</span>}
                  </div>
                  {row.step?.error && <div className="step-error">{row.step.error}</div>}
                </div>
              </li>
            )
          })}
        </ol>
        <Console executionId={execution.id} finished={finished} onEvent={onEvent} />
      </div>
    </div>
  )
}
