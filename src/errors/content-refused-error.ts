import { APIError, type APIErrorInit } from './api-error'
import { StreamError } from './client-errors'
import { PictaleError, brandAlso } from './pictale-error'

/** How a refusal arrived: an HTTP `403` before the stream opened, or an `error` event in it. */
export type RefusalSource = 'http' | 'stream'

/** What the SDK knows about a refusal. */
export type ContentRefusedInit =
  | ({ source: 'http' } & Omit<APIErrorInit, 'code'>)
  | { source: 'stream'; message: string; requestId?: string | undefined }

/**
 * The server's safety gate refused the request (code `content_refused`). It arrives either
 * way and is this class both times:
 *
 * - `source: 'http'`: a `403` before the stream opened (text refused). `status` is `403` and
 *   the error is also an {@link APIError} (`instanceof APIError` holds).
 * - `source: 'stream'`: an `error` event after the stream opened (the pipeline's image check
 *   after the description). `status` is undefined and the error is also a
 *   {@link StreamError} (`instanceof StreamError` holds).
 *
 * Never retryable: the same request is refused again.
 */
export class ContentRefusedError extends PictaleError {
  static override readonly kind: string = 'ContentRefusedError'
  /** How the refusal arrived. */
  readonly source: RefusalSource
  /** `403` when the refusal was an HTTP response; undefined when it was a stream event. */
  readonly status: number | undefined
  /** The server's request id (quote it in bug reports). */
  readonly requestId: string | undefined
  /** The refused request field (e.g. `instruction`), when the server named one. */
  readonly param: string | undefined
  /** Response headers (HTTP refusals only). */
  readonly headers: Headers | undefined
  /** The parsed error body (HTTP refusals) or undefined. */
  readonly body: unknown
  /** Always false: sending the same request again is refused again. */
  readonly retryable = false

  constructor(init: ContentRefusedInit) {
    const http = init.source === 'http' ? init : undefined
    super('content_refused', http ? `${http.status} content_refused: ${http.message}` : init.message)
    this.source = init.source
    this.status = http?.status
    this.requestId = init.requestId
    this.param = http?.param
    this.headers = http?.headers
    this.body = http?.body
    brandAlso(this, init.source === 'http' ? APIError.kind : StreamError.kind)
  }
}
