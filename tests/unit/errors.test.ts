import { describe, expect, it, vi } from 'vitest'
import * as sdk from '../../src/index'
import { errorFromResponse } from '../../src/errors/error-from-response'
import { isRetryable } from '../../src/http/retry'

const {
  APIError,
  BadRequestError,
  ContentRefusedError,
  PictaleError,
  RateLimitError,
  ServiceUnavailableError,
  ServerError,
  StreamError,
  TimeoutError,
  UserAbortError,
} = sdk

const headers = (entries: Record<string, string> = {}) => new Headers(entries)

describe('error classes', () => {
  it('keep their hierarchy, name and code', async () => {
    const error = await errorFromResponse(429, headers({ 'retry-after': '3', 'x-request-id': 'req_1' }), JSON.stringify({ error: { code: 'queue_full', message: 'full' } }))
    expect(error).toBeInstanceOf(RateLimitError)
    expect(error).toBeInstanceOf(APIError)
    expect(error).toBeInstanceOf(PictaleError)
    expect(error).toBeInstanceOf(Error)
    expect(error).not.toBeInstanceOf(BadRequestError)
    expect(error.name).toBe('RateLimitError')
    expect(error.code).toBe('queue_full')
    expect(error.requestId).toBe('req_1')
    expect((error as InstanceType<typeof RateLimitError>).retryAfter).toBe(3000)
  })

  it('give every class its own kind, so no check matches a sibling', () => {
    const classes = Object.values(sdk).filter(
      (value): value is typeof PictaleError => typeof value === 'function' && (value === PictaleError || Object.prototype.isPrototypeOf.call(PictaleError.prototype, value.prototype)),
    )
    expect(classes.length).toBe(17)
    const kinds = classes.map((cls) => (Object.prototype.hasOwnProperty.call(cls, 'kind') ? cls.kind : undefined))
    expect(kinds).not.toContain(undefined)
    expect(new Set(kinds).size).toBe(classes.length)
    expect(kinds).toEqual(classes.map((cls) => cls.name))
  })

  it('survive two copies of the package', async () => {
    vi.resetModules()
    // @ts-expect-error the query suffix loads a second, independent copy of the module
    const copy = (await import('../../src/index?copy')) as typeof sdk
    expect(copy.RateLimitError).not.toBe(RateLimitError)
    const foreign = new copy.TimeoutError('idle', 5)
    expect(foreign).toBeInstanceOf(TimeoutError)
    expect(foreign).toBeInstanceOf(PictaleError)
    expect(foreign).not.toBeInstanceOf(UserAbortError)
    expect(TimeoutError.is(foreign)).toBe(true)
    expect(new TimeoutError('total', 1)).toBeInstanceOf(copy.PictaleError)
  })

  it('reject look-alikes without the brand', () => {
    expect(PictaleError.is(new Error('x'))).toBe(false)
    expect(PictaleError.is({ code: 'timeout', name: 'TimeoutError' })).toBe(false)
    expect(PictaleError.is(null)).toBe(false)
  })

  it('map bodies that are not the protocol shape by status', async () => {
    const html = await errorFromResponse(502, headers(), '<html>Bad gateway</html>')
    expect(html).toBeInstanceOf(ServerError)
    expect(html.code).toBe('internal')
    expect(html.body).toBe('<html>Bad gateway</html>')
    const empty = await errorFromResponse(503, headers({ 'retry-after-ms': '1500' }), '')
    expect(empty).toBeInstanceOf(ServiceUnavailableError)
    expect((empty as InstanceType<typeof ServiceUnavailableError>).retryAfter).toBe(1500)
    expect((await errorFromResponse(418, headers(), '')).constructor).toBe(APIError)
  })

  it('tell a loading server from one whose models failed to load', async () => {
    const loading = await errorFromResponse(
      503,
      headers({ 'retry-after': '2' }),
      JSON.stringify({ error: { code: 'not_ready', message: 'loading', state: 'loading' } }),
    ) as InstanceType<typeof ServiceUnavailableError>
    expect(loading).toMatchObject({ state: 'loading', reason: undefined, retryAfter: 2000 })
    expect(isRetryable(loading)).toBe(true)

    const failedBody = { error: { code: 'not_ready', message: 'The models failed to load (model_not_found): no such checkpoint', state: 'failed', reason: 'model_not_found' } }
    const failed = (await errorFromResponse(503, headers(), JSON.stringify(failedBody))) as InstanceType<typeof ServiceUnavailableError>
    expect(failed).toBeInstanceOf(ServiceUnavailableError)
    expect(failed).toMatchObject({ code: 'not_ready', state: 'failed', reason: 'model_not_found', retryAfter: undefined })
    expect(failed.message).toBe('503 not_ready: The models failed to load (model_not_found): no such checkpoint')
    expect(isRetryable(failed)).toBe(false)

    // A reason the message leaves out is added to it; an unknown reason is kept as it is.
    const terse = await errorFromResponse(503, headers(), JSON.stringify({ error: { code: 'not_ready', message: 'down', state: 'failed', reason: 'disk_full' } }))
    expect(terse.message).toBe('503 not_ready: down (disk_full)')
    expect(terse).toMatchObject({ reason: 'disk_full' })

    // A 503 that does not say (a proxy, an older server) counts as loading.
    expect(await errorFromResponse(503, headers(), '')).toMatchObject({ state: 'loading', reason: undefined })
    expect(isRetryable(await errorFromResponse(503, headers(), ''))).toBe(true)
  })

  it('make a refusal one class whichever way it arrived', async () => {
    const body = { error: { code: 'content_refused', message: 'refused', param: 'instruction' } }
    const http = await errorFromResponse(403, headers({ 'x-request-id': 'req_2' }), JSON.stringify(body))
    expect(http).toBeInstanceOf(ContentRefusedError)
    expect(http).toBeInstanceOf(APIError)
    expect(http).not.toBeInstanceOf(StreamError)
    expect(http).toMatchObject({ source: 'http', status: 403, code: 'content_refused', param: 'instruction', requestId: 'req_2', retryable: false })
    expect(http.name).toBe('ContentRefusedError')

    const stream = new ContentRefusedError({ source: 'stream', message: 'refused', requestId: 'req_3' })
    expect(stream).toBeInstanceOf(StreamError)
    expect(stream).not.toBeInstanceOf(APIError)
    expect(stream).toMatchObject({ source: 'stream', status: undefined, code: 'content_refused', requestId: 'req_3', retryable: false })
    expect(await errorFromResponse(403, headers(), JSON.stringify({ error: { code: 'forbidden', message: 'no' } }))).not.toBeInstanceOf(ContentRefusedError)
  })

  it('separate a user abort from a timeout', () => {
    const abort = new UserAbortError('bye')
    expect(abort.code).toBe('aborted')
    expect(abort.reason).toBe('bye')
    expect(abort).not.toBeInstanceOf(TimeoutError)
    expect(new TimeoutError('firstToken', 10)).toMatchObject({ code: 'timeout', phase: 'firstToken', timeoutMs: 10 })
  })
})
