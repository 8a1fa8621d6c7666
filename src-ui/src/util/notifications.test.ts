import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'

let inTauri = false
vi.mock('../api/transport', () => ({ isTauri: () => inTauri }))

import { askToNotify, notifyWaiting, waitingNotice } from './notifications'

/** The browser's Notification, recording what the page shows and asks. */
class FakeNotification {
  static permission: NotificationPermission = 'granted'
  static shown: { title: string; options?: NotificationOptions }[] = []
  static requestPermission = vi.fn(async () => FakeNotification.permission)
  constructor(title: string, options?: NotificationOptions) {
    FakeNotification.shown.push({ title, options })
  }
}

beforeEach(() => {
  inTauri = false
  FakeNotification.permission = 'granted'
  FakeNotification.shown = []
  FakeNotification.requestPermission.mockClear()
  vi.stubGlobal('Notification', FakeNotification)
})

afterEach(() => {
  vi.unstubAllGlobals()
})

describe('waitingNotice', () => {
  it('names the runbook and the step, with the first line of the instructions without markdown markers', () => {
    expect(waitingNotice('Drain a node', 'drain', '\n## Drain node-7\nMove its pods first.')).toEqual({
      title: '“Drain a node” waits for you',
      body: 'Step “drain” needs your acknowledgement: Drain node-7',
    })
    expect(waitingNotice('Drain a node', 'drain', '  \n').body).toBe('Step “drain” needs your acknowledgement.')
    expect(waitingNotice('Drain a node', 'drain', undefined).body).toBe('Step “drain” needs your acknowledgement.')
  })

  it('leaves out a first line holding template markers, which only the run can render', () => {
    for (const text of ['## Drain {{ params.node }}', '{% if params.force %}Force it{% endif %}'])
      expect(waitingNotice('R', 's', text).body).toBe('Step “s” needs your acknowledgement.')
    // `{#` is no template marker here (shell's `${#HOSTS[@]}`): the run shows it as written.
    expect(waitingNotice('R', 's', 'Count ${#HOSTS[@]} hosts').body).toBe('Step “s” needs your acknowledgement: Count ${#HOSTS[@]} hosts')
    expect(waitingNotice('R', 's', 'Drain the node\n{{ params.node }}').body).toBe('Step “s” needs your acknowledgement: Drain the node')
  })

  it('cuts long instructions on a character, and says so', () => {
    const { body } = waitingNotice('R', 's', '😀'.repeat(300))
    expect(body).toBe(`Step “s” needs your acknowledgement: ${'😀'.repeat(140)}…`)
  })
})

describe('notifyWaiting', () => {
  it('shows a notification tagged with the run and the step once the user allowed them', () => {
    expect(notifyWaiting('run-1', 'Drain a node', 'drain', 'Drain node-7')).toBe(true)
    expect(FakeNotification.shown).toEqual([
      {
        title: '“Drain a node” waits for you',
        options: { body: 'Step “drain” needs your acknowledgement: Drain node-7', tag: 'runbook-studio-run-1-drain' },
      },
    ])
  })

  it('shows nothing when notifications are not allowed, not available, or in the desktop app', () => {
    for (const permission of ['default', 'denied'] as const) {
      FakeNotification.permission = permission
      expect(notifyWaiting('run-1', 'R', 's', 'x')).toBe(false)
    }
    FakeNotification.permission = 'granted'
    inTauri = true
    expect(notifyWaiting('run-1', 'R', 's', 'x')).toBe(false)
    inTauri = false
    vi.stubGlobal('Notification', undefined)
    // A window without the API at all.
    delete (window as { Notification?: unknown }).Notification
    expect(notifyWaiting('run-1', 'R', 's', 'x')).toBe(false)
    expect(FakeNotification.shown).toEqual([])
  })

  it('survives a browser that refuses to construct notifications', () => {
    vi.stubGlobal(
      'Notification',
      class {
        static permission = 'granted'
        constructor() {
          throw new TypeError('Illegal constructor')
        }
      },
    )
    expect(notifyWaiting('run-1', 'R', 's', 'x')).toBe(false)
  })
})

describe('askToNotify', () => {
  it('asks only while the user has not decided, and never in the desktop app', () => {
    FakeNotification.permission = 'default'
    askToNotify()
    expect(FakeNotification.requestPermission).toHaveBeenCalledTimes(1)
    for (const permission of ['granted', 'denied'] as const) {
      FakeNotification.permission = permission
      askToNotify()
    }
    FakeNotification.permission = 'default'
    inTauri = true
    askToNotify()
    expect(FakeNotification.requestPermission).toHaveBeenCalledTimes(1)
  })
})
