// Feeding a terminal without freezing the page: console text is queued as it arrives (a page of
// stored output, a live chunk) and handed to the terminal at most once per animation frame, in
// slices of bounded size, and only once the terminal has parsed the previous slice. Readers of
// stored output wait on `drained()` so a million-line console is never held in memory at once.

/** Where batches go: xterm's `write(data, callback)` (the callback fires once parsed). */
export interface BatchSink {
  write(data: string, done: () => void): void
}

export interface FrameScheduler {
  request(callback: () => void): number
  cancel(handle: number): void
}

export interface WriteBatcherOptions {
  /** Most characters handed over in one frame. */
  maxCharsPerFrame?: number
  /** `drained()` resolves once fewer characters than this wait in the queue. */
  lowWater?: number
  /**
   * Most characters held for the terminal. Past it (frames stop while the page is hidden, and a
   * live run keeps sending) the oldest are dropped down to half of it, with a line that says so:
   * the terminal keeps only its scrollback anyway, and the stored console is whole.
   */
  maxQueued?: number
  /** Called with every batch after it was handed over (for a plain-text mirror, counters). */
  onBatch?: (text: string) => void
  scheduler?: FrameScheduler
}

const browserFrames: FrameScheduler = {
  request: (callback) => requestAnimationFrame(() => callback()),
  cancel: (handle) => cancelAnimationFrame(handle),
}

export class WriteBatcher {
  private queue: string[] = []
  private queued = 0
  private frame: number | null = null
  private inFlight = false
  private closed = false
  private waiters: (() => void)[] = []
  private readonly sink: BatchSink
  private readonly maxChars: number
  private readonly lowWater: number
  private readonly maxQueued: number
  private readonly onBatch?: (text: string) => void
  private readonly scheduler: FrameScheduler

  constructor(sink: BatchSink, options: WriteBatcherOptions = {}) {
    this.sink = sink
    this.maxChars = options.maxCharsPerFrame ?? 256 * 1024
    this.lowWater = options.lowWater ?? 1024 * 1024
    this.maxQueued = options.maxQueued ?? 8 * 1024 * 1024
    this.onBatch = options.onBatch
    this.scheduler = options.scheduler ?? browserFrames
  }

  /** Characters waiting to be handed to the terminal. */
  get pending(): number {
    return this.queued
  }

  push(text: string): void {
    if (this.closed || text === '') return
    this.queue.push(text)
    this.queued += text.length
    if (this.queued > this.maxQueued) this.dropOldest()
    this.schedule()
  }

  /** Drops the oldest queued text down to half the bound, leaving a line in its place. */
  private dropOldest(): void {
    let dropped = 0
    while (this.queue.length > 1 && this.queued - dropped > this.maxQueued / 2) {
      dropped += this.queue.shift()!.length
    }
    if (dropped === 0) return
    this.queued -= dropped
    const note = `\r\n\x1b[2m… ${dropped.toLocaleString('en-US')} characters skipped while the console was not shown: "Load all" reads the whole console.\x1b[0m\r\n`
    this.queue.unshift(note)
    this.queued += note.length
  }

  /** Resolves once the queue is below the low-water mark (at once if it already is). */
  drained(): Promise<void> {
    if (this.closed || this.queued < this.lowWater) return Promise.resolve()
    return new Promise((resolve) => this.waiters.push(resolve))
  }

  /** Drops whatever is queued and stops writing; pending `drained()` calls resolve. */
  close(): void {
    this.closed = true
    this.queue = []
    this.queued = 0
    if (this.frame !== null) this.scheduler.cancel(this.frame)
    this.frame = null
    this.release()
  }

  private schedule(): void {
    if (this.frame !== null || this.inFlight || this.closed || this.queued === 0) return
    this.frame = this.scheduler.request(() => this.flush())
  }

  private flush(): void {
    this.frame = null
    if (this.closed || this.queued === 0) return
    const batch = this.take(this.maxChars)
    this.inFlight = true
    this.sink.write(batch, () => {
      this.inFlight = false
      this.schedule()
    })
    this.onBatch?.(batch)
    if (this.queued < this.lowWater) this.release()
  }

  /** Removes up to `limit` characters from the front of the queue, never splitting a surrogate pair. */
  private take(limit: number): string {
    const parts: string[] = []
    let size = 0
    while (this.queue.length > 0 && size < limit) {
      const head = this.queue[0]
      const room = limit - size
      if (head.length <= room) {
        parts.push(head)
        size += head.length
        this.queue.shift()
        continue
      }
      let cut = room
      const code = head.charCodeAt(cut - 1)
      if (code >= 0xd800 && code <= 0xdbff) cut -= 1
      if (cut <= 0) {
        // Nothing fits without splitting a pair: take it whole.
        if (size > 0) break
        cut = 2
      }
      parts.push(head.slice(0, cut))
      this.queue[0] = head.slice(cut)
      size += cut
    }
    this.queued -= size
    return parts.join('')
  }

  private release(): void {
    const waiters = this.waiters
    this.waiters = []
    waiters.forEach((resolve) => resolve())
  }
}

/** Number of line breaks in a text, for the console's line counter. */
export function countLines(text: string): number {
  let count = 0
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) count += 1
  return count
}
