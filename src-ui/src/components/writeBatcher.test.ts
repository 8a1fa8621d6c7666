import { describe, expect, it } from 'vitest'
import { countLines, WriteBatcher, type BatchSink, type FrameScheduler } from './writeBatcher'

/** Frames run only when the test says so; the sink acknowledges writes only when told to. */
function harness(options: { maxCharsPerFrame?: number; lowWater?: number; maxQueued?: number } = {}) {
  const frames: (() => void)[] = []
  const scheduler: FrameScheduler = {
    request: (callback) => frames.push(callback),
    cancel: (handle) => {
      frames[handle - 1] = () => {}
    },
  }
  const written: string[] = []
  const acks: (() => void)[] = []
  const sink: BatchSink = {
    write: (data, done) => {
      written.push(data)
      acks.push(done)
    },
  }
  const batches: string[] = []
  const batcher = new WriteBatcher(sink, { ...options, scheduler, onBatch: (text) => batches.push(text) })
  let ran = 0
  return {
    batcher,
    written,
    batches,
    /** Runs the frames requested so far; returns how many ran. */
    frame: () => {
      const due = frames.slice(ran)
      ran = frames.length
      due.forEach((callback) => callback())
      return due.length
    },
    ack: () => acks.shift()?.(),
  }
}

describe('WriteBatcher', () => {
  it('joins everything pushed before a frame into one write', () => {
    const h = harness()
    h.batcher.push('line 1\n')
    h.batcher.push('\x1b[31mred\x1b[0m\n')
    h.batcher.push('line 3\n')
    expect(h.written).toEqual([])
    expect(h.frame()).toBe(1)
    expect(h.written).toEqual(['line 1\n\x1b[31mred\x1b[0m\nline 3\n'])
    expect(h.batches).toEqual(h.written)
  })

  it('hands over at most the frame budget, one slice per frame, in order', () => {
    const h = harness({ maxCharsPerFrame: 10 })
    h.batcher.push('0123456789abcdefghij')
    h.batcher.push('KLMNO')
    h.frame()
    h.ack()
    h.frame()
    h.ack()
    h.frame()
    expect(h.written).toEqual(['0123456789', 'abcdefghij', 'KLMNO'])
    expect(h.batcher.pending).toBe(0)
  })

  it('waits for the terminal to parse a slice before handing over the next', () => {
    const h = harness({ maxCharsPerFrame: 4 })
    h.batcher.push('aaaabbbb')
    h.frame()
    h.batcher.push('cccc')
    expect(h.frame()).toBe(0) // no frame requested while the first slice is being parsed
    expect(h.written).toEqual(['aaaa'])
    h.ack()
    h.frame()
    expect(h.written).toEqual(['aaaa', 'bbbb'])
  })

  it('never splits a surrogate pair between writes', () => {
    const h = harness({ maxCharsPerFrame: 3 })
    h.batcher.push('ab😀cd')
    h.frame()
    h.ack()
    h.frame()
    h.ack()
    h.frame()
    expect(h.written).toEqual(['ab', '😀c', 'd'])
    expect(h.written.join('')).toBe('ab😀cd')
  })

  it('holds readers back until the queue drains below the low-water mark', async () => {
    const h = harness({ maxCharsPerFrame: 5, lowWater: 8 })
    let released = false
    h.batcher.push('x'.repeat(12))
    void h.batcher.drained().then(() => {
      released = true
    })
    await Promise.resolve()
    expect(released).toBe(false)
    h.frame() // 7 left: below 8
    await Promise.resolve()
    expect(released).toBe(true)
    await expect(h.batcher.drained()).resolves.toBeUndefined()
  })

  it('keeps a million lines flowing in bounded slices', () => {
    // Pushed all at once (readers of stored output wait on `drained()` instead): room for it all.
    const h = harness({ maxCharsPerFrame: 256 * 1024, maxQueued: 16 * 1024 * 1024 })
    const page = Array.from({ length: 10_000 }, (_, i) => `line ${i}`).join('\n') + '\n'
    for (let i = 0; i < 100; i += 1) h.batcher.push(page)
    let frames = 0
    while (h.batcher.pending > 0) {
      h.frame()
      h.ack()
      frames += 1
    }
    const lines = h.written.reduce((sum, batch) => sum + countLines(batch), 0)
    expect(lines).toBe(1_000_000)
    expect(Math.max(...h.written.map((batch) => batch.length))).toBeLessThanOrEqual(256 * 1024)
    expect(frames).toBe(Math.ceil((page.length * 100) / (256 * 1024)))
  })

  it('keeps what it holds bounded while no frame comes (a hidden page), saying what it skipped', () => {
    const h = harness({ maxQueued: 100 })
    for (let i = 0; i < 50; i++) h.batcher.push(`line ${String(i).padStart(3, '0')}\n`)
    expect(h.batcher.pending).toBeLessThanOrEqual(100 + 120)
    h.frame()
    const shown = h.written.join('')
    // oxlint-disable-next-line no-control-regex
    expect(shown).toMatch(/^\r\n\x1b\[2m… [\d,]+ characters skipped while the console was not shown/)
    expect(shown.endsWith('line 049\n')).toBe(true)
    expect(shown).not.toContain('line 000')
    // What follows the note is whole lines, newest last, in order.
    const lines = shown.split('\x1b[0m\r\n')[1].trimEnd().split('\n')
    const numbers = lines.map((line) => Number(line.slice(5)))
    expect(numbers).toEqual(numbers.map((_, i) => numbers[0] + i))
  })

  it('drops what is queued on close and releases waiting readers', async () => {
    const h = harness({ lowWater: 1 })
    h.batcher.push('never shown')
    const waiting = h.batcher.drained()
    h.batcher.close()
    await expect(waiting).resolves.toBeUndefined()
    h.frame()
    expect(h.written).toEqual([])
    h.batcher.push('late')
    expect(h.batcher.pending).toBe(0)
  })
})

describe('countLines', () => {
  it('counts line breaks', () => {
    expect(countLines('')).toBe(0)
    expect(countLines('a\nb\r\nc')).toBe(2)
  })
})
