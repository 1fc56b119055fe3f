import type { ResolvedOptions } from '../client-options'
import { errorFromResponse } from '../errors/error-from-response'
import { APIError } from '../errors/api-error'
import { ConnectionError, TimeoutError } from '../errors/client-errors'
import { abortableSleep } from './abort'
import { isRetryable, retryDelayMs } from './retry'

/** One logical request; retries resend it unchanged (same body, same Idempotency-Key). */
export interface RequestSpec {
  method: 'GET' | 'POST'
  path: string
  body?: unknown
  /** This request's own headers (content type, accept, idempotency key). */
  headers: Record<string, string>
  /** The call's extra headers (`CallOptions.headers`). */
  callHeaders?: Record<string, string> | undefined
  maxRetries: number
  connectMs: number
  /** Aborting it stops the request and any wait between attempts; its reason is thrown. */
  signal: AbortSignal
}

/**
 * Sends a request and returns the first successful response (status 2xx, body unread).
 * Retries connection errors and retryable statuses (see `isRetryable`) until `maxRetries`,
 * waiting as `retryDelayMs` says; an error response's body is read and thrown as its typed
 * {@link APIError}.
 */
export async function sendRequest(options: ResolvedOptions, spec: RequestSpec): Promise<Response> {
  const body = spec.body === undefined ? undefined : JSON.stringify(spec.body)
  const headers = requestHeaders(options, spec)
  for (let attempt = 0; ; attempt++) {
    try {
      return await attemptOnce(options, spec, headers, body)
    } catch (error) {
      if (spec.signal.aborted) throw spec.signal.reason
      const retryAfter = error instanceof APIError ? (error as { retryAfter?: number }).retryAfter : undefined
      const delay = retryDelayMs(attempt, retryAfter)
      if (attempt >= spec.maxRetries || !isRetryable(error) || delay === undefined) throw error
      options.logger?.warn(`pictale: retrying ${spec.method} ${spec.path} in ${Math.round(delay)} ms`, error)
      await abortableSleep(delay, spec.signal)
    }
  }
}

/** A fresh `Idempotency-Key` (UUID v4 where available; crypto.randomUUID needs a secure context). */
export function newIdempotencyKey(): string {
  const cryptoApi = globalThis.crypto
  if (typeof cryptoApi?.randomUUID === 'function') return cryptoApi.randomUUID()
  const bytes = new Uint8Array(16)
  cryptoApi.getRandomValues(bytes)
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')
}

/** Headers of one request: auth, the client's and the call's own, then the request's. */
function requestHeaders(options: ResolvedOptions, spec: RequestSpec): Headers {
  const headers = new Headers()
  if (options.modal) {
    headers.set('modal-key', options.modal.key)
    headers.set('modal-secret', options.modal.secret)
  }
  if (options.apiKey) {
    // Modal's edge also reads `Authorization` (as a proxy token); with Modal credentials the key
    // goes in the header only pictale reads, so the two never meet (docs/protocol.md).
    if (options.modal) headers.set('x-api-key', options.apiKey)
    else headers.set('authorization', `Bearer ${options.apiKey}`)
  }
  for (const source of [options.headers, spec.callHeaders ?? {}, spec.headers]) {
    for (const [name, value] of Object.entries(source)) headers.set(name, value)
  }
  return headers
}

/** One attempt: `connectMs` covers it until the response headers arrive. */
async function attemptOnce(
  options: ResolvedOptions,
  spec: RequestSpec,
  headers: Headers,
  body: string | undefined,
): Promise<Response> {
  const attempt = new AbortController()
  const forward = () => attempt.abort(spec.signal.reason)
  if (spec.signal.aborted) forward()
  spec.signal.addEventListener('abort', forward, { once: true })
  let linked = false
  const connectTimeout = new TimeoutError('connect', spec.connectMs)
  const timer = Number.isFinite(spec.connectMs)
    ? setTimeout(() => attempt.abort(connectTimeout), spec.connectMs)
    : undefined
  try {
    let response: Response
    try {
      response = await options.fetch(options.baseURL + spec.path, {
        method: spec.method,
        headers,
        body,
        signal: attempt.signal,
      })
    } catch (error) {
      if (attempt.signal.aborted) throw attempt.signal.reason
      if (inBrowser()) {
        throw new ConnectionError(
          `could not reach ${options.baseURL}: ${messageOf(error)}. In a browser this is most often CORS: ` +
            "the server does not allow this page's origin (PICTALE_CORS_ORIGINS), or a proxy in between " +
            'answers without CORS headers; otherwise the network or the server is down',
          { cause: error, maybeCors: true },
        )
      }
      throw new ConnectionError(`could not reach ${options.baseURL}: ${messageOf(error)}`, { cause: error })
    }
    if (response.ok) {
      // The link to the caller's signal stays: aborting the run later aborts this fetch too,
      // which is what closes the connection in every fetch implementation.
      linked = true
      return response
    }
    let text = ''
    try {
      text = await response.text()
    } catch (error) {
      if (attempt.signal.aborted) throw attempt.signal.reason
      // The status decides the error class; a lost error body only loses its message.
    }
    throw await errorFromResponse(response.status, response.headers, text)
  } finally {
    clearTimeout(timer)
    if (!linked) spec.signal.removeEventListener('abort', forward)
  }
}

function messageOf(error: unknown): string {
  const cause = (error as { cause?: { message?: string } })?.cause?.message
  const message = error instanceof Error ? error.message : String(error)
  return cause ? `${message} (${cause})` : message
}

/** A page's JavaScript (not a worker, not a server runtime): where CORS applies to fetch. */
function inBrowser(): boolean {
  const scope = globalThis as { window?: unknown; document?: unknown }
  return typeof scope.window === 'object' && scope.window !== null && typeof scope.document === 'object'
}
