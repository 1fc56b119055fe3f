/** One step of a scripted SSE response. */
export type ScriptStep =
  /** An event; `data` is JSON-encoded onto one `data:` line and `id:` counts up from 1. */
  | { event: string; data: unknown }
  /** A comment line such as the server's `: ping`. */
  | { comment: string }
  /** Bytes sent exactly as given (for malformed or hand-written SSE). */
  | { raw: string | Uint8Array }
  /** Pause before the next step. */
  | { waitMs: number }
  /** Send nothing more and never close: the stream ends only when the client hangs up. */
  | { stall: true }

const encoder = new TextEncoder()

/** The bytes of one event or comment step. */
export function encodeStep(step: ScriptStep, id: number): Uint8Array {
  if ('event' in step) {
    return encoder.encode(`event: ${step.event}\nid: ${id}\ndata: ${JSON.stringify(step.data)}\n\n`)
  }
  if ('comment' in step) return encoder.encode(`: ${step.comment}\n\n`)
  if ('raw' in step) return typeof step.raw === 'string' ? encoder.encode(step.raw) : step.raw
  return new Uint8Array(0)
}
