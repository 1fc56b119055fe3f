/** The schemas module, as {@link loadSchemas} resolves it. */
export type Schemas = typeof import('./index')

let loading: Promise<Schemas> | undefined

/**
 * The schemas, loaded on first use and kept. Building zod schemas at import time would cost
 * every serverless and edge cold start, including those that never make a call.
 */
export function loadSchemas(): Promise<Schemas> {
  loading ??= import('./index').catch((error: unknown) => {
    loading = undefined
    throw error
  })
  return loading
}
