import { createParser, type EventSourceMessage } from 'eventsource-parser'
import { untilAborted } from '../http/abort'

/** Control over one body read loop. */
export interface ReadSseOptions {
  /** Aborting it cancels the body (closing the connection) and throws the signal's reason. */
  signal: AbortSignal
  /** Called before each read and after each received chunk, so idle timers can re-arm. */
  onWaiting(waiting: boolean): void
}

/**
 * The SSE messages of a response body, in order, in batches (one per received chunk: one
 * async step per chunk rather than per event). Bytes are decoded as UTF-8 across chunk
 * boundaries; CRLF, CR, comments and multi-line data are the parser's job. A trailing event
 * without its blank line is dropped, as the SSE spec says. Stopping early cancels the body.
 */
export async function* readSse(
  body: ReadableStream<Uint8Array>,
  options: ReadSseOptions,
): AsyncGenerator<EventSourceMessage[]> {
  const reader = body.getReader()
  const decoder = new TextDecoder()
  let queue: EventSourceMessage[] = []
  const parser = createParser({ onEvent: (message) => queue.push(message) })
  let finished = false
  try {
    for (;;) {
      options.onWaiting(true)
      const { done, value } = await untilAborted(reader.read(), options.signal)
      options.onWaiting(false)
      if (done) {
        parser.feed(decoder.decode())
        finished = true
        break
      }
      parser.feed(decoder.decode(value, { stream: true }))
      if (queue.length > 0) {
        const ready = queue
        queue = []
        yield ready
      }
    }
    if (queue.length > 0) yield queue
  } finally {
    options.onWaiting(false)
    if (!finished) reader.cancel().catch(() => {})
    reader.releaseLock()
  }
}
