import * as z from 'zod/mini'
import type { ImageInput } from '../images/image-input'

// Request schemas check types only; bounds (max_tokens ≤ 4096, …) are the server's to enforce
// so that a server raising them needs no SDK release. Objects are strict: a misspelt field
// (`maxTokenz`) is an error at compile time and at run time, never silently ignored by the
// server; a field this SDK does not know yet travels in the call's `extraBody`.

/** Sampling options, all optional (see docs/protocol.md for bounds and defaults). */
export const SamplingSchema = z.strictObject({
  maxTokens: z.optional(z.int()),
  temperature: z.optional(z.number()),
  topP: z.optional(z.number()),
  topK: z.optional(z.int()),
  minP: z.optional(z.number()),
  repetitionPenalty: z.optional(z.number()),
  stop: z.optional(z.array(z.string())),
  seed: z.optional(z.int()),
  /**
   * The tokens depend only on the input and `seed`, never on which other requests the server
   * decodes at the same time (default false). It costs speed only while this request is decoded
   * alone or beside one other; `describe` is deterministic either way.
   */
  deterministic: z.optional(z.boolean()),
  /** Penalises tokens already in the answer, once each (−2 to 2). */
  presencePenalty: z.optional(z.number()),
  /** Penalises tokens by how often the answer has them (−2 to 2). */
  frequencyPenalty: z.optional(z.number()),
  /** Token id → bias added to its logit (−100 to 100; −100 bans the token). */
  logitBias: z.optional(z.record(z.string(), z.number())),
  /** DRY: penalises continuing a sequence the text already holds (0 = off; 0.8 is usual). */
  dryMultiplier: z.optional(z.number()),
  dryBase: z.optional(z.number()),
  dryAllowedLength: z.optional(z.int()),
  /** How many of the last tokens DRY looks at (0 or −1: the whole text). */
  dryPenaltyLastN: z.optional(z.int()),
  /** Strings that end a DRY match (default: line break, `:`, `"`, `*`). */
  drySequenceBreakers: z.optional(z.array(z.string())),
  /** XTC: the chance per token of removing every likely choice but the least likely one. */
  xtcProbability: z.optional(z.number()),
  xtcThreshold: z.optional(z.number()),
  /** Phrases the answer never contains: the server rewinds and writes something else. */
  bannedPhrases: z.optional(z.array(z.string())),
})
/** Sampling options. */
export type Sampling = z.infer<typeof SamplingSchema>

/** Any accepted image form; checked by the image encoder, not by this schema. */
export const ImageSchema = z.custom<ImageInput>((value) => value !== undefined && value !== null)

/** How much the vision model writes: a caption, a detailed description, or a scene for a story. */
export const DescribeStyleSchema = z.enum(['caption', 'detailed', 'scene'])
/** Describe style. */
export type DescribeStyle = z.infer<typeof DescribeStyleSchema>

/** One earlier turn of a conversation. */
export const HistoryTurnSchema = z.object({
  role: z.enum(['user', 'assistant']),
  content: z.string(),
})
/** One earlier turn of a conversation. */
export type HistoryTurn = z.infer<typeof HistoryTurnSchema>

const describeOptions = {
  style: z.optional(DescribeStyleSchema),
  prompt: z.optional(z.string()),
  system: z.optional(z.string()),
  ...SamplingSchema.shape,
}

const narrateOptions = {
  system: z.optional(z.string()),
  history: z.optional(z.array(HistoryTurnSchema)),
  ...SamplingSchema.shape,
}

/** Where the server POSTs a signed message when the run ends (verify it with `pictale/webhooks`). */
export const WebhookSpecSchema = z.object({
  url: z.string(),
  /** Which endings to report (default: `run.done` and `run.failed`). */
  events: z.optional(z.array(z.enum(['run.done', 'run.failed', 'run.cancelled']))),
})
/** A request's webhook. */
export type WebhookSpec = z.infer<typeof WebhookSpecSchema>

const runOptions = {
  /** Start the run and resolve with `{ id, state }` at once (see `client.runs`). */
  background: z.optional(z.boolean()),
  webhook: z.optional(WebhookSpecSchema),
}

/** `describe()` request: an image and how to describe it. */
export const DescribeRequestSchema = z.strictObject({ image: ImageSchema, ...describeOptions, ...runOptions })
/** `describe()` request. */
export type DescribeRequest = z.infer<typeof DescribeRequestSchema>

/** `narrate()` request: an instruction, optional scene `context`, system prompt and history. */
export const NarrateRequestSchema = z.strictObject({
  instruction: z.string(),
  context: z.optional(z.string()),
  ...narrateOptions,
  ...runOptions,
})
/** `narrate()` request. */
export type NarrateRequest = z.infer<typeof NarrateRequestSchema>

/** `pipeline()` request: an image and an instruction, with per-stage overrides. */
export const PipelineRequestSchema = z.strictObject({
  image: ImageSchema,
  instruction: z.string(),
  describe: z.optional(z.strictObject(describeOptions)),
  narrate: z.optional(z.strictObject(narrateOptions)),
  ...runOptions,
})
/** `pipeline()` request. */
export type PipelineRequest = z.infer<typeof PipelineRequestSchema>
