// The step timeline of a run: every step in document order (branch steps indented), with its
// status, live duration, exit code or HTTP status, error, the branch a conditional took, the
// outputs it published, an api_call's response, a timer's countdown and whether a retry reused it.

import { CornerDownRight, RotateCw } from 'lucide-react'
import { useState } from 'react'
import type { StepResult, TimerBlock } from '../api/types'
import { KindIcon } from '../components/KindIcon'
import { StatusBadge } from '../components/StatusBadge'
import { BLOCK_LABELS } from '../editor/draft'
import { formatBytes, formatDuration, spanMs } from '../util/format'
import { useNow } from '../util/hooks'
import { formatCountdown, observeCountdown, remainingAt, type CountdownSeen, type CountdownState } from './countdown'
import type { TimelineRow } from './timeline'

interface StepTimelineProps {
  rows: TimelineRow[]
  /** The latest countdown event per timer block. */
  countdowns: Record<string, CountdownSeen>
}

export function StepTimeline({ rows, countdowns }: StepTimelineProps) {
  return (
    <ol className="timeline" aria-label="Steps">
      {rows.length === 0 && <li className="muted">Waiting for the run to start…</li>}
      {rows.map((row) => (
        <StepRow key={row.blockId} row={row} countdown={countdowns[row.blockId] ?? null} />
      ))}
    </ol>
  )
}

function StepRow({ row, countdown }: { row: TimelineRow; countdown: CountdownSeen | null }) {
  const { step, block } = row
  const status = step?.status ?? 'pending'
  const live = status === 'running' || status === 'paused' || status === 'waiting'
  return (
    <li
      className={`step step-${status}${row.depth > 0 ? ' step-nested' : ''}${step?.reused ? ' step-reused' : ''}`}
      style={row.depth > 0 ? { paddingLeft: 6 + row.depth * 16 } : undefined}
      data-testid={`step-${row.blockId}`}
    >
      <span className="step-rail" aria-hidden />
      <div className="step-main">
        {row.parent && (
          <div className="step-parent">
            <CornerDownRight size={11} aria-hidden /> {row.parent.branch} of {row.parent.id}
          </div>
        )}
        <div className="step-title">
          {block && <KindIcon kind={block.kind} size={14} />}
          <span className="step-id">{row.blockId}</span>
          <span className="spacer" />
          <StatusBadge status={status} />
        </div>
        <div className="step-meta">
          {block && <span>{BLOCK_LABELS[block.kind]}</span>}
          {step?.reused && (
            <span className="step-reused-mark" title="Copied from the run this one retries">
              <RotateCw size={11} aria-hidden /> reused
            </span>
          )}
          {step?.started_at && <StepDuration step={step} live={live} />}
          {step?.exit_code !== null && step?.exit_code !== undefined && <span>exit {step.exit_code}</span>}
          {(step?.http_status ?? step?.response?.status) && <span>HTTP {step?.http_status ?? step?.response?.status}</span>}
          {step?.branch && (
            <span className="step-branch" data-testid={`branch-${row.blockId}`}>
              took <strong>{step.branch}</strong>
            </span>
          )}
        </div>
        {block?.kind === 'timer' && step && live && (
          <TimerCountdown block={block} step={step} countdown={countdown} />
        )}
        {step?.error && <div className="step-error">{step.error}</div>}
        {step?.outputs && Object.keys(step.outputs).length > 0 && <StepOutputs outputs={step.outputs} />}
        {step?.response && <ResponseDetail response={step.response} />}
      </div>
    </li>
  )
}

/** finished_at − started_at, ticking while the step runs. */
function StepDuration({ step, live }: { step: StepResult; live: boolean }) {
  const now = useNow(live && !step.finished_at, 250)
  const ms = spanMs(step.started_at, step.finished_at, now)
  if (ms === null) return null
  return <span className="step-duration">{formatDuration(ms)}</span>
}

function TimerCountdown({ block, step, countdown }: { block: TimerBlock; step: StepResult; countdown: CountdownSeen | null }) {
  const statusPaused = step.status === 'paused'
  // The clock keeps ticking while paused, so a resume counts on from the moment it is seen.
  const now = useNow(true, 250)
  const [state, setState] = useState<CountdownState | null>(null)
  const startedAt = step.started_at ? Date.parse(step.started_at) : null
  const totalMs = countdown?.totalMs ?? block.seconds * 1000
  // Folded in during render, so a pause freezes the value exactly where this render found it.
  const current = observeCountdown(state, { totalMs, startedAt: Number.isNaN(startedAt) ? null : startedAt, statusPaused, event: countdown }, now)
  if (current !== state) setState(current)
  if (!current) return null
  const remaining = remainingAt(current, now)
  const fraction = totalMs > 0 ? Math.min(1, Math.max(0, 1 - remaining / totalMs)) : 1
  return (
    <div className={`countdown${current.paused ? ' is-paused' : ''}`}>
      <span className="countdown-value" data-testid={`countdown-${step.block_id}`} aria-live="off">
        {formatCountdown(remaining)}
      </span>
      <span className="countdown-label">{current.paused ? 'left · frozen while paused' : 'left'}</span>
      <span className="countdown-bar" aria-hidden>
        <span style={{ width: `${fraction * 100}%` }} />
      </span>
    </div>
  )
}

function StepOutputs({ outputs }: { outputs: Record<string, string> }) {
  return (
    <div className="step-outputs" aria-label="Outputs">
      {Object.entries(outputs).map(([key, value]) => (
        <span key={key} className="chip chip-output" title={`${key}=${value}`}>
          <span className="mono">{key}</span>=<span className="mono">{value.length > 40 ? `${value.slice(0, 40)}…` : value}</span>
        </span>
      ))}
    </div>
  )
}

function ResponseDetail({ response }: { response: NonNullable<StepResult['response']> }) {
  const headers = Object.entries(response.headers ?? {})
  return (
    <details className="step-response">
      <summary>
        Response {response.status} · {formatBytes(response.body_bytes ?? response.body.length)}
        {response.truncated && ' (body cut)'}
      </summary>
      {headers.length > 0 && (
        <pre className="step-response-headers">{headers.map(([name, value]) => `${name}: ${value}`).join('\n')}</pre>
      )}
      <pre className="step-response-body">{response.body || '(empty body)'}</pre>
    </details>
  )
}
