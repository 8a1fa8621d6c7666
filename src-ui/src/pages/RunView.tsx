// The run view: status, controls (with keyboard shortcuts), retry, the step timeline and the live
// console of one execution.

import { useQueryClient } from '@tanstack/react-query'
import { ArrowLeft, Check, FileDown, FileText, Pause, Play, RotateCw, Square, Zap } from 'lucide-react'
import { useCallback, useEffect, useMemo, useRef, useState, type ReactNode } from 'react'
import { Link, useNavigate, useParams } from 'react-router'
import { normalizeError } from '../api/errors'
import { keys, useControl, useExecution, useExecutions, useExportReport, useRetry, useSaveConsole, useVersion } from '../api/queries'
import { useRoleRefusal } from '../api/roles'
import type { ControlAction, Execution, ExecutionEvent } from '../api/types'
import { isFinished, isRetryable } from '../api/types'
import { ConnectionBanner } from '../components/ConnectionBanner'
import { Console } from '../components/Console'
import { ErrorBanner } from '../components/ErrorBanner'
import { Markdown } from '../components/Markdown'
import { Modal } from '../components/Modal'
import { StatusBadge } from '../components/StatusBadge'
import { formatBytes, formatDateTime, formatDuration, formatTime, shortId, spanMs } from '../util/format'
import { useNow } from '../util/hooks'
import { notifyWaiting } from '../util/notifications'
import type { CountdownSeen } from './countdown'
import { CONTROL_KEYS, controlAvailable, controlEnabled, isTypingTarget, shortcutAction, type ButtonAction, type ControlContext } from './runControls'
import { StepTimeline } from './StepTimeline'
import { firstUnfinishedStep, timelineRows } from './timeline'

const CONTROLS: { action: ButtonAction; label: string; icon: typeof Pause; className: string }[] = [
  { action: 'pause', label: 'Pause', icon: Pause, className: 'btn-secondary' },
  { action: 'resume', label: 'Resume', icon: Play, className: 'btn-secondary' },
  { action: 'stop', label: 'Stop', icon: Square, className: 'btn-danger' },
  { action: 'acknowledge', label: 'Acknowledge', icon: Check, className: 'btn-primary' },
]

/** Runs of a runbook searched for retries of the one shown, newest first. */
const RETRY_LOOKBACK = 100

export function RunView() {
  const { id = '' } = useParams()
  const execution = useExecution(id)
  if (execution.isPending) return <div className="page loading">Loading run…</div>
  if (execution.data === undefined) {
    return (
      <div className="page">
        <ErrorBanner error={execution.error} title="Could not load this run" />
      </div>
    )
  }
  // A failed refresh keeps the run and its controls on screen; a live run keeps polling.
  const refreshError = execution.isError ? (
    <ConnectionBanner
      error={execution.error}
      retrying={!isFinished(execution.data.status)}
      fetching={execution.isFetching}
      onRetry={() => void execution.refetch()}
    />
  ) : null
  // A new run (a retry) starts with fresh countdowns and console.
  return <RunDetail key={execution.data.id} execution={execution.data} refreshError={refreshError} />
}

function RunDuration({ execution }: { execution: Execution }) {
  // Ticks with the steps' durations (tenths of a second), so the run never shows less than its step.
  const now = useNow(!isFinished(execution.status), 250)
  const ms = spanMs(execution.started_at, execution.finished_at, now)
  return ms === null ? null : <span>{formatDuration(ms)}</span>
}

/** The console's size as the steps count it. */
function consoleBytes(execution: Execution): number {
  return (execution.steps ?? []).reduce((sum, step) => sum + (step.output_bytes ?? 0), 0)
}

