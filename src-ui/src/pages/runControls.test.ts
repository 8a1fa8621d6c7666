import { describe, expect, it } from 'vitest'
import { controlAvailable, controlEnabled, isTypingTarget, shortcutAction } from './runControls'

describe('shortcutAction', () => {
  it('maps p to pause or resume, s to stop and a to acknowledge, only where the state allows', () => {
    expect(shortcutAction('p', 'running')).toBe('pause')
    expect(shortcutAction('p', 'paused')).toBe('resume')
    expect(shortcutAction('p', 'waiting')).toBeNull()
    expect(shortcutAction('s', 'waiting')).toBe('stop')
    expect(shortcutAction('s', 'succeeded')).toBeNull()
    expect(shortcutAction('a', 'waiting')).toBe('acknowledge')
    expect(shortcutAction('a', 'running')).toBeNull()
    expect(shortcutAction('x', 'running')).toBeNull()
  })

  it('pauses a queued run, as the engine allows (the pause holds once it starts)', () => {
    expect(controlEnabled('pause', 'queued')).toBe(true)
    expect(shortcutAction('p', 'queued')).toBe('pause')
  })

  it('enables no control on a finished run', () => {
    for (const status of ['succeeded', 'failed', 'stopped', 'interrupted'] as const) {
      expect((['pause', 'resume', 'stop', 'acknowledge'] as const).filter((action) => controlEnabled(action, status))).toEqual([])
    }
  })
})

describe('controlAvailable', () => {
  it('allows nothing while a stop winds the run down, whatever status it still shows', () => {
    for (const action of ['pause', 'resume', 'stop', 'acknowledge'] as const) {
      expect(controlAvailable(action, { status: 'running', stopping: true, waitingStep: null })).toBe(false)
    }
    expect(controlAvailable('pause', { status: 'running', stopping: false, waitingStep: null })).toBe(true)
  })

  it('offers a kill only while a stop waits for the run\'s processes', () => {
    expect(controlAvailable('kill', { status: 'running', stopping: false, waitingStep: null })).toBe(false)
    expect(controlAvailable('kill', { status: 'running', stopping: true, waitingStep: null })).toBe(true)
    expect(controlAvailable('kill', { status: 'paused', stopping: true, waitingStep: null })).toBe(true)
    expect(controlAvailable('kill', { status: 'stopped', stopping: true, waitingStep: null })).toBe(false)
  })

  it('acknowledges only once the step the run waits at is known', () => {
    expect(controlAvailable('acknowledge', { status: 'waiting', stopping: false, waitingStep: null })).toBe(false)
    expect(controlAvailable('acknowledge', { status: 'waiting', stopping: false, waitingStep: 'drain' })).toBe(true)
    expect(controlAvailable('stop', { status: 'waiting', stopping: false, waitingStep: null })).toBe(true)
  })
})

describe('isTypingTarget', () => {
  it('leaves keys typed into fields alone, but not those pressed on buttons or in the console', () => {
    document.body.innerHTML = `
      <input id="field" /><textarea id="area"></textarea><button id="button">Pause</button>
      <div contenteditable="true"><span id="editable">x</span></div>
      <div class="xterm"><textarea id="terminal"></textarea></div>`
    const byId = (id: string) => document.getElementById(id)
    expect(isTypingTarget(byId('field'))).toBe(true)
    expect(isTypingTarget(byId('area'))).toBe(true)
    expect(isTypingTarget(byId('editable'))).toBe(true)
    expect(isTypingTarget(byId('button'))).toBe(false)
    expect(isTypingTarget(byId('terminal'))).toBe(false)
    expect(isTypingTarget(null)).toBe(false)
  })
})
