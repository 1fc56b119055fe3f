import * as z from 'zod/mini'

/**
 * Which decode step serves a loaded model: `'fast'` (the GPU kernels) or `'reference'`, with the
 * reason the fast one does not serve (empty on the fast path). Any path string is accepted.
 */
const DecodeInfoSchema = z.object({ path: z.string(), reason: z.string() })

const ModelStatusSchema = z.object({
  id: z.string(),
  loaded: z.boolean(),
  decode: z.optional(DecodeInfoSchema),
})

/**
 * Why the models failed to load (`status: 'failed'`). `reason` is `model_not_found`,
 * `out_of_memory`, `unsupported_gpu` or `load_error` (anything else); newer servers may send
 * reasons this version does not know, so any string is accepted.
 */
export const HealthFailureSchema = z.object({ reason: z.string(), message: z.string() })
/** Why the models failed to load. */
export type HealthFailure = z.infer<typeof HealthFailureSchema>

/** Body of `GET /health`. */
export const HealthSchema = z.object({
  status: z.enum(['ok', 'loading', 'failed']),
  profile: z.enum(['dev', 'reference', 'custom']),
  models: z.object({ vision: ModelStatusSchema, writer: ModelStatusSchema }),
  version: z.string(),
  failure: z.optional(HealthFailureSchema),
  queue: z.optional(z.object({ vision: z.number(), writer: z.number() })),
  serverVersion: z.optional(z.string()),
})
/**
 * Server readiness: `status` is `'loading'`, then `'ok'` once both models are resident, or
 * `'failed'` (with `failure`) when they could not be loaded.
 */
export type Health = z.infer<typeof HealthSchema>
