import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { ConnectionError, ContentRefusedError, RateLimitError, ServerError, ServiceUnavailableError, TimeoutError } from '../../src/index'
import { isRetryable, retryAfterMs, retryDelayMs } from '../../src/http/retry'
import { httpError, modelsFailed, notReady, rateLimited, refused, tokenStream } from '../../src/testing'
import { BASE_URL, rejectionOf, testClient, useMockServer } from './support/mock-server'

const { mock } = useMockServer()

describe('retry-after parsing', () => {
  it('reads seconds, milliseconds and HTTP dates', () => {
    expect(retryAfterMs(new Headers({ 'retry-after': '2' }))).toBe(2000)
    expect(retryAfterMs(new Headers({ 'retry-after-ms': '250', 'retry-after': '9' }))).toBe(250)
    const now = Date.parse('2026-01-01T00:00:00Z')
    expect(retryAfterMs(new Headers({ 'retry-after': 'Thu, 01 Jan 2026 00:00:05 GMT' }), now)).toBe(5000)
    expect(retryAfterMs(new Headers({ 'retry-after': 'soon' }))).toBeUndefined()
    expect(retryAfterMs(new Headers())).toBeUndefined()
  })

  it('backs off exponentially from 0.5 s to 8 s, with jitter below the step', () => {
    expect([0, 1, 2, 3, 4, 5].map((n) => retryDelayMs(n, undefined, () => 0))).toEqual([500, 1000, 2000, 4000, 8000, 8000])
    expect(retryDelayMs(0, undefined, () => 1)).toBe(375)
    expect(retryDelayMs(3, 60_000)).toBe(60_000)
    expect(retryDelayMs(0, 60_001)).toBeUndefined()
  })
})

describe('retries before the first body byte', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
    vi.spyOn(Math, 'random').mockReturnValue(0)
  })
  afterEach(() => {
    vi.useRealTimers()
    vi.restoreAllMocks()
  })

  it('waits Retry-After, then resends with the same Idempotency-Key', async () => {
    const server = mock({ narrate: [rateLimited(2), tokenStream({ route: 'narrate' })] })
    const result = testClient({ maxRetries: 2 }).narrate({ instruction: 'Go.' }).then((r) => r)
    await vi.advanceTimersByTimeAsync(1999)
    expect(server.requests).toHaveLength(1)
    await vi.advanceTimersByTimeAsync(1)
    expect((await result).text).toBe('Once upon a time, a circle rolled away.')
    expect(server.requests).toHaveLength(2)
    const keys = server.requests.map((r) => r.headers['idempotency-key'])
    expect(keys[0]).toMatch(/^[0-9a-f-]{32,36}$/)
    expect(keys[1]).toBe(keys[0])
  })

  it('uses exponential backoff without Retry-After, and gives up after maxRetries', async () => {
    const server = mock({ describe: httpError(500, 'internal') })
    const run = testClient({ maxRetries: 2 }).describe({ image: 'https://example.com/a.png' })
    const failure = rejectionOf(run)
    await vi.advanceTimersByTimeAsync(499)
    expect(server.requests).toHaveLength(1)
    await vi.advanceTimersByTimeAsync(1)
    expect(server.requests).toHaveLength(2)
    await vi.advanceTimersByTimeAsync(1000)
    expect(server.requests).toHaveLength(3)
    expect(await failure).toBeInstanceOf(ServerError)
    expect(server.requests).toHaveLength(3)
  })

  it('retries 503 not_ready (a loading server)', async () => {
    const server = mock({ narrate: [notReady(1), tokenStream({ route: 'narrate' })] })
    const result = testClient({ maxRetries: 1 }).narrate({ instruction: 'Go.' }).then((r) => r)
    await vi.advanceTimersByTimeAsync(1000)
    expect((await result).finishReason).toBe('stop')
    expect(server.requests).toHaveLength(2)
  })

  it('does not retry 503 not_ready whose models failed to load', async () => {
    const server = mock({ narrate: [modelsFailed('out_of_memory'), tokenStream({ route: 'narrate' })] })
    const failure = rejectionOf(testClient({ maxRetries: 3 }).narrate({ instruction: 'Go.' }))
    await vi.advanceTimersByTimeAsync(20_000)
    const error = await failure
    expect(error).toBeInstanceOf(ServiceUnavailableError)
    expect(error).toMatchObject({ state: 'failed', reason: 'out_of_memory' })
    expect(isRetryable(error)).toBe(false)
    expect(server.requests).toHaveLength(1)
  })

  it('does not retry a Retry-After over 60 s; the caller gets it', async () => {
    const server = mock({ narrate: [rateLimited(120), tokenStream({ route: 'narrate' })] })
    const error = await rejectionOf(testClient({ maxRetries: 3 }).narrate({ instruction: 'Go.' }))
    expect(error).toBeInstanceOf(RateLimitError)
    expect((error as RateLimitError).retryAfter).toBe(120_000)
    expect(server.requests).toHaveLength(1)
  })

  it('never retries a refusal or a bad request', async () => {
    const server = mock({ narrate: [refused(), tokenStream({ route: 'narrate' })], describe: httpError(400, 'invalid_request') })
    expect(await rejectionOf(testClient({ maxRetries: 3 }).narrate({ instruction: 'x' }))).toBeInstanceOf(ContentRefusedError)
    await rejectionOf(testClient({ maxRetries: 3 }).describe({ image: 'https://example.com/a.png' }))
    expect(server.requests).toHaveLength(2)
  })

  it('retries connection errors', async () => {
    let calls = 0
    const fetch: typeof globalThis.fetch = async (input, init) => {
      if (++calls === 1) throw new TypeError('fetch failed', { cause: new Error('ECONNRESET') })
      return globalThis.fetch(input, init)
    }
    mock({ narrate: tokenStream({ route: 'narrate' }) })
    const result = testClient({ maxRetries: 1, fetch }).narrate({ instruction: 'Go.' }).then((r) => r)
    await vi.advanceTimersByTimeAsync(500)
    expect((await result).text).toContain('circle')
    expect(calls).toBe(2)
  })

  it('reports a connection error once retries are spent', async () => {
    const fetch: typeof globalThis.fetch = async () => {
      throw new TypeError('fetch failed')
    }
    const error = await rejectionOf(testClient({ maxRetries: 0, fetch, baseURL: BASE_URL }).narrate({ instruction: 'Go.' }))
    expect(error).toBeInstanceOf(ConnectionError)
    expect((error as Error).message).toContain(BASE_URL)
  })

  it('does not retry a connect timeout', async () => {
    let calls = 0
    const fetch: typeof globalThis.fetch = (_input, init) => {
      calls++
      return new Promise((_, reject) => init?.signal?.addEventListener('abort', () => reject(init.signal!.reason)))
    }
    const failure = rejectionOf(testClient({ maxRetries: 3, fetch, timeout: { connectMs: 1000 } }).narrate({ instruction: 'Go.' }))
    await vi.advanceTimersByTimeAsync(1000)
    const error = await failure
    expect(error).toBeInstanceOf(TimeoutError)
    expect((error as TimeoutError).phase).toBe('connect')
    expect(calls).toBe(1)
  })
})
