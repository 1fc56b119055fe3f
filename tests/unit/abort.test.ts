import { describe, expect, it, vi } from 'vitest'
import { StreamError, TimeoutError, UserAbortError } from '../../src/index'
import { abortableSleep, linkUserSignal, untilAborted } from '../../src/http/abort'
import { MOCK_RUN_ID, midStreamError, stalled, tokenStream } from '../../src/testing'
import { rejectionOf, testClient, useMockServer } from './support/mock-server'

const { mock } = useMockServer()
const auth = { apiKey: 'sk-test', modal: { key: 'mk', secret: 'ms' } }

async function settled(check: () => boolean) {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 5))
  expect(check()).toBe(true)
}

describe('stopping a run', () => {
  it('break closes the stream and cancels the job with the same credentials', async () => {
    const server = mock({ narrate: tokenStream({ route: 'narrate', tokens: { narrate: Array(50).fill('word ') }, deltaDelayMs: 2 }) })
    const run = testClient(auth).narrate({ instruction: 'Go.' })
    let deltas = 0
    for await (const event of run) {
      if (event.type === 'delta' && ++deltas === 2) break
    }
    expect(await rejectionOf(run)).toBeInstanceOf(UserAbortError)
    await server.streams[0]!.ended
    expect(server.streams[0]!.closedByClient).toBe(true)
    await settled(() => server.cancels.length === 1)
    expect(server.cancels).toEqual([MOCK_RUN_ID])
    const cancel = server.requests.find((r) => r.path.endsWith('/cancel'))!
    expect(cancel.headers).toMatchObject({ 'x-api-key': 'sk-test', 'modal-key': 'mk', 'modal-secret': 'ms' })
  })

  it('run.abort() mid-stream ends iteration with UserAbortError and cancels', async () => {
    const server = mock({ narrate: stalled({ tokens: ['It'] }) })
    const run = testClient().narrate({ instruction: 'Go.' })
    const seen: string[] = []
    const error = await rejectionOf(
      (async () => {
        for await (const event of run) {
          seen.push(event.type)
          if (event.type === 'delta') setTimeout(() => run.abort('changed my mind'), 5)
        }
      })(),
    )
    expect(error).toBeInstanceOf(UserAbortError)
    expect((error as UserAbortError).reason).toBe('changed my mind')
    expect(seen).toEqual(['run', 'stage-start', 'delta'])
    await server.streams[0]!.ended
    expect(server.streams[0]!.closedByClient).toBe(true)
    await settled(() => server.cancels.length === 1)
  })

  it('the caller signal aborts an awaited run', async () => {
    const server = mock({ describe: stalled({ stage: 'describe' }) })
    const controller = new AbortController()
    const run = testClient().describe({ image: 'https://example.com/a.png' }, { signal: controller.signal })
    const failure = rejectionOf(run)
    await settled(() => run.id !== undefined)
    controller.abort()
    expect(await failure).toBeInstanceOf(UserAbortError)
    await settled(() => server.cancels.length === 1)
  })

  it('an already-aborted signal sends nothing', async () => {
    const server = mock({ narrate: tokenStream({ route: 'narrate' }) })
    const run = testClient().narrate({ instruction: 'Go.' }, { signal: AbortSignal.abort() })
    expect(await rejectionOf(run)).toBeInstanceOf(UserAbortError)
    expect(server.requests).toHaveLength(0)
  })

  it('abort() after the result is a no-op and sends no cancel', async () => {
    const server = mock({ narrate: tokenStream({ route: 'narrate' }) })
    const run = testClient().narrate({ instruction: 'Go.' })
    const result = await run
    run.abort()
    expect(await run).toBe(result)
    expect(server.cancels).toEqual([])
  })

  it('an error event needs no cancel: the server ended the job', async () => {
    const server = mock({ narrate: midStreamError() })
    expect(await rejectionOf(testClient().narrate({ instruction: 'Go.' }))).toBeInstanceOf(StreamError)
    await new Promise((resolve) => setTimeout(resolve, 20))
    expect(server.cancels).toEqual([])
  })

  it('breaking out of textStream aborts too', async () => {
    const server = mock({ narrate: tokenStream({ route: 'narrate', tokens: { narrate: ['a', 'b', 'c', 'd'] } }) })
    const run = testClient().narrate({ instruction: 'Go.' })
    for await (const text of run.textStream) {
      expect(text).toBe('a')
      break
    }
    expect(await rejectionOf(run)).toBeInstanceOf(UserAbortError)
    await settled(() => server.cancels.length === 1)
  })
})

describe('abort helpers', () => {
  it('untilAborted rejects with the signal\'s reason, also when the promise fails because of the abort', async () => {
    const controller = new AbortController()
    const reason = new TimeoutError('idle', 5)
    // A fetch-like promise that fails with its own AbortError once the signal fires.
    const fetchLike = new Promise((_, reject) =>
      controller.signal.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError'))),
    )
    const waiting = untilAborted(fetchLike, controller.signal)
    controller.abort(reason)
    await expect(waiting).rejects.toBe(reason)
    await expect(untilAborted(Promise.resolve(1), controller.signal)).rejects.toBe(reason)
    await expect(untilAborted(Promise.reject(new Error('own')), new AbortController().signal)).rejects.toThrow('own')
    await expect(untilAborted(Promise.resolve(7), new AbortController().signal)).resolves.toBe(7)
  })

  it('abortableSleep waits, or stops at once with the reason and clears its timer', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
    try {
      const controller = new AbortController()
      let slept = false
      const sleep = abortableSleep(1000, controller.signal).then(() => (slept = true))
      await vi.advanceTimersByTimeAsync(999)
      expect(slept).toBe(false)
      await vi.advanceTimersByTimeAsync(1)
      expect(slept).toBe(true)

      const stopped = abortableSleep(60_000, controller.signal)
      controller.abort('bye')
      await expect(stopped).rejects.toBe('bye')
      expect(vi.getTimerCount()).toBe(0)
    } finally {
      vi.useRealTimers()
    }
  })

  it('linkUserSignal turns the caller\'s abort into a UserAbortError, until unlinked', () => {
    const seen: UserAbortError[] = []
    const controller = new AbortController()
    const unlink = linkUserSignal(controller.signal, (error) => seen.push(error))
    unlink()
    controller.abort('ignored')
    expect(seen).toHaveLength(0)
    linkUserSignal(AbortSignal.abort('early'), (error) => seen.push(error))
    expect(seen[0]).toBeInstanceOf(UserAbortError)
    expect(seen[0]!.reason).toBe('early')
  })
})
