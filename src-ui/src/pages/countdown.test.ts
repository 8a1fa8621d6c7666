import { describe, expect, it } from 'vitest'
import { formatCountdown, observeCountdown, remainingAt, type CountdownObservation, type CountdownState } from './countdown'

const base: CountdownObservation = { totalMs: 30_000, startedAt: 1_000, statusPaused: false, event: null }

/** Feeds observations at the given client times and returns the remaining time after each. */
function replay(steps: [number, Partial<CountdownObservation>][]): number[] {
  let state: CountdownState | null = null
  return steps.map(([now, change]) => {
    state = observeCountdown(state, { ...base, ...change }, now)
    return state ? remainingAt(state, now) : -1
  })
}

describe('countdown without events (estimated)', () => {
  it('counts down from the step start and freezes while the step is paused', () => {
    expect(
      replay([
        [3_000, {}], // 2 s in
        [5_000, {}],
        [6_000, { statusPaused: true }], // paused at 25 s left
        [9_000, { statusPaused: true }], // still 25 s
        [10_000, { statusPaused: false }], // resumed
        [12_000, {}],
        [40_000, {}],
      ]),
    ).toEqual([28_000, 26_000, 25_000, 25_000, 25_000, 23_000, 0])
  })

  it('shows nothing before the step starts', () => {
    expect(replay([[500, { startedAt: null }]])).toEqual([-1])
  })
})

describe('countdown with events', () => {
  it('follows the engine\'s numbers and counts on between them', () => {
    const event = (remainingMs: number, receivedAt: number, paused = false) => ({ remainingMs, totalMs: 30_000, paused, receivedAt })
    expect(
      replay([
        [2_000, { event: event(29_500, 2_000) }],
        [2_600, { event: event(29_500, 2_000) }],
        [3_000, { event: event(28_400, 3_000) }], // the engine says a bit less: it wins
        [4_000, { event: event(27_400, 4_000, true) }], // paused by event, before the status catches up
        [6_000, { event: event(27_400, 4_000, true), statusPaused: true }], // the status agrees: no jump
        [8_000, { event: event(27_400, 4_000, true), statusPaused: true }],
        [9_000, { event: event(27_400, 9_000) }], // resumed: the event arrives first...
        [9_500, { event: event(27_400, 9_000), statusPaused: false }], // ...and the status was never seen paused twice
        [10_000, { event: event(27_400, 9_000) }],
      ]),
    ).toEqual([29_500, 28_900, 28_400, 27_400, 27_400, 27_400, 27_400, 26_900, 26_400])
  })

  it('lets a newer status change override an older event', () => {
    const running = { remainingMs: 20_000, totalMs: 30_000, paused: false, receivedAt: 1_000 }
    expect(
      replay([
        [1_000, { event: running }],
        [3_000, { event: running, statusPaused: true }], // paused after the last event: freeze at 18 s
        [7_000, { event: running, statusPaused: true }],
      ]),
    ).toEqual([20_000, 18_000, 18_000])
  })
})

describe('remainingAt', () => {
  it('does not wind the timer back up for a clock read taken before the last event', () => {
    const state: CountdownState = { remainingMs: 29_000, at: 10_000, paused: false, eventAt: 10_000, statusPaused: false, statusChangedAt: -Infinity }
    // The view's clock ticked at 9 800; the event saying 29 s left landed at 10 000.
    expect(remainingAt(state, 9_800)).toBe(29_000)
    expect(formatCountdown(remainingAt(state, 9_800))).toBe('0:29')
    expect(remainingAt(state, 10_500)).toBe(28_500)
  })
})

describe('formatCountdown', () => {
  it('rounds up to whole seconds', () => {
    expect(formatCountdown(29_001)).toBe('0:30')
    expect(formatCountdown(9_000)).toBe('0:09')
    expect(formatCountdown(0)).toBe('0:00')
    expect(formatCountdown(3_723_000)).toBe('1:02:03')
  })
})
