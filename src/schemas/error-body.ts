import * as z from 'zod/mini'

/**
 * The body of every HTTP error response: `{"error": {code, message, param?, request_id,
 * details?}}`; a `not_ready` body adds `state` (`loading` | `failed`) and, when failed, `reason`.
 */
export const ErrorBodySchema = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    param: z.optional(z.nullable(z.string())),
    requestId: z.optional(z.string()),
    details: z.optional(z.array(z.object({ param: z.string(), message: z.string() }))),
    state: z.optional(z.string()),
    reason: z.optional(z.string()),
  }),
})

/** An error response body, camelCased. */
export type ErrorBody = z.infer<typeof ErrorBodySchema>
