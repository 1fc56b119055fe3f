import { loadSchemas } from '../schemas/load-schemas'
import { camelizeKeys } from '../wire/case'
import { retryAfterMs } from '../http/retry'
import {
  APIError,
  AuthenticationError,
  BadRequestError,
  NotFoundError,
  RateLimitError,
  ServerError,
  ServiceUnavailableError,
  type APIErrorInit,
} from './api-error'
import { ContentRefusedError } from './content-refused-error'

const FALLBACK_CODES: Record<number, string> = {
  400: 'invalid_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  413: 'request_too_large',
  415: 'unsupported_media_type',
  422: 'invalid_request',
  429: 'rate_limited',
  503: 'not_ready',
}

/**
 * The typed error for an HTTP error response. Bodies that are not the protocol's error shape
 * (a proxy's HTML page, an empty 502) still map by status.
 */
export async function errorFromResponse(
  status: number,
  headers: Headers,
  bodyText: string,
): Promise<APIError | ContentRefusedError> {
  let body: unknown = bodyText
  try {
    body = JSON.parse(bodyText)
  } catch {
    // Not JSON: keep the text as the body.
  }
  // Schemas that fail to load (a browser's stale chunk after a deploy) leave the status to
  // choose the class: the server's answer is never hidden behind a loading error.
  const schemas = await loadSchemas().catch(() => undefined)
  const parsed = schemas?.ErrorBodySchema.safeParse(camelizeKeys(body))
  const error = parsed?.success ? parsed.data.error : undefined
  const init: APIErrorInit = {
    status,
    code: error?.code ?? FALLBACK_CODES[status] ?? (status >= 500 ? 'internal' : 'http_error'),
    message: error?.message ?? (bodyText.slice(0, 200) || `HTTP ${status}`),
    requestId: headers.get('x-request-id') ?? error?.requestId,
    param: error?.param ?? undefined,
    details: error?.details,
    retryAfterMs: retryAfterMs(headers),
    state: error?.state,
    reason: error?.reason,
    headers,
    body,
  }
  if (status === 403 && init.code === 'content_refused') return new ContentRefusedError({ source: 'http', ...init })
  return new (errorClassFor(status))(init)
}

function errorClassFor(status: number): new (init: APIErrorInit) => APIError {
  if (status === 400 || status === 413 || status === 415 || status === 422) return BadRequestError
  if (status === 401) return AuthenticationError
  if (status === 403) return AuthenticationError
  if (status === 404) return NotFoundError
  if (status === 429) return RateLimitError
  if (status === 503) return ServiceUnavailableError
  if (status >= 500) return ServerError
  return APIError
}
