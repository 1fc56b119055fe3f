import { PictaleError, withReason } from './pictale-error'

/** One field problem reported by the server for a `400`/`422` request. */
export interface FieldError {
  /** Dotted path of the offending field, e.g. `narrate.max_tokens`. */
  param: string
  /** What is wrong with it. */
  message: string
}

/** What the SDK knows about an HTTP error response. */
export interface APIErrorInit {
  status: number
  code: string
  message: string
  requestId?: string | undefined
  param?: string | undefined
  details?: FieldError[] | undefined
  /** Delay the server asked for (`Retry-After` / `retry-after-ms`), in milliseconds. */
  retryAfterMs?: number | undefined
  /** `not_ready` bodies: the server's state (`loading` or `failed`). */
  state?: string | undefined
  /** `not_ready` bodies with state `failed`: why the models failed to load. */
  reason?: string | undefined
  headers?: Headers | undefined
  /** The parsed body, or its text when it was not JSON. */
  body?: unknown
}

/** The server answered with an HTTP error status. Subclasses narrow it by status family. */
export class APIError extends PictaleError {
  static override readonly kind: string = 'APIError'
  /** HTTP status. */
  readonly status: number
  /** The server's `x-request-id` for this response (quote it in bug reports). */
  readonly requestId: string | undefined
  /** Dotted path of the offending request field, when the server named one. */
  readonly param: string | undefined
  /** Response headers. */
  readonly headers: Headers | undefined
  /** The parsed error body (or its text when not JSON). */
  readonly body: unknown

  constructor(init: APIErrorInit) {
    super(init.code, `${init.status} ${init.code}: ${init.message}`)
    this.status = init.status
    this.requestId = init.requestId
    this.param = init.param
    this.headers = init.headers
    this.body = init.body
  }
}

/** `400`, `413`, `415` or `422`: the request, its image or its size was refused. */
export class BadRequestError extends APIError {
  static override readonly kind: string = 'BadRequestError'
  /** Every field error the server listed (from the body's `details`); empty when none. */
  readonly details: FieldError[]
  constructor(init: APIErrorInit) {
    super(init)
    this.details = init.details ?? []
  }
}

/** `401` (missing or wrong API key) or a `403` from an auth proxy. */
export class AuthenticationError extends APIError {
  static override readonly kind: string = 'AuthenticationError'
}

/** `404`: unknown route or run id. */
export class NotFoundError extends APIError {
  static override readonly kind: string = 'NotFoundError'
}

/** `429` (`queue_full` or `rate_limited`). */
export class RateLimitError extends APIError {
  static override readonly kind: string = 'RateLimitError'
  /** How long the server asked the client to wait, in **milliseconds** (undefined if unsaid). */
  readonly retryAfter: number | undefined
  constructor(init: APIErrorInit) {
    super(init)
    this.retryAfter = init.retryAfterMs
  }
}

/** `500` and other `5xx` except `503`. */
export class ServerError extends APIError {
  static override readonly kind: string = 'ServerError'
}

/** Whether a `503 not_ready` server is still loading its models or failed to load them. */
export type NotReadyState = 'loading' | 'failed'

/**
 * `503` (`not_ready`). `state` says which: `'loading'` (the models are loading or the
 * deployment is starting; retried, and worth waiting for) or `'failed'` (the models failed to
 * load, `reason` says why; never retried: only fixing the server helps). A 503 that does not
 * say (a proxy's, an older server's) counts as `'loading'`.
 */
export class ServiceUnavailableError extends ServerError {
  static override readonly kind: string = 'ServiceUnavailableError'
  /** How long the server asked the client to wait, in **milliseconds** (undefined if unsaid). */
  readonly retryAfter: number | undefined
  /** `'loading'`: try again later. `'failed'`: the models failed to load. */
  readonly state: NotReadyState
  /**
   * Why the models failed to load (state `'failed'`): `model_not_found`, `out_of_memory`,
   * `unsupported_gpu`, `load_error`, or a reason newer than this SDK. Undefined while loading.
   */
  readonly reason: string | undefined
  constructor(init: APIErrorInit) {
    const failed = init.state === 'failed'
    super(failed ? { ...init, message: withReason(init.message, init.reason) } : init)
    this.retryAfter = init.retryAfterMs
    this.state = failed ? 'failed' : 'loading'
    this.reason = failed ? init.reason : undefined
  }
}
