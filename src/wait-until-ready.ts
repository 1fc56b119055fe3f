import type { CallOptions } from './client-options'
import type { PictaleError } from './errors/pictale-error'
import { ServiceUnavailableError } from './errors/api-error'
import { TimeoutError } from './errors/client-errors'
import { abortableSleep, linkUserSignal } from './http/abort'
import { isRetryable } from './http/retry'
import type { Health } from './schemas/health'

/** Options of `client.waitUntilReady()`. */
export interface WaitUntilReadyOptions {
  /** Give up after this long, with a `TimeoutError` (phase `'total'`). Default 600 000 (10 min). */
  timeoutMs?: number
  /** Pause between polls. Default 2 000. */
  intervalMs?: number
  /** Called after every poll: the health object, or the error that poll met. */
  onStatus?: (status: { health?: Health; error?: PictaleError }) => void
  /** Stops waiting with a `UserAbortError`. */
  signal?: AbortSignal
}

/**
 * Polls `health` until `status` is `'ok'`. Connection errors, connect timeouts and retryable
 * statuses (5xx, 429, …) count as "not yet"; any other error, an abort or the timeout end the
 * wait. Models that failed to load end it at once: `status: 'failed'`, or a `503 not_ready`
 * with state `failed`, is thrown as a {@link ServiceUnavailableError} with state `'failed'`.
 */
export async function waitUntilReady(
  health: (call: CallOptions) => Promise<Health>,
  options: WaitUntilReadyOptions,
): Promise<Health> {
  const timeoutMs = options.timeoutMs ?? 600_000
  const intervalMs = options.intervalMs ?? 2_000
  const controller = new AbortController()
  const unlink = linkUserSignal(options.signal, (error) => controller.abort(error))
  const timer = setTimeout(() => controller.abort(new TimeoutError('total', timeoutMs)), timeoutMs)
  try {
    for (;;) {
      let status: Health
      try {
        status = await health({ signal: controller.signal, maxRetries: 0 })
      } catch (error) {
        if (controller.signal.aborted) throw controller.signal.reason
        if (!isRetryable(error) && !(error instanceof TimeoutError)) throw error
        options.onStatus?.({ error: error as PictaleError })
        await abortableSleep(intervalMs, controller.signal)
        continue
      }
      options.onStatus?.({ health: status })
      if (status.status === 'ok') return status
      if (status.status === 'failed') throw loadFailed(status)
      await abortableSleep(intervalMs, controller.signal)
    }
  } finally {
    clearTimeout(timer)
    unlink()
  }
}

/**
 * The error a generation call would get from this server: `503 not_ready`, state `failed`.
 * `body` is the health object it was made from.
 */
function loadFailed(health: Health): ServiceUnavailableError {
  const reason = health.failure?.reason
  const detail = health.failure?.message ?? 'the server gave no details'
  return new ServiceUnavailableError({
    status: 503,
    code: 'not_ready',
    message: `The models failed to load (${reason ?? 'no reason given'}): ${detail}`,
    state: 'failed',
    reason,
    body: health,
  })
}
