import { describe, expect, it } from 'vitest'
import { mergeChunk, OutputStream, utf8Length, type Subscribe } from './output'
import type { ExecutionEvent, ExecutionStatus, OutputPage } from './types'

describe('mergeChunk', () => {
  it('appends a chunk that starts where the console ends', () => {
    expect(mergeChunk(5, 5, 'abc')).toEqual({ kind: 'append', text: 'abc', end: 8 })
  })

  it('drops a chunk already shown', () => {
    expect(mergeChunk(10, 4, 'abc')).toEqual({ kind: 'duplicate' })
    expect(mergeChunk(7, 4, 'abc')).toEqual({ kind: 'duplicate' })
  })

  it('keeps only the unseen tail of an overlapping chunk, counting bytes not characters', () => {
    // "é" is two bytes: "aé" occupies bytes 0..3, so from byte 3 on only "z" is new.
    expect(mergeChunk(3, 0, 'aéz')).toEqual({ kind: 'append', text: 'z', end: 4 })
  })

  it('reports a gap for a chunk beyond the end', () => {
    expect(mergeChunk(3, 9, 'x')).toEqual({ kind: 'gap' })
  })
})

/** A fake backend console: `stored` is what read_output can return; events are pushed by hand. */
function harness(stored: string, pageSize = 4) {
  let emit: (event: ExecutionEvent) => void = () => {}
  const reads: number[] = []
  const backend = { stored }
  let release: (() => void) | null = null
  let gate: Promise<void> | null = null
  const read = async (offset: number, limit: number): Promise<OutputPage> => {
    reads.push(offset)
    if (gate) await gate
    const bytes = new TextEncoder().encode(backend.stored)
    const slice = bytes.subarray(offset, offset + Math.min(limit, pageSize))
    return {
      offset,
      next_offset: offset + slice.length,
      complete: false,
      text: new TextDecoder().decode(slice),
    }
  }
  const subscribe: Subscribe = (onEvent) => {
    emit = onEvent
    return () => {}
  }
  const shown: string[] = []
  const stream = new OutputStream({ read, subscribe, onText: (t) => shown.push(t), gapRetryMs: 1 })
  return {
    stream,
    backend,
    reads,
    shown,
    emit: (offset: number, text: string) => emit({ type: 'output', execution_id: 'e1', offset, text }),
    statusEvent: (status: ExecutionStatus) => emit({ type: 'status', execution_id: 'e1', status }),
    hold: () => {
      gate = new Promise((resolve) => (release = resolve))
    },
    release: () => {
      gate = null
      release?.()
    },
  }
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 20))

