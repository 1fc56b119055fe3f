import type { EventSourceMessage } from 'eventsource-parser'
import { StreamError, ValidationError } from '../errors/client-errors'
import { ContentRefusedError } from '../errors/content-refused-error'
import type { ErrorEventData, doneSchemas } from '../schemas/events'
import type { Schemas } from '../schemas/load-schemas'
import { camelizeKeys } from '../wire/case'

/** Which `done` shape a route ends with. */
export type ResultKind = keyof typeof doneSchemas

/** A validated event: `{ type, ...data }`, keys camelCased. */
export type DecodedEvent = { type: string } & Record<string, unknown>

/**
 * Turns one SSE message into a validated event. Returns undefined for event names this
 * version does not know (the protocol may add events). Throws {@link ValidationError} for
 * data that breaks its schema and {@link StreamError} for an `error` event
 * ({@link ContentRefusedError}, itself branded a stream error, for `content_refused`).
 */
export function decodeEvent(
  message: EventSourceMessage,
  resultKind: ResultKind,
  requestId: string | undefined,
  schemas: Schemas,
): DecodedEvent | undefined {
  const type = message.event ?? 'message'
  const schema =
    type === 'done'
      ? schemas.doneSchemas[resultKind]
      : type === 'error'
        ? schemas.ErrorEventDataSchema
        : schemas.progressEventSchemas[type as keyof Schemas['progressEventSchemas']]
  if (schema === undefined) return undefined
  let raw: unknown
  try {
    raw = JSON.parse(message.data)
  } catch {
    throw new ValidationError(type, ['data is not JSON'], message.data, requestId)
  }
  const parsed = schema.safeParse(camelizeKeys(raw))
  if (!parsed.success) {
    const issues = parsed.error.issues.map((issue) => `${issue.path.map(String).join('.') || '(data)'}: ${issue.message}`)
    throw new ValidationError(type, issues, raw, requestId)
  }
  if (type === 'error') {
    const data = parsed.data as ErrorEventData
    if (data.code === 'content_refused') {
      throw new ContentRefusedError({ source: 'stream', message: data.message, requestId: data.requestId ?? requestId })
    }
    throw new StreamError(data.code, data.message, {
      retryable: data.retryable,
      requestId: data.requestId ?? requestId,
      state: data.state,
      reason: data.reason,
    })
  }
  return { type, ...(parsed.data as Record<string, unknown>) }
}