function RunDetail({ execution, refreshError }: { execution: Execution; refreshError: ReactNode }) {
  const client = useQueryClient()
  const navigate = useNavigate()
  const version = useVersion(execution.runbook_id, execution.runbook_version)
  const control = useControl(execution.id)
  const retry = useRetry(execution.id)
  // Controlling and retrying a run need an operator.
  const operatorRefusal = useRoleRefusal('operator')
  const retryable = isRetryable(execution.status)
  // Retries are recent runs of the same runbook: the latest page of its history holds them.
  const history = useExecutions({ runbookId: execution.runbook_id, limit: RETRY_LOOKBACK }, { enabled: retryable })
  const retries = (history.data?.items ?? []).filter((run) => run.retry_of === execution.id)
  const liveRetry = retries.find((run) => !isFinished(run.status))
  const succeededRetry = retries.find((run) => run.status === 'succeeded')
  const [confirmStop, setConfirmStop] = useState(false)
  const [confirmRetry, setConfirmRetry] = useState(false)
  const [countdowns, setCountdowns] = useState<Record<string, CountdownSeen>>({})
  // A new status closes a stop question that no longer applies and retires a control's error
  // (the one sent at `clearedControlError`), which was about the state before: while the run
  // is live its controls now show what is possible. A run that ended keeps the error, which
  // says why the action did not happen (a stop refused because the run ended first).
  const [seenStatus, setSeenStatus] = useState(execution.status)
  const [clearedControlError, setClearedControlError] = useState<number | null>(null)
  if (execution.status !== seenStatus) {
    setSeenStatus(execution.status)
    if (!controlEnabled('stop', execution.status)) setConfirmStop(false)
    if (control.isError && !isFinished(execution.status)) setClearedControlError(control.submittedAt)
  }
  const finished = isFinished(execution.status)
  // An accepted stop leaves the run in its live status until its processes are gone; meanwhile
  // the engine refuses every other action.
  const stopAsked = control.variables?.action === 'stop' || control.variables?.action === 'kill'
  const [stopAccepted, setStopAccepted] = useState(false)
  if (!stopAccepted && control.isSuccess && stopAsked) setStopAccepted(true)
  // A live run refuses a stop only while one is under way (sent from elsewhere, or before this
  // view opened): it is stopping, and what is left is to wait or to kill.
  const stopUnderWay =
    control.isError && control.variables?.action === 'stop' && !finished && normalizeError(control.error).code === 'invalid_state'
  if (!stopAccepted && stopUnderWay) setStopAccepted(true)
  const controlError = control.isError && !stopUnderWay && control.submittedAt !== clearedControlError ? control.error : null
  const killAccepted = control.isSuccess && control.variables?.action === 'kill'
  // A stop accepted from anywhere (another window, a terminal, a colleague) is on the run itself.
  const stopRequest = finished ? null : (execution.stop_requested ?? null)
  const stopping = !finished && (stopAccepted || stopRequest !== null)
  const rows = useMemo(() => timelineRows(execution, version.data?.blocks), [execution, version.data])
  const name = execution.runbook_name ?? version.data?.name ?? 'Run'
  const waitingRow = rows.find((row) => row.step?.status === 'waiting')
  // What a stop gives the running command before SIGKILL, when its block says.
  const runningBlock = rows.find((row) => row.step?.status === 'running' || row.step?.status === 'paused')?.block
  const stopGrace = runningBlock?.kind === 'command' ? runningBlock.stop_grace_secs : undefined
  const waitingStep = waitingRow?.blockId ?? null
  const retryFrom = firstUnfinishedStep(execution, version.data?.blocks)

  // A step that starts waiting while the view is open raises a notification (in a browser that
  // allows them), once per wait; one waiting already when the view opened is on screen.
  const waitingKey = waitingRow ? `${execution.id}/${waitingRow.blockId}` : null
  const announcedWait = useRef(waitingKey)
  const versionPending = version.isPending
  useEffect(() => {
    if (waitingKey === announcedWait.current) return
    // The step's instructions come with the runbook's version: its notice waits for them.
    if (waitingRow !== undefined && versionPending) return
    announcedWait.current = waitingKey
    if (waitingRow === undefined) return
    const text = waitingRow.block?.kind === 'instruction' ? waitingRow.block.text : undefined
    notifyWaiting(execution.id, name, waitingRow.blockId, text)
  }, [waitingKey, waitingRow, execution.id, name, versionPending])

  const onEvent = useCallback(
    (event: ExecutionEvent) => {
      if (event.type === 'countdown') {
        const seen = { remainingMs: event.remaining_ms, totalMs: event.total_ms, paused: event.paused, receivedAt: Date.now() }
        setCountdowns((previous) => ({ ...previous, [event.block_id]: seen }))
        return
      }
      if (event.type !== 'output') void client.invalidateQueries({ queryKey: keys.execution(execution.id) })
      if (event.type === 'status') void client.invalidateQueries({ queryKey: keys.executions })
    },
    [client, execution.id],
  )

  const act = useCallback(
    (action: ControlAction) => {
      if (action === 'stop') setConfirmStop(true)
      else control.mutate({ action, blockId: action === 'acknowledge' ? (waitingStep ?? undefined) : undefined })
    },
    [control, setConfirmStop, waitingStep],
  )

  // Keyboard shortcuts, unless the key is typed into a field or a dialog is open.
  const refused = operatorRefusal !== null
  const controls: ControlContext = { status: execution.status, stopping, waitingStep }
  const shortcut = useRef({ controls, act, busy: control.isPending, dialog: confirmStop, refused })
  useEffect(() => {
    shortcut.current = { controls: { status: execution.status, stopping, waitingStep }, act, busy: control.isPending, dialog: confirmStop, refused }
  }, [execution.status, stopping, waitingStep, act, control.isPending, confirmStop, refused])
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.ctrlKey || e.metaKey || e.altKey || e.repeat || isTypingTarget(e.target)) return
      const { controls: now, act: run, busy, dialog, refused: notAllowed } = shortcut.current
      if (notAllowed || dialog || busy || document.querySelector('[role="dialog"]')) return
      const action = shortcutAction(e.key.toLowerCase(), now.status)
      if (!action || !controlAvailable(action, now)) return
      e.preventDefault()
      run(action)
    }
    window.addEventListener('keydown', onKey)
    return () => window.removeEventListener('keydown', onKey)
  }, [])

  const startRetry = () => retry.mutate(undefined, { onSuccess: (next) => navigate(`/executions/${next.id}`) })
  // Running the remaining steps again after a retry already did them deserves a second thought.
  const askRetry = () => (succeededRetry ? setConfirmRetry(true) : startRetry())
  const retryError = retry.error ? normalizeError(retry.error) : null

  const exportReport = useExportReport(execution.id)
  const exported = exportReport.data
  const saveLog = useSaveConsole(execution.id)
  const savedLog = saveLog.data

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
            <RunDuration execution={execution} />
            {execution.retry_of && (
              <Link to={`/executions/${execution.retry_of}`} className="retry-link" data-testid="retry-of">
                <RotateCw size={12} aria-hidden /> retry of <span className="mono">{shortId(execution.retry_of)}</span>
                {execution.retry_from && (
                  <>
                    {' '}
                    from <span className="mono">{execution.retry_from}</span>
                  </>
                )}
              </Link>
            )}
            {retries.map((run) => (
              <Link key={run.id} to={`/executions/${run.id}`} className="retry-link" data-testid="retried-as">
                <RotateCw size={12} aria-hidden /> retried as <span className="mono">{shortId(run.id)}</span>{' '}
                <StatusBadge status={run.status} />
              </Link>
            ))}
            {stopRequest && (
              <span className="stop-requested" data-testid="stop-requested" title={formatDateTime(stopRequest.at)}>
                <Square size={12} aria-hidden /> stop requested by {stopRequest.by} at {formatTime(stopRequest.at)}
              </span>
            )}
            {Object.entries(execution.params ?? {}).map(([key, value]) => (
              <span key={key} className="chip chip-param">
                {key}={String(value)}
              </span>
            ))}
          </div>
        </div>
        <div className="page-actions controls" role="group" aria-label="Run controls">
          <button
            type="button"
            className="btn btn-ghost"
            disabled={exportReport.isPending}
            title="Save this run as a Markdown report for its postmortem: summary, steps and console"
            onClick={() => exportReport.mutate()}
          >
            <FileDown size={16} aria-hidden /> {exportReport.isPending ? 'Exporting…' : 'Export report'}
          </button>
          <button
            type="button"
            className="btn btn-ghost"
            disabled={saveLog.isPending}
            title={
              finished
                ? 'Save the whole console as a plain-text log file'
                : 'Save the console so far as a plain-text log file'
            }
            onClick={() => saveLog.mutate()}
          >
            <FileText size={16} aria-hidden /> {saveLog.isPending ? 'Saving…' : 'Save console'}
          </button>
          {retryable && (
            <button
              type="button"
              className="btn btn-primary"
              disabled={retry.isPending || liveRetry !== undefined || refused}
              title={
                operatorRefusal ??
                (liveRetry
                  ? `A retry of this run is ${liveRetry.status}: ${shortId(liveRetry.id)}`
                  : retryFrom
                    ? `Start a new run that reuses the steps before “${retryFrom}” and runs again from there`
                    : undefined)
              }
              onClick={askRetry}
            >
              <RotateCw size={16} aria-hidden /> {retry.isPending ? 'Retrying…' : 'Retry from failed step'}
            </button>
          )}
          {CONTROLS.map(({ action, label, icon: Icon, className }) => (
            <button
              key={action}
              type="button"
              className={`btn ${className}`}
              disabled={!controlAvailable(action, controls) || control.isPending || refused}
              aria-keyshortcuts={refused ? undefined : CONTROL_KEYS[action]}
              title={
                operatorRefusal ??
                (stopping ? 'Stop requested: the run ends once its processes are gone' : `${label} (${CONTROL_KEYS[action].toUpperCase()})`)
              }
              onClick={() => act(action)}
            >
              <Icon size={16} aria-hidden /> {action === 'stop' && stopping ? 'Stopping…' : label}
              <kbd className="kbd" aria-hidden>
                {CONTROL_KEYS[action].toUpperCase()}
              </kbd>
            </button>
          ))}
          {controlAvailable('kill', controls) && (
            <button
              type="button"
              className="btn btn-danger"
              disabled={control.isPending || refused || killAccepted}
              title={operatorRefusal ?? 'Kill the step’s processes now (SIGKILL) instead of waiting out their grace period'}
              onClick={() => control.mutate({ action: 'kill' })}
            >
              <Zap size={16} aria-hidden /> {killAccepted ? 'Killing…' : 'Kill now'}
            </button>
          )}
        </div>
      </header>
      {refreshError}
      {controlError && (
        <ErrorBanner error={controlError} title={normalizeError(controlError).code === 'invalid_state' ? 'Not possible right now' : 'The action failed'} />
      )}
      {retryError && (
        <ErrorBanner error={retryError} title="The retry did not start" />
      )}
      {exportReport.error && <ErrorBanner error={exportReport.error} title="The report could not be exported" />}
      {exported && (
        <SavedNotice
          testId="export-notice"
          icon={<FileDown size={18} aria-hidden className="banner-icon" />}
          what="Report"
          saved={exported}
          extra={exported.truncated && ' (its console is cut at 16 MiB; Save console saves all of it)'}
        />
      )}
      {saveLog.error && <ErrorBanner error={saveLog.error} title="The console could not be saved" />}
      {savedLog && (
        <SavedNotice
          testId="console-notice"
          icon={<FileText size={18} aria-hidden className="banner-icon" />}
          what="Console"
          saved={savedLog}
          extra={savedLog.path && savedLog.bytes !== null && ` (${formatBytes(savedLog.bytes)})`}
        />
      )}
      {waitingRow && (
        <div className="banner banner-waiting" role="status">
          <div className="banner-body">
            {refused ? (
              // This user cannot acknowledge: the run waits for someone who can.
              <strong>Step “{waitingRow.blockId}” waits for someone with the operator role or higher to acknowledge it.</strong>
            ) : (
              <>
                <strong>Step “{waitingRow.blockId}” waits for you.</strong> Do what it says, then press Acknowledge (A).
              </>
            )}
            {waitingRow.block?.kind === 'instruction' && waitingRow.block.text && <Markdown text={waitingRow.block.text} />}
          </div>
        </div>
      )}
      <div className="run-layout">
        <StepTimeline rows={rows} countdowns={countdowns} />
        <Console executionId={execution.id} finished={finished} onEvent={onEvent} initialBytes={consoleBytes(execution)} />
      </div>
      {confirmRetry && succeededRetry && (
        <Modal
          title="Retry this run again?"
          onClose={() => setConfirmRetry(false)}
          footer={
            <>
              <button type="button" className="btn btn-ghost" data-autofocus onClick={() => setConfirmRetry(false)}>
                Cancel
              </button>
              <button
                type="button"
                className="btn btn-primary"
                disabled={retry.isPending}
                onClick={() => {
                  setConfirmRetry(false)
                  startRetry()
                }}
              >
                <RotateCw size={16} aria-hidden /> Retry again
              </button>
            </>
          }
        >
          <p>
            This run was retried already, and{' '}
            <Link to={`/executions/${succeededRetry.id}`} className="mono">
              {shortId(succeededRetry.id)}
            </Link>{' '}
            succeeded. Retrying again runs the steps from “{retryFrom ?? 'the first unfinished step'}” once more.
          </p>
        </Modal>
      )}
      {confirmStop && (
        <Modal
          title="Stop this run?"
          onClose={() => setConfirmStop(false)}
          footer={
            <>
              <button type="button" className="btn btn-ghost" onClick={() => setConfirmStop(false)}>
                Cancel
              </button>
              <button
                type="button"
                className="btn btn-secondary"
                disabled={control.isPending}
                title="SIGKILL at once, without the grace period"
                onClick={() => {
                  setConfirmStop(false)
                  control.mutate({ action: 'kill' })
                }}
              >
                <Zap size={16} aria-hidden /> Kill at once
              </button>
              <button
                type="button"
                className="btn btn-danger"
                data-autofocus
                disabled={control.isPending}
                onClick={() => {
                  setConfirmStop(false)
                  control.mutate({ action: 'stop' })
                }}
              >
                <Square size={16} aria-hidden /> Stop run
              </button>
            </>
          }
        >
          <p>
            The running step’s whole process tree is terminated (SIGTERM, then SIGKILL after{' '}
            {typeof stopGrace === 'number' ? `its grace period of ${stopGrace} s` : 'a grace period'}) and the steps not reached
            yet are skipped.
          </p>
          <p className="muted">A stopped run can be retried from the step it stopped at.</p>
        </Modal>
      )}
    </div>
  )
}

/** Where a saved file went: its path on the desktop, the download's name in a browser. */
function SavedNotice({
  testId,
  icon,
  what,
  saved,
  extra,
}: {
  testId: string
  icon: ReactNode
  what: string
  saved: { path: string | null; fileName: string }
  extra?: ReactNode
}) {
  return (
    <div className="banner banner-info" role="status" data-testid={testId}>
      {icon}
      <div className="banner-body">
        {saved.path ? (
          <>
            {what} saved to <span className="mono">{saved.path}</span>
          </>
        ) : (
          <>
            {what} downloaded as <span className="mono">{saved.fileName}</span>
          </>
        )}
        {extra}
      </div>
    </div>
  )
}
