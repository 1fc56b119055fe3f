import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { TimeoutError } from '../../src/index'
import { stalled, tokenStream } from '../../src/testing'
import { rejectionOf, testClient, useMockServer } from './support/mock-server'

const { mock } = useMockServer()

describe('timeouts cover the whole stream', () => {
  beforeEach(() => vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] }))
  afterEach(() => vi.useRealTimers())

  it('idle: silence after the last byte aborts the run and cancels the job', async () => {
    const server = mock({ narrate: stalled({ tokens: ['Hel'] }) })
    const failure = rejectionOf(testClient({ timeout: { idleMs: 5000 } }).narrate({ instruction: 'Go.' }))
    await vi.advanceTimersByTimeAsync(5000)
    const error = await failure
    expect(error).toBeInstanceOf(TimeoutError)
    expect(error).toMatchObject({ phase: 'idle', timeoutMs: 5000 })
    await server.streams[0]!.ended
    expect(server.streams[0]!.closedByClient).toBe(true)
    await vi.advanceTimersByTimeAsync(10)
    expect(server.cancels).toHaveLength(1)
  })

  it('idle: pings count as activity', async () => {
    mock({ narrate: stalled({ tokens: ['Hel'], pingEveryMs: 3000 }) })
    const run = testClient({ timeout: { idleMs: 5000, totalMs: 20_000 } }).narrate({ instruction: 'Go.' })
    const failure = rejectionOf(run)
    await vi.advanceTimersByTimeAsync(20_000)
    expect(await failure).toMatchObject({ phase: 'total' })
  })

  it('firstToken: statuses do not count, only a delta', async () => {
    mock({ narrate: stalled() })
    const failure = rejectionOf(testClient({ timeout: { firstTokenMs: 2000 } }).narrate({ instruction: 'Go.' }))
    await vi.advanceTimersByTimeAsync(2000)
    expect(await failure).toMatchObject({ phase: 'firstToken', timeoutMs: 2000 })
  })

  it('firstToken: stops counting at the first delta', async () => {
    mock({ narrate: tokenStream({ route: 'narrate', deltaDelayMs: 1500 }) })
    const run = testClient({ timeout: { firstTokenMs: 2000 } }).narrate({ instruction: 'Go.' })
    const result = run.then((r) => r)
    await vi.advanceTimersByTimeAsync(3100)
    expect((await result).text).toContain('circle')
  })

  it('per-call timeouts override the client', async () => {
    mock({ narrate: stalled() })
    const client = testClient({ timeout: { idleMs: 60_000 } })
    const failure = rejectionOf(client.narrate({ instruction: 'Go.' }, { timeout: { idleMs: 100 } }))
    await vi.advanceTimersByTimeAsync(100)
    expect(await failure).toMatchObject({ phase: 'idle', timeoutMs: 100 })
  })

  it('rejects a timeout that is not a positive number', async () => {
    const error = await rejectionOf(testClient().narrate({ instruction: 'Go.' }, { timeout: { idleMs: -1 } }))
    expect(error).toMatchObject({ code: 'invalid_options', param: 'timeout.idleMs' })
  })
})
