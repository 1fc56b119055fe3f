/** The schemas module, as {@link loadSchemas} resolves it. */
export type Schemas = typeof import('./index')

/** Set by the build: true in the CommonJS output (tsup.config.ts). */
declare const __PICTALE_CJS__: boolean | undefined

let loading: Promise<Schemas> | undefined

/**
 * The schemas, loaded on first use and kept. Building zod schemas at import time would cost
 * every serverless and edge cold start, including those that never make a call. The CommonJS
 * build requires them up front instead: CommonJS hosts such as Jest cannot run a dynamic
 * `import()`, and a required module costs no I/O at call time.
 */
export function loadSchemas(): Promise<Schemas> {
  if (typeof __PICTALE_CJS__ !== 'undefined' && __PICTALE_CJS__) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    loading ??= Promise.resolve(require('./index') as Schemas)
    return loading
  }
  loading ??= import('./index').catch((error: unknown) => {
    loading = undefined
    throw error
  })
  return loading
}
