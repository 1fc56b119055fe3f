import * as z from 'zod/mini'
import {
  PipelineResultSchema,
  StageResultSchema,
  StageSchema,
  TextResultSchema,
  type PipelineResult,
  type StageResult,
  type Stage,
  type TextResult,
} from './results'

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
/** Data of `error`: ends the stream. */
export const ErrorEventDataSchema = z.object({
  code: z.string(),
  message: z.string(),
  retryable: z.boolean(),
  requestId: z.optional(z.string()),
})

/** The run id is known. */
export interface RunEvent {
  type: 'run'
  id: string
}
/** Waiting (queued with a 1-based `position`, or models loading) or started running. */
export interface StatusEvent {
  type: 'status'
  state: 'queued' | 'loading' | 'running'
  position?: number | undefined
}
/** A stage began generating. */
export interface StageStartEvent {
  type: 'stage-start'
  stage: Stage
}
/** Decoded text, in order; concatenated they are the stage's text. */
export interface DeltaEvent {
  type: 'delta'
  stage: Stage
  text: string
}
/** A stage ended, with its result. */
export type StageEndEvent = { type: 'stage-end'; stage: Stage } & StageResult
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
export const doneSchemas = { text: TextResultSchema, pipeline: PipelineResultSchema } as const
