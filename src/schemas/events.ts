import * as z from 'zod/mini'
import { PipelineResultSchema, StageResultSchema, StageSchema, TextResultSchema, type PipelineResult, type TextResult } from './results'

// Each event type is `{ type }` beside its data schema's output, so the two cannot drift: a
// field added to a schema appears on the event type, with the type the parser guarantees.

/** Data of `run`: the server's run id, sent before any waiting. */
export const RunEventDataSchema = z.object({ id: z.string() })
/** Data of `status`: waiting in a queue, loading models, or running. */
export const StatusEventDataSchema = z.object({
  state: z.enum(['queued', 'loading', 'running']),
  position: z.optional(z.number()),
})
/** Data of `stage-start`. */
export const StageStartEventDataSchema = z.object({ stage: StageSchema })
/** Data of `delta`: the next piece of a stage's text. */
export const DeltaEventDataSchema = z.object({ stage: StageSchema, text: z.string() })
/** Data of `stage-end`: the stage and its result. */
export const StageEndEventDataSchema = z.object({ stage: StageSchema, ...StageResultSchema.shape })
/**
 * Data of `error`: ends the stream (the SDK throws it as a `StreamError`). `not_ready` adds
 * `state` and, when the models failed to load, `reason`.
 */
export const ErrorEventDataSchema = z.object({
  code: z.string(),
  message: z.string(),
  retryable: z.boolean(),
  requestId: z.optional(z.string()),
  state: z.optional(z.string()),
  reason: z.optional(z.string()),
})
/** Data of an `error` event, camelCased. */
export type ErrorEventData = z.output<typeof ErrorEventDataSchema>

/** `{ type: name }` beside the data, as one flat object type (optional fields stay optional). */
type EventOf<Name extends string, Data> = Flatten<{ type: Name } & Data>
type Flatten<T> = { [K in keyof T]: T[K] }

/** The run id is known. */
export type RunEvent = EventOf<'run', z.output<typeof RunEventDataSchema>>
/** Waiting (queued with a 1-based `position`, or models loading) or started running. */
export type StatusEvent = EventOf<'status', z.output<typeof StatusEventDataSchema>>
/** A stage began generating. */
export type StageStartEvent = EventOf<'stage-start', z.output<typeof StageStartEventDataSchema>>
/** Decoded text, in order; concatenated they are the stage's text. */
export type DeltaEvent = EventOf<'delta', z.output<typeof DeltaEventDataSchema>>
/** A stage ended, with its result. */
export type StageEndEvent = EventOf<'stage-end', z.output<typeof StageEndEventDataSchema>>
/** The last event of a successful stream; the same data as the awaited result. */
export type DoneEvent<R> = { type: 'done' } & R

/** Events every run yields, before `done`. */
export type ProgressEvent = RunEvent | StatusEvent | StageStartEvent | DeltaEvent | StageEndEvent
/** Events of a `describe()` or `narrate()` run. */
export type TextRunEvent = ProgressEvent | DoneEvent<TextResult>
/** Events of a `describe()` run. */
export type DescribeEvent = TextRunEvent
/** Events of a `narrate()` run. */
export type NarrateEvent = TextRunEvent
/** Events of a `pipeline()` run. */
export type PipelineEvent = ProgressEvent | DoneEvent<PipelineResult>

/** The schema each SSE event's data must match (keys camelCased first). */
export const progressEventSchemas = {
  run: RunEventDataSchema,
  status: StatusEventDataSchema,
  'stage-start': StageStartEventDataSchema,
  delta: DeltaEventDataSchema,
  'stage-end': StageEndEventDataSchema,
} as const

/** The `done` schemas per route kind. */
export const doneSchemas = {
  text: TextResultSchema,
  pipeline: PipelineResultSchema,
  /** A run followed by id, whose route the client does not know. */
  any: z.union([PipelineResultSchema, TextResultSchema]),
} as const
