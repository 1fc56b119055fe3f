// Leaving a stream early cancels the job on the server, and the model is free at once.
import { describe, expect, it, vi } from 'vitest'
import { UserAbortError, type CancelResult } from '../../src/index'
import { liveClient, rejectionOf } from './support'

// Greedy decoding on the dev writer repeats itself and never reaches end-of-sequence, so
// this job would decode all 4096 tokens (many seconds) unless it is cancelled.
const LONG_JOB = { instruction: 'Tell a very long story.', temperature: 0, maxTokens: 4096 }

describe('abort mid-stream', () => {
  it('cancels the server job, so the next request is not queued behind it', async () => {
    const cancelAnswers: Promise<CancelResult>[] = []
    const client = liveClient({
      fetch: async (input, init) => {
        const response = await fetch(input, init)
        if (String(input).endsWith('/cancel')) cancelAnswers.push(response.clone().json())
        return response
      },
    })

    const run = client.narrate(LONG_JOB)
    let tokensSeen = 0
    for await (const event of run) {
      if (event.type === 'delta' && ++tokensSeen === 3) break // leaving the loop aborts the run
    }
    expect(await rejectionOf(run)).toBeInstanceOf(UserAbortError)

    // The SDK asked the server to cancel; the job ended cancelled, not done.
    await vi.waitFor(() => expect(cancelAnswers).toHaveLength(1), { timeout: 10_000 })
    expect(await cancelAnswers[0]).toMatchObject({ id: run.id, state: 'cancelled' })

    // The writer is free for the next job: it starts long before the cancelled job's
    // remaining ~4000 tokens could have been decoded at the writer's own decode rate.
    const next = await client.narrate({ instruction: 'One line.', temperature: 0, maxTokens: 32 })
    const remainingMs = ((LONG_JOB.maxTokens - tokensSeen) / next.timings.tokensPerSecond) * 1000
    expect(next.finishReason).toBe('length')
    expect(next.timings.queuedMs).toBeLessThan(remainingMs / 4)
  })

  it('a second story decodes beside a running one; aborting both frees the writer', async () => {
    const client = liveClient()
    const first = client.narrate(LONG_JOB)
    const firstEvents = first[Symbol.asyncIterator]()
    while ((await firstEvents.next()).value?.type !== 'delta') {
      // until the first job is decoding
    }
    // The writer decodes its streams together (PICTALE_WRITER_STREAMS): no queue for the second.
    const statuses: unknown[] = []
    const second = client.narrate({ ...LONG_JOB, instruction: 'Another long story.' })
    for await (const event of second) {
      if (event.type === 'status') statuses.push({ state: event.state, position: event.position })
      if (event.type === 'delta') break // decoding while the first still runs; leaving aborts it
    }
    expect(statuses).toContainEqual({ state: 'running', position: undefined })
    expect(statuses).not.toContainEqual(expect.objectContaining({ state: 'queued' }))
    expect((await firstEvents.next()).value?.type).toBe('delta') // the first goes on meanwhile
    first.abort()
    expect(await rejectionOf(first)).toBeInstanceOf(UserAbortError)
    expect(await rejectionOf(second)).toBeInstanceOf(UserAbortError)

    const next = await client.narrate({ instruction: 'One line.', temperature: 0, maxTokens: 32 })
    const remainingMs = (LONG_JOB.maxTokens / next.timings.tokensPerSecond) * 1000
    expect(next.timings.queuedMs).toBeLessThan(remainingMs / 4)
  })
})
