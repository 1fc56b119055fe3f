import { UserAbortError } from '../errors/client-errors'

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
