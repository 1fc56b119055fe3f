import * as z from 'zod/mini'

const ModelStatusSchema = z.object({ id: z.string(), loaded: z.boolean() })

/** Body of `GET /health`. */
export const HealthSchema = z.object({
  status: z.enum(['ok', 'loading']),
  profile: z.enum(['dev', 'reference', 'custom']),
  models: z.object({ vision: ModelStatusSchema, writer: ModelStatusSchema }),
  version: z.string(),
  queue: z.optional(z.object({ vision: z.number(), writer: z.number() })),
  serverVersion: z.optional(z.string()),
})
/** Server readiness: `status` is `'ok'` once both models are resident. */
export type Health = z.infer<typeof HealthSchema>
