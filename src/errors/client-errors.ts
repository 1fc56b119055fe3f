import { PictaleError, withReason, type PictaleErrorOptions } from './pictale-error'

/** The request never got an HTTP response (DNS, refused connection, reset, CORS, offline). */
export class ConnectionError extends PictaleError {
  static override readonly kind: string = 'ConnectionError'
  /**
   * In a browser, a request that fails before any response is most often one the browser
   * blocked (the server does not allow this page's origin: CORS), which a retry cannot fix;
   * it is then not retried. Browsers do not say which it was, so the message names both.
   */
  readonly maybeCors: boolean
  constructor(message: string, options: PictaleErrorOptions & { maybeCors?: boolean } = {}) {
    super('connection_error', message, options)
    this.maybeCors = options.maybeCors ?? false
  }
}

/** Which timeout fired: see `TimeoutOptions`. */
export type TimeoutPhase = 'connect' | 'firstToken' | 'idle' | 'total'

/** One of the run's timeouts fired; the request was aborted and the server asked to cancel. */
export class TimeoutError extends PictaleError {
  static override readonly kind: string = 'TimeoutError'
  /** The timeout that fired. */
  readonly phase: TimeoutPhase
  /** Its limit, in milliseconds. */
  readonly timeoutMs: number
  constructor(phase: TimeoutPhase, timeoutMs: number) {
    super('timeout', `${phase} timeout after ${timeoutMs} ms`)
    this.phase = phase
    this.timeoutMs = timeoutMs
  }
}

/** The caller aborted: `run.abort()`, `break` out of a loop, or the `signal` it passed. */
export class UserAbortError extends PictaleError {
  static override readonly kind: string = 'UserAbortError'
  /** The reason given to `abort()` or carried by the caller's signal, if any. */
  readonly reason: unknown
  constructor(reason?: unknown) {
    super('aborted', 'the run was aborted by the caller')
    this.reason = reason
  }
}

/** An `error` event ended the stream after it opened. `code` is the server's error code. */
export class StreamError extends PictaleError {
  static override readonly kind: string = 'StreamError'
  /** Whether the server says the same request may succeed if sent again. */
  readonly retryable: boolean
  /** The server's request id, when known. */
  readonly requestId: string | undefined
  /**
   * `not_ready` events: `'loading'` or `'failed'` (the models failed to load while the
   * request waited for them). Undefined for other codes.
   */
  readonly state: string | undefined
  /** `not_ready` events with state `'failed'`: why the models failed to load (e.g. `model_not_found`). */
  readonly reason: string | undefined
  constructor(
    code: string,
    message: string,
    init: {
      retryable: boolean
      requestId?: string | undefined
      state?: string | undefined
      reason?: string | undefined
    },
  ) {
    super(code, withReason(message, init.reason))
    this.retryable = init.retryable
    this.requestId = init.requestId
    this.state = init.state
    this.reason = init.reason
  }
}

/** The stream closed without `done` or `error` (a dropped connection, a proxy cut). */
export class StreamEndedEarlyError extends StreamError {
  static override readonly kind: string = 'StreamEndedEarlyError'
  constructor(requestId?: string) {
    super('stream_ended_early', 'the event stream ended before its done or error event', {
      retryable: true,
      requestId,
    })
  }
}

/** A response body or stream event that does not match the protocol (server drift). */
export class ValidationError extends PictaleError {
  static override readonly kind: string = 'ValidationError'
  /** The SSE event name, or `'response'` for a non-streaming body. */
  readonly source: string
  /** One line per problem, `path: message`. */
  readonly issues: string[]
  /** The raw data that failed (text or parsed JSON). */
  readonly data: unknown
  readonly requestId: string | undefined
  constructor(source: string, issues: string[], data: unknown, requestId?: string) {
    super('validation_error', `invalid ${source} from server: ${issues.join('; ')}`)
    this.source = source
    this.issues = issues
    this.data = data
    this.requestId = requestId
  }
}

/** Something the caller passed (options or request fields) is not valid; nothing was sent. */
export class InvalidInputError extends PictaleError {
  static override readonly kind: string = 'InvalidInputError'
  /** Dotted path of the offending option or field, when there is one. */
  readonly param: string | undefined
  constructor(code: string, message: string, param?: string, options?: PictaleErrorOptions) {
    super(code, message, options)
    this.param = param
  }
}

/**
 * An image was refused before any request was sent. `code` is `invalid_image` (unreadable
 * input), `unsupported_media_type` (not PNG/JPEG/WebP/GIF/BMP/TIFF) or `image_too_large`.
 */
export class InvalidImageError extends InvalidInputError {
  static override readonly kind: string = 'InvalidImageError'
  constructor(
    code: 'invalid_image' | 'unsupported_media_type' | 'image_too_large',
    message: string,
    options?: PictaleErrorOptions,
  ) {
    super(code, message, 'image', options)
  }
}
