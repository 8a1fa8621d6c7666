// The coloured status pill used for runs and steps.

import { CircleCheck, CircleDashed, CircleOff, CirclePause, CircleX, Hand, Loader, OctagonX, TriangleAlert } from 'lucide-react'
import type { ExecutionStatus, StepStatus } from '../api/types'

const ICONS: Record<ExecutionStatus | StepStatus, typeof CircleCheck> = {
  queued: CircleDashed,
  pending: CircleDashed,
  running: Loader,
  paused: CirclePause,
  waiting: Hand,
  succeeded: CircleCheck,
  failed: CircleX,
  stopped: OctagonX,
  skipped: CircleOff,
  interrupted: TriangleAlert,
}

export function StatusBadge({ status, testId }: { status: ExecutionStatus | StepStatus; testId?: string }) {
  const Icon = ICONS[status] ?? CircleDashed
  return (
    <span className={`badge badge-${status}`} data-testid={testId}>
      <Icon size={13} aria-hidden className={status === 'running' ? 'spin' : undefined} />
      {status}
    </span>
  )
}
