import { APIError, ServiceUnavailableError } from '../errors/api-error'
import { ConnectionError } from '../errors/client-errors'

// The retry policy: which failures before the first body byte are worth another attempt, and
// how long to wait first. The loop that applies it is `sendRequest`.

const RETRY_STATUSES = new Set([408, 409, 425, 429])
const BASE_DELAY_MS = 500
const MAX_BACKOFF_MS = 8_000
/** A server asking for a longer wait than this is not retried: the error reaches the caller. */
export const MAX_RETRY_AFTER_MS = 60_000

/**
 * Whether an error before the first body byte is worth another attempt: connection errors
 * (not a browser's, which is most often CORS), 408, 409, 425, 429 and 5xx, except a
 * `503 not_ready` whose models **failed** to load (waiting does not fix that).
 */
export function isRetryable(error: unknown): boolean {
  if (error instanceof ConnectionError) return !error.maybeCors
  if (error instanceof ServiceUnavailableError) return error.state !== 'failed'
  if (error instanceof APIError) return RETRY_STATUSES.has(error.status) || error.status >= 500
  return false
}

/**
 * How long to wait before retry number `retry` (0-based): the server's `Retry-After` when it
 * gave one (undefined when that is over {@link MAX_RETRY_AFTER_MS}: do not retry), else
 * exponential backoff 0.5 s → 8 s with up to 25 % jitter subtracted.
 */
export function retryDelayMs(
  retry: number,
  retryAfterMs: number | undefined,
  random: () => number = Math.random,
): number | undefined {
  if (retryAfterMs !== undefined) return retryAfterMs <= MAX_RETRY_AFTER_MS ? retryAfterMs : undefined
  const backoff = Math.min(BASE_DELAY_MS * 2 ** retry, MAX_BACKOFF_MS)
  return backoff * (1 - 0.25 * random())
}

/**
 * The delay a response asks for, in milliseconds: `retry-after-ms`, else `Retry-After` as
 * seconds or an HTTP date. Undefined when absent or unreadable.
 */
export function retryAfterMs(headers: Headers, now: number = Date.now()): number | undefined {
  const ms = headers.get('retry-after-ms')
  if (ms !== null && ms.trim() !== '') {
    const value = Number(ms)
    if (Number.isFinite(value) && value >= 0) return value
  }
  const header = headers.get('retry-after')
  if (header === null || header.trim() === '') return undefined
  const seconds = Number(header)
  if (Number.isFinite(seconds)) return seconds >= 0 ? seconds * 1000 : undefined
  const date = Date.parse(header)
  return Number.isNaN(date) ? undefined : Math.max(0, date - now)
}
