import type { ResolvedOptions } from '../client-options'
import { errorFromResponse } from '../errors/error-from-response'
import { APIError } from '../errors/api-error'
import { ConnectionError, TimeoutError } from '../errors/client-errors'
import { abortableSleep } from './abortable-sleep'
import { requestHeaders } from './request-headers'
import { isRetryable, retryDelayMs } from './retry-policy'

/** One logical request; retries resend it unchanged (same body, same Idempotency-Key). */
export interface RequestSpec {
  method: 'GET' | 'POST'
  path: string
  body?: unknown
  headers: Record<string, string>
  callHeaders?: Record<string, string> | undefined
  maxRetries: number
  connectMs: number
  /** Aborting it stops the request and any wait between attempts; its reason is thrown. */
  signal: AbortSignal
}

/**
 * Sends a request and returns the first successful response (status 2xx, body unread).
 * Retries connection errors and retryable statuses until `maxRetries`; an error response's
 * body is read and thrown as its typed {@link APIError}.
 */
export async function sendRequest(options: ResolvedOptions, spec: RequestSpec): Promise<Response> {
  const body = spec.body === undefined ? undefined : JSON.stringify(spec.body)
  for (let attempt = 0; ; attempt++) {
    try {
      return await attemptOnce(options, spec, body)
    } catch (error) {
      if (spec.signal.aborted) throw spec.signal.reason
      const delay = retryDelayMs(attempt, error instanceof APIError ? retryAfterOf(error) : undefined)
      if (attempt >= spec.maxRetries || !isRetryable(error) || delay === undefined) throw error
      options.logger?.warn(`pictale: retrying ${spec.method} ${spec.path} in ${Math.round(delay)} ms`, error)
      await abortableSleep(delay, spec.signal)
    }
  }
}

function retryAfterOf(error: APIError): number | undefined {
  return (error as { retryAfter?: number }).retryAfter ?? undefined
}

async function attemptOnce(
  options: ResolvedOptions,
  spec: RequestSpec,
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
        headers: requestHeaders(options, spec.callHeaders, spec.headers),
        body,
        signal: attempt.signal,
      })
    } catch (error) {
      if (attempt.signal.aborted) throw attempt.signal.reason
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
    throw errorFromResponse(response.status, response.headers, text)
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
