/**
 * `pictale/schemas`: the zod (`zod/mini`) schema of every request, event, result and error
 * body. A separate entry so that importing `pictale` builds none of them: the client loads
 * this module on its first call (see `load-schemas.ts`).
 * @packageDocumentation
 */
export * from './requests'
export * from './results'
export * from './events'
export * from './health'
export * from './error-body'
