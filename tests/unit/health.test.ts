import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import {
  AuthenticationError,
  NotFoundError,
  ServiceUnavailableError,
  StreamError,
  TimeoutError,
  UserAbortError,
  ValidationError,
} from '../../src/index'
import { HealthSchema } from '../../src/schemas/index'
import { READY_HEALTH, failedHealth, httpError, midStreamError, modelsFailed, notReady, tokenStream } from '../../src/testing'
import { rejectionOf, testClient, useMockServer } from './support/mock-server'

const { mock } = useMockServer()
const loading = { ...READY_HEALTH, status: 'loading', models: { ...READY_HEALTH.models, writer: { id: 'w', loaded: false } } }

describe('health and cold starts', () => {
  it('health() sends no auth requirement and parses the body', async () => {
    const server = mock({})
    const health = await testClient({ apiKey: 'sk' }).health()
    expect(health).toMatchObject({ status: 'ok', profile: 'dev', models: { vision: { loaded: true } } })
    expect(server.requests[0]).toMatchObject({ method: 'GET', path: '/health' })
  })

  describe('waitUntilReady', () => {
    beforeEach(() => vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] }))
    afterEach(() => vi.useRealTimers())

    it('polls through errors and loading until ok, reporting each poll', async () => {
      mock({ health: [notReady(1), loading, loading, READY_HEALTH] })
      const statuses: string[] = []
      const ready = testClient().waitUntilReady({
        intervalMs: 1000,
        onStatus: ({ health, error }) => statuses.push(health?.status ?? error!.code),
      })
      await vi.advanceTimersByTimeAsync(3000)
      expect((await ready).status).toBe('ok')
      expect(statuses).toEqual(['not_ready', 'loading', 'loading', 'ok'])
    })

    it('gives up after timeoutMs with a total-phase TimeoutError', async () => {
      mock({ health: [loading] })
      const failure = rejectionOf(testClient().waitUntilReady({ timeoutMs: 5000, intervalMs: 1000 }))
      await vi.advanceTimersByTimeAsync(5000)
      const error = await failure
      expect(error).toBeInstanceOf(TimeoutError)
      expect(error).toMatchObject({ phase: 'total', timeoutMs: 5000 })
    })

    it('stops at once on errors that waiting cannot fix, or on abort', async () => {
      mock({ health: [httpError(401, 'unauthorized')] })
      expect(await rejectionOf(testClient().waitUntilReady())).toBeInstanceOf(AuthenticationError)
      mock({ health: [httpError(404, 'not_found')] })
      expect(await rejectionOf(testClient().waitUntilReady())).toBeInstanceOf(NotFoundError)
      mock({ health: [loading] })
      const controller = new AbortController()
      const failure = rejectionOf(testClient().waitUntilReady({ signal: controller.signal }))
      await vi.advanceTimersByTimeAsync(10)
      controller.abort()
      expect(await failure).toBeInstanceOf(UserAbortError)
    })
  })

  it('cancel() posts to the run and parses the answer', async () => {
    const server = mock({})
    expect(await testClient({ apiKey: 'sk' }).cancel('run_abc')).toEqual({ id: 'run_abc', cancelled: true, state: 'cancelled' })
    expect(server.requests[0]).toMatchObject({ method: 'POST', path: '/v1/runs/run_abc/cancel', headers: { authorization: 'Bearer sk' } })
  })
})

describe('models that failed to load', () => {
  it('health() accepts status failed with its failure, and any reason string', async () => {
    mock({ health: [failedHealth('out_of_memory', 'CUDA out of memory'), failedHealth('disk_full', 'no space left')] })
    const client = testClient()
    expect(await client.health()).toMatchObject({
      status: 'failed',
      models: { vision: { loaded: false }, writer: { loaded: false } },
      failure: { reason: 'out_of_memory', message: 'CUDA out of memory' },
    })
    expect((await client.health()).failure?.reason).toBe('disk_full')
  })

  it('health() rejects a failure of the wrong shape', async () => {
    expect(HealthSchema.safeParse({ ...failedHealth(), failure: { reason: 7, message: 'x' } }).success).toBe(false)
    mock({ health: [{ ...failedHealth(), failure: 'model_not_found' }] })
    expect(await rejectionOf(testClient().health())).toBeInstanceOf(ValidationError)
  })

  describe('waitUntilReady', () => {
    beforeEach(() => vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] }))
    afterEach(() => vi.useRealTimers())

    it('throws at once when health says failed, naming the reason, and polls no more', async () => {
      const server = mock({ health: [loading, failedHealth('model_not_found', 'writer checkpoint x/y not found'), READY_HEALTH] })
      const statuses: string[] = []
      const failure = rejectionOf(
        testClient().waitUntilReady({ intervalMs: 1000, onStatus: ({ health, error }) => statuses.push(health?.status ?? error!.code) }),
      )
      await vi.advanceTimersByTimeAsync(10_000)
      const error = await failure
      expect(error).toBeInstanceOf(ServiceUnavailableError)
      expect(error).toMatchObject({ status: 503, code: 'not_ready', state: 'failed', reason: 'model_not_found' })
      expect((error as Error).message).toContain('model_not_found')
      expect((error as Error).message).toContain('writer checkpoint x/y not found')
      expect(statuses).toEqual(['loading', 'failed'])
      expect(server.requests).toHaveLength(2)
    })

    it('throws at once on a 503 whose state is failed, but keeps polling through a loading 503', async () => {
      const server = mock({ health: [notReady(1), modelsFailed('unsupported_gpu', 'needs compute capability 8.0'), READY_HEALTH] })
      const failure = rejectionOf(testClient().waitUntilReady({ intervalMs: 1000 }))
      await vi.advanceTimersByTimeAsync(10_000)
      const error = await failure
      expect(error).toBeInstanceOf(ServiceUnavailableError)
      expect(error).toMatchObject({ state: 'failed', reason: 'unsupported_gpu', retryAfter: undefined })
      expect((error as Error).message).toContain('unsupported_gpu')
      expect(server.requests).toHaveLength(2)
    })
  })

  it('a generation call gets a failed 503 once, without retries, as a ServiceUnavailableError', async () => {
    const server = mock({ narrate: [modelsFailed('out_of_memory'), tokenStream({ route: 'narrate' })] })
    const error = await rejectionOf(testClient({ maxRetries: 3 }).narrate({ instruction: 'Go.' }))
    expect(error).toBeInstanceOf(ServiceUnavailableError)
    expect(error).toMatchObject({ code: 'not_ready', state: 'failed', reason: 'out_of_memory' })
    expect(server.requests).toHaveLength(1)
  })

  it('a stream waiting for models that then fail ends with a not_ready error event', async () => {
    mock({
      narrate: midStreamError({
        tokens: [],
        code: 'not_ready',
        retryable: false,
        fields: { state: 'failed', reason: 'load_error' },
      }),
    })
    const error = await rejectionOf(testClient().narrate({ instruction: 'Go.' }))
    expect(error).toBeInstanceOf(StreamError)
    expect(error).toMatchObject({ code: 'not_ready', retryable: false, state: 'failed', reason: 'load_error' })
    expect((error as Error).message).toContain('load_error')
  })
})
