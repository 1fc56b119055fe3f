import type { ResolvedOptions } from '../client-options'

/** Headers of one request: auth, the client's and the call's own, then the per-request ones. */
export function requestHeaders(
  options: ResolvedOptions,
  callHeaders: Record<string, string> | undefined,
  own: Record<string, string>,
): Headers {
  const headers = new Headers()
  if (options.apiKey) headers.set('authorization', `Bearer ${options.apiKey}`)
  if (options.modal) {
    headers.set('modal-key', options.modal.key)
    headers.set('modal-secret', options.modal.secret)
  }
  for (const source of [options.headers, callHeaders ?? {}, own]) {
    for (const [name, value] of Object.entries(source)) headers.set(name, value)
  }
  return headers
}
