import * as z from 'zod/mini'

/** Which model stage an event or result belongs to. */
export const StageSchema = z.enum(['describe', 'narrate'])
/** `'describe'` (vision model) or `'narrate'` (writer model). */
export type Stage = z.infer<typeof StageSchema>

/** Why a stage stopped generating. */
export const FinishReasonSchema = z.enum(['stop', 'length', 'cancelled'])
/** `'stop'`, `'length'` (hit `maxTokens`) or `'cancelled'`. */
export type FinishReason = z.infer<typeof FinishReasonSchema>

/** Token counts of one stage. */
export const UsageSchema = z.object({ inputTokens: z.number(), outputTokens: z.number() })
/** Token counts of one stage. */
export type Usage = z.infer<typeof UsageSchema>

/** Server-side timings of one stage, in milliseconds (and decode tokens per second). */
export const TimingsSchema = z.object({
  queuedMs: z.number(),
  firstTokenMs: z.number(),
  totalMs: z.number(),
  tokensPerSecond: z.number(),
})
/** Server-side timings of one stage. */
export type Timings = z.infer<typeof TimingsSchema>

const stageResultShape = {
  text: z.string(),
  finishReason: FinishReasonSchema,
  model: z.string(),
  usage: UsageSchema,
  timings: TimingsSchema,
}

/** The outcome of one stage: its text, why it stopped, the model, usage and timings. */
export const StageResultSchema = z.object(stageResultShape)
/** The outcome of one stage. */
export type StageResult = z.infer<typeof StageResultSchema>

/** Result of `describe()` and `narrate()`: the run id beside one stage's result. */
export const TextResultSchema = z.object({ id: z.string(), ...stageResultShape })
/** Result of `describe()` and `narrate()`. */
export type TextResult = z.infer<typeof TextResultSchema>
/** Result of `describe()`: `text` is the image description. */
export type DescribeResult = TextResult
/** Result of `narrate()`: `text` is the story. */
export type NarrateResult = TextResult

/** Result of `pipeline()`: the description stage and the story stage. */
export const PipelineResultSchema = z.object({
  id: z.string(),
  description: StageResultSchema,
  story: StageResultSchema,
})
/** Result of `pipeline()`. */
export type PipelineResult = z.infer<typeof PipelineResultSchema>

/** Answer of `POST /v1/runs/{id}/cancel`. */
export const CancelResultSchema = z.object({
  id: z.string(),
  cancelled: z.boolean(),
  state: z.string(),
})
/** Answer of `cancel()`: whether the job was still running, and its state now. */
export type CancelResult = z.infer<typeof CancelResultSchema>

/** A run's state on the server. */
export const RunStateSchema = z.enum(['queued', 'running', 'done', 'error', 'cancelled'])
/** `'queued'`, `'running'`, or how it ended: `'done'`, `'error'`, `'cancelled'`. */
export type RunState = z.infer<typeof RunStateSchema>

/** Answer of a `background: true` call: the run started on the server; fetch it by id. */
export const StartedRunSchema = z.object({ id: z.string(), state: RunStateSchema })
/** A run started in the background. */
export type StartedRun = z.infer<typeof StartedRunSchema>

/** Answer of `client.runs.get(id)`: the run's state, with its result once done or its error once failed. */
export const RunStatusSchema = z.object({
  id: z.string(),
  state: RunStateSchema,
  /** Events so far: `client.runs.stream(id, { after })` goes on from there. */
  events: z.number(),
  /** The `done` event's data (a describe/narrate or pipeline result), once done. */
  result: z.optional(z.record(z.string(), z.unknown())),
  /** The `error` event's data, once failed. */
  error: z.optional(z.looseObject({ code: z.string(), message: z.string() })),
})
/** A run's state on the server. */
export type RunStatus = z.infer<typeof RunStatusSchema>
