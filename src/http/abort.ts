import { UserAbortError } from '../errors/client-errors'

// Abort plumbing shared by requests, runs and polling: every wait stops when its signal aborts,
// and rejects with the signal's reason (a UserAbortError, a TimeoutError, …).

/**
 * Makes the caller's `signal` stop `onAbort` with a {@link UserAbortError}. Returns the
 * function that unlinks it again.
 */
export function linkUserSignal(
  signal: AbortSignal | undefined,
  onAbort: (error: UserAbortError) => void,
): () => void {
  if (!signal) return () => {}
  if (signal.aborted) {
    onAbort(new UserAbortError(signal.reason))
    return () => {}
  }
  const listener = () => onAbort(new UserAbortError(signal.reason))
  signal.addEventListener('abort', listener, { once: true })
  return () => signal.removeEventListener('abort', listener)
}

/**
 * Settles like `promise`, or rejects with the signal's reason as soon as it aborts (also when
 * `promise` itself fails because of the abort).
 */
export function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason)
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    promise
      .then(resolve, (error: unknown) => reject(signal.aborted ? signal.reason : error))
      .finally(() => signal.removeEventListener('abort', onAbort))
  })
}

/** Resolves after `ms`, or rejects with the signal's reason as soon as it aborts. */
export function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined
  return untilAborted(new Promise<void>((resolve) => (timer = setTimeout(resolve, ms))), signal).finally(() =>
    clearTimeout(timer),
  )
}
