// Which run controls fit which state, and the keyboard shortcuts that trigger them.

import type { ControlAction, ExecutionStatus } from '../api/types'

export const CONTROL_STATES: Record<ControlAction, readonly ExecutionStatus[]> = {
  // The engine takes a pause while the run is still queued: it holds once the run starts.
  pause: ['queued', 'running'],
  resume: ['paused'],
  stop: ['queued', 'running', 'paused', 'waiting'],
  acknowledge: ['waiting'],
  kill: ['queued', 'running', 'paused', 'waiting'],
}

/** The controls with a button and a key of their own; a kill is offered with a stop. */
export type ButtonAction = Exclude<ControlAction, 'kill'>

/** The key shown on each control's button. */
export const CONTROL_KEYS: Record<ButtonAction, string> = {
  pause: 'p',
  resume: 'p',
  stop: 's',
  acknowledge: 'a',
}

export function controlEnabled(action: ControlAction, status: ExecutionStatus): boolean {
  return CONTROL_STATES[action].includes(status)
}

/** What the view knows besides the run's status that decides whether a control can work. */
export interface ControlContext {
  status: ExecutionStatus
  /** A stop was accepted: the run winds down (still showing its last live status) and takes no other action. */
  stopping: boolean
  /** The step the run waits at, as far as the view has seen it. */
  waitingStep: string | null
}

/**
 * True when the server would take `action` now. An acknowledgement names the step it answers,
 * so it waits until the view knows which step that is (the status can arrive before the step).
 */
export function controlAvailable(action: ControlAction, { status, stopping, waitingStep }: ControlContext): boolean {
  // A kill cuts short the grace period of a stop under way; before one, the stop dialog offers it.
  if (action === 'kill') return stopping && controlEnabled(action, status)
  if (stopping || !controlEnabled(action, status)) return false
  return action !== 'acknowledge' || waitingStep !== null
}

/** The control a key press asks for in this state, or null: `p` pauses or resumes, `s` stops, `a` acknowledges. */
export function shortcutAction(key: string, status: ExecutionStatus): ControlAction | null {
  const candidates: ControlAction[] =
    key === 'p' ? ['pause', 'resume'] : key === 's' ? ['stop'] : key === 'a' ? ['acknowledge'] : []
  return candidates.find((action) => controlEnabled(action, status)) ?? null
}

/** True when a key press is meant for a text field, not for a shortcut. */
export function isTypingTarget(target: EventTarget | null): boolean {
  if (!(target instanceof HTMLElement)) return false
  // The console takes no input (its hidden textarea only holds focus), so shortcuts work there.
  if (target.closest('.xterm')) return false
  if (target.isContentEditable) return true
  return target.closest('input, textarea, select, [contenteditable="true"], [role="textbox"]') !== null
}
