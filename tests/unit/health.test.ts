import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { AuthenticationError, NotFoundError, TimeoutError, UserAbortError } from '../../src/index'
import { READY_HEALTH, httpError, notReady } from '../../src/testing'
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
