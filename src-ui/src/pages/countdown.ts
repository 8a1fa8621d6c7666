// A timer step's remaining time as the run view shows it. The engine's `countdown` events are
// exact; until one arrives (or with a server that sends none) the time is estimated from the
// step's start and the block's seconds. Whether the timer is frozen follows the newest news:
// a countdown event or a change of the step's status, whichever came last.

/** A countdown event as received, stamped with the client's clock. */
export interface CountdownSeen {
  remainingMs: number
  totalMs: number
  paused: boolean
  receivedAt: number
}

/** What the view knows about the timer at one moment. */
export interface CountdownObservation {
  totalMs: number
  /** The step's start (client clock, ms), when it has one. */
  startedAt: number | null
  /** The step's status says it is paused. */
  statusPaused: boolean
  event: CountdownSeen | null
}

export interface CountdownState {
  /** Remaining time at `at`. */
  remainingMs: number
  at: number
  paused: boolean
  /** When the last event used was received (-Infinity: none yet). */
  eventAt: number
  statusPaused: boolean
  /** When the step's paused-ness last changed, as far as this view saw. */
  statusChangedAt: number
}

/** The remaining time at `now`: frozen while paused, counting down otherwise, never below 0. */
export function remainingAt(state: CountdownState, now: number): number {
  if (state.paused) return Math.max(0, state.remainingMs)
  // A clock read before the last news (the view's tick is up to one interval old when an event
  // lands) does not wind the timer back up.
  return Math.max(0, state.remainingMs - Math.max(0, now - state.at))
}

/** Folds one observation into the state; null while the timer has not started. */
export function observeCountdown(state: CountdownState | null, obs: CountdownObservation, now: number): CountdownState | null {
  let next = state
  const event = obs.event
  if (event && (!next || event.receivedAt > next.eventAt)) {
    next = {
      remainingMs: event.remainingMs,
      at: event.receivedAt,
      paused: event.paused,
      eventAt: event.receivedAt,
      statusPaused: next?.statusPaused ?? obs.statusPaused,
      statusChangedAt: next?.statusChangedAt ?? -Infinity,
    }
  }
  if (!next) {
    if (obs.startedAt === null) return null
    return {
      remainingMs: Math.max(0, obs.totalMs - Math.max(0, now - obs.startedAt)),
      at: now,
      paused: obs.statusPaused,
      eventAt: -Infinity,
      statusPaused: obs.statusPaused,
      statusChangedAt: now,
    }
  }
  if (obs.statusPaused !== next.statusPaused) {
    // The status changed after the last event (or there are no events): it decides.
    const frozen = remainingAt(next, now)
    return {
      ...next,
      remainingMs: frozen,
      at: now,
      paused: obs.statusPaused,
      statusPaused: obs.statusPaused,
      statusChangedAt: now,
    }
  }
  return next
}

/** "4:05", "0:09", "1:02:03" for a countdown, rounding up so it reaches 0:00 only at the end. */
export function formatCountdown(ms: number): string {
  const total = Math.max(0, Math.ceil(ms / 1000))
  const h = Math.floor(total / 3600)
  const m = Math.floor((total % 3600) / 60)
  const s = total % 60
  const pad = (n: number) => String(n).padStart(2, '0')
  return h > 0 ? `${h}:${pad(m)}:${pad(s)}` : `${m}:${pad(s)}`
}