describe('OutputStream', () => {
  it('pages through existing output until it stops growing', async () => {
    const h = harness('line one\nline two\n')
    h.stream.start()
    await settle()
    expect(h.shown.join('')).toBe('line one\nline two\n')
    expect(h.stream.length).toBe(18)
    expect(h.reads).toEqual([0, 4, 8, 12, 16, 18])
  })

  it('shows live chunks that arrive while loading exactly once, in order', async () => {
    const h = harness('abcdef')
    h.hold()
    h.stream.start()
    // Live chunks overlapping what the pages will return, and one beyond them.
    h.emit(4, 'ef')
    h.emit(6, 'gh')
    h.backend.stored = 'abcdefgh'
    h.emit(2, 'cdef')
    h.release()
    await settle()
    expect(h.shown.join('')).toBe('abcdefgh')
  })

  it('fills a gap in the live stream from read_output', async () => {
    const h = harness('abc')
    h.stream.start()
    await settle()
    h.backend.stored = 'abcdefghij'
    h.emit(8, 'ij') // bytes 3..8 were missed
    await settle()
    expect(h.shown.join('')).toBe('abcdefghij')
    h.emit(3, 'defgh') // a late duplicate changes nothing
    h.emit(10, 'k')
    expect(h.shown.join('')).toBe('abcdefghijk')
    expect(h.stream.length).toBe(utf8Length('abcdefghijk'))
  })

  it('reads what it missed when the stream reports a status, without waiting for more output', async () => {
    const h = harness('abc')
    h.stream.start()
    await settle()
    // The stream broke and came back while the run went quiet (paused, waiting, or run elsewhere).
    h.backend.stored = 'abcdefg'
    h.statusEvent('paused')
    await settle()
    expect(h.shown.join('')).toBe('abcdefg')
  })

  it('reads again shortly after opening, for output written before the subscription took hold', async () => {
    const shown: string[] = []
    const backend = { stored: '' }
    const read = async (offset: number): Promise<OutputPage> => {
      const text = backend.stored.slice(offset)
      return { offset, next_offset: offset + utf8Length(text), complete: false, text }
    }
    const stream = new OutputStream({ read, subscribe: () => () => {}, onText: (t) => shown.push(t), settleMs: 30 })
    stream.start()
    await settle()
    // Printed as the run started: its event went to no one, and it was stored only after the first read.
    backend.stored = 'draining node-7\n'
    await settle()
    await settle()
    expect(shown.join('')).toBe('draining node-7\n')
    stream.close()
  })

  it('reports a failed read and, after a catch-up that reads to the end, a successful one', async () => {
    const events: string[] = []
    let fail = true
    const stream = new OutputStream({
      read: async (offset) => {
        if (fail) throw new Error('store unavailable')
        return { offset, next_offset: offset + 2, complete: true, text: 'ok' }
      },
      subscribe: () => () => {},
      onText: (text) => events.push(`text ${text}`),
      onReadError: (error) => events.push(`error ${(error as Error).message}`),
      onRead: () => events.push('read'),
    })
    await stream.catchUp()
    fail = false
    await stream.catchUp()
    expect(events).toEqual(['error store unavailable', 'text ok', 'read'])
  })

  it('stops showing output after close', async () => {
    const h = harness('')
    h.stream.start()
    await settle()
    h.stream.close()
    h.emit(0, 'late')
    expect(h.shown).toEqual([])
  })
})

describe('OutputStream paging', () => {
  it('waits for the consumer between pages', async () => {
    const pages = ['aaaa', 'bbbb', 'cc']
    let offset = 0
    const read = async (at: number): Promise<OutputPage> => {
      const text = pages[at / 4] ?? ''
      offset = at
      return { offset: at, next_offset: at + text.length, complete: false, text }
    }
    let release: () => void = () => {}
    let waits = 0
    const shown: string[] = []
    const stream = new OutputStream({
      read,
      subscribe: () => () => {},
      onText: (t) => shown.push(t),
      backpressure: () => {
        waits += 1
        return new Promise((resolve) => (release = resolve))
      },
    })
    stream.start()
    await settle()
    expect(shown).toEqual(['aaaa'])
    expect(waits).toBe(1)
    release()
    await settle()
    expect(shown).toEqual(['aaaa', 'bbbb'])
    release()
    await settle()
    expect(shown.join('')).toBe('aaaabbbbcc')
    expect(offset).toBe(8)
    release()
    await settle()
    expect(offset).toBe(10) // the empty page at the end stops the reading
  })

  it('starts at the tail of a huge console, trusting next_offset over a skipped partial character', async () => {
    // The console is "xé!" + "tail": é is 2 bytes at 1..3; starting at byte 2 lands inside it.
    const reads: number[] = []
    const read = async (at: number): Promise<OutputPage> => {
      reads.push(at)
      if (at === 2) return { offset: 2, next_offset: 8, complete: false, text: '!tail' } // byte 2 skipped
      return { offset: at, next_offset: at, complete: true, text: '' }
    }
    const shown: string[] = []
    const stream = new OutputStream({ read, subscribe: () => () => {}, onText: (t) => shown.push(t), startOffset: 2 })
    stream.start()
    await settle()
    expect(shown).toEqual(['!tail'])
    expect(reads).toEqual([2, 8])
    expect(stream.length).toBe(8)
  })
})
