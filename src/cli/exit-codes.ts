import {
  AuthenticationError,
  ConnectionError,
  ContentRefusedError,
  InvalidInputError,
  NotFoundError,
  RateLimitError,
  ServiceUnavailableError,
  StreamError,
  TimeoutError,
  UserAbortError,
  BadRequestError,
} from '../index'

/** What `pictale` exits with, so scripts can tell the failures apart. */
export const EXIT = {
  ok: 0,
  /** A bad command line, or a request the server calls invalid (a bad image, a bad field, a wrong key). */
  usage: 2,
  /** The server could not be reached, is not ready, is busy, or did not answer in time: try again later. */
  unavailable: 3,
  /** The content policy refused the request. */
  refused: 4,
  /** Anything else the server answered with. */
  failed: 5,
  /** Interrupted (Ctrl-C). */
  interrupted: 130,
} as const

/** The exit code and a one-line message for an error a command ended with. */
export function describeFailure(error: unknown): { code: number; message: string } {
  const text = error instanceof Error ? error.message : String(error)
  if (ContentRefusedError.is(error)) return { code: EXIT.refused, message: `refused by the content policy: ${text}` }
  if (AuthenticationError.is(error)) {
    return { code: EXIT.usage, message: `the server refused the API key (set PICTALE_API_KEY): ${text}` }
  }
  if (InvalidInputError.is(error) || BadRequestError.is(error) || NotFoundError.is(error)) {
    return { code: EXIT.usage, message: text }
  }
  if (UserAbortError.is(error)) return { code: EXIT.interrupted, message: 'interrupted' }
  if (
    ConnectionError.is(error) ||
    TimeoutError.is(error) ||
    ServiceUnavailableError.is(error) ||
    RateLimitError.is(error) ||
    // The models failed to load while the request waited for them (a `not_ready` error event).
    (StreamError.is(error) && error.state === 'failed')
  ) {
    return { code: EXIT.unavailable, message: text }
  }
  return { code: EXIT.failed, message: text }
}
