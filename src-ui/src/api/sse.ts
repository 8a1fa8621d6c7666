// Reading a Server-Sent Events body from fetch (EventSource cannot send the X-API-KEY header).

import { createParser, type EventSourceMessage } from 'eventsource-parser'

/** Feeds a byte stream through the SSE parser, calling `onMessage` per complete event. */
export async function readSse(
  body: ReadableStream<Uint8Array>,
  onMessage: (message: EventSourceMessage) => void,
): Promise<void> {
  const parser = createParser({ onEvent: onMessage })
  const decoder = new TextDecoder()
  const reader = body.getReader()
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      // `stream: true` keeps a multi-byte character split across chunks intact.
      parser.feed(decoder.decode(value, { stream: true }))
    }
    parser.feed(decoder.decode())
  } finally {
    reader.releaseLock()
  }
}
