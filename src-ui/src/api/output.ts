// Keeping a run's console in order: the first pages come from `read_output`, live chunks from
// events; both carry byte offsets into the whole console, which is what we dedupe on.

import { call, subscribeExecutionEvents } from './transport'
import type { ExecutionEvent, OutputPage } from './types'

const encoder = new TextEncoder()
const decoder = new TextDecoder()

export function utf8Length(text: string): number {
  return encoder.encode(text).length
}

export type MergeResult =
  | { kind: 'append'; text: string; end: number }
  | { kind: 'duplicate' }
  | { kind: 'gap' }

/**
 * Decides what to do with a chunk starting at byte `offset` when the console already holds
 * `have` bytes: append it (or its unseen tail), drop it as already seen, or report a gap
 * that must be filled from `read_output` first.
 */
export function mergeChunk(have: number, offset: number, text: string): MergeResult {
  if (offset > have) return { kind: 'gap' }
  const bytes = encoder.encode(text)
  const end = offset + bytes.length
  if (end <= have) return { kind: 'duplicate' }
  const tail = offset === have ? text : decoder.decode(bytes.subarray(have - offset))
  return { kind: 'append', text: tail, end }
}

export type ReadOutput = (offset: number, limit: number) => Promise<OutputPage>
export type Subscribe = (
  onEvent: (event: ExecutionEvent) => void,
  onError: () => void,
) => () => void

export interface OutputStreamOptions {
  read: ReadOutput
  subscribe: Subscribe
  /** Receives every new piece of console text, in order, exactly once. */
  onText: (text: string) => void
  /** Step and status events, for the caller to refresh the execution. */
  onEvent?: (event: ExecutionEvent) => void
  /** Called once the event stream is known to be broken. */
  onStreamError?: () => void
  /** Called when reading a page failed; the caller may retry with `catchUp()`. */
  onReadError?: (error: unknown) => void
  /** Called when a catch-up read the console to its current end. */
  onRead?: () => void
  pageSize?: number
  gapRetryMs?: number
  /**
   * The console is read once more this long after the stream opens (or reopens, which it tells
   * with a status event): output written before the subscription took hold sent its event to no
   * one and may not have been stored yet at the first read, and a quiet run shows no gap.
   */
  settleMs?: number
  /** Awaited before each further page: lets a slow consumer (the terminal) hold reading back. */
  backpressure?: () => Promise<void>
  /** Byte offset to start from (the tail of a huge console); 0 reads it all. */
  startOffset?: number
}

/**
 * The console of one execution: loads what exists, then follows live chunks, filling any gap
 * (a late open, a dropped connection) from `read_output`. Events that arrive while a page is
 * being read are held back and merged afterwards, so nothing is shown twice or out of order.
 */
export class OutputStream {
  private have = 0
  private loading = false
  private again = false
  private held: { offset: number; text: string }[] = []
  private closed = false
  private unsubscribe: (() => void) | null = null
  private retryTimer: ReturnType<typeof setTimeout> | null = null
  private settleTimer: ReturnType<typeof setTimeout> | null = null
  private readonly options: OutputStreamOptions

  constructor(options: OutputStreamOptions) {
    this.options = options
    this.have = options.startOffset ?? 0
  }

  /** Bytes of console shown so far. */
  get length(): number {
    return this.have
  }

  start(): void {
    this.unsubscribe = this.options.subscribe(
      (event) => this.handleEvent(event),
      () => this.options.onStreamError?.(),
    )
    this.catchUpAndSettle()
  }

  close(): void {
    this.closed = true
    this.unsubscribe?.()
    if (this.retryTimer !== null) clearTimeout(this.retryTimer)
    if (this.settleTimer !== null) clearTimeout(this.settleTimer)
  }

  /** Reads every page from what we have to the current end of the console. */
  async catchUp(): Promise<void> {
    if (this.loading) {
      this.again = true
      return
    }
    this.loading = true
    try {
      do {
        this.again = false
        await this.readToEnd()
      } while (this.again && !this.closed)
      if (!this.closed) this.options.onRead?.()
    } catch (error) {
      this.options.onReadError?.(error)
    } finally {
      this.loading = false
    }
    this.flushHeld()
  }

  private async readToEnd(): Promise<void> {
    const pageSize = this.options.pageSize ?? 65536
    for (;;) {
      if (this.closed) return
      const page = await this.options.read(this.have, pageSize)
      if (this.closed) return
      this.accept(page.offset, page.text)
      // A page that starts inside a character skips its first bytes: next_offset is the truth.
      if (page.offset <= this.have && page.next_offset > this.have) this.have = page.next_offset
      // Stop once the console stops growing (or the server says it has no more).
      if (page.next_offset <= page.offset || page.complete || page.text === '') return
      await this.options.backpressure?.()
    }
  }

  private handleEvent(event: ExecutionEvent): void {
    if (this.closed) return
    if (event.type === 'output') {
      this.held.push({ offset: event.offset, text: event.text })
      if (!this.loading) this.flushHeld()
    }
    // A stream opens (and opens again) with the run's status: output missed while it was
    // away, or written by a run another instance executes, is read now rather than when
    // the next live chunk shows the gap.
    if (event.type === 'status') this.catchUpAndSettle()
    this.options.onEvent?.(event)
  }

  /** Reads to the end now, and once more when what was written just before is stored. */
  private catchUpAndSettle(): void {
    void this.catchUp()
    if (this.settleTimer !== null) clearTimeout(this.settleTimer)
    this.settleTimer = setTimeout(() => {
      this.settleTimer = null
      void this.catchUp()
    }, this.options.settleMs ?? 1000)
  }

  /** Merges held-back live chunks in offset order; a gap waits for `read_output` to fill it. */
  private flushHeld(): void {
    if (this.closed) return
    this.held.sort((a, b) => a.offset - b.offset)
    while (this.held.length > 0) {
      const chunk = this.held[0]
      if (!this.accept(chunk.offset, chunk.text)) {
        this.scheduleCatchUp()
        return
      }
      this.held.shift()
    }
  }

  /** The store may lag the live stream by a moment, so a gap is filled a little later. */
  private scheduleCatchUp(): void {
    if (this.retryTimer !== null) return
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null
      void this.catchUp()
    }, this.options.gapRetryMs ?? 200)
  }

  /** Merges a chunk; false when it lies beyond a gap. */
  private accept(offset: number, text: string): boolean {
    const result = mergeChunk(this.have, offset, text)
    if (result.kind === 'gap') return false
    if (result.kind === 'append') {
      this.have = result.end
      if (result.text) this.options.onText(result.text)
    }
    return true
  }
}

/** An OutputStream wired to the real transport. */
export function executionOutput(
  executionId: string,
  handlers: Pick<OutputStreamOptions, 'onText' | 'onEvent' | 'onStreamError' | 'onReadError' | 'onRead' | 'backpressure' | 'startOffset'>,
): OutputStream {
  return new OutputStream({
    ...handlers,
    read: (offset, limit) => call('read_output', { id: executionId, offset, limit }),
    subscribe: (onEvent, onError) => subscribeExecutionEvents(executionId, { onEvent, onError }),
  })
}
