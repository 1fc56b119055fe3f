import { describe, expect, it } from 'vitest'
import { encodeStep, stageResult, tokenStream, type ScriptStep } from '../../src/testing'
import { BASE_URL, testClient, useMockServer } from './support/mock-server'

const { mock } = useMockServer()
const EVENTS = 100_000

function* tokens(count: number) {
  for (let i = 0; i < count; i++) yield 'x'
}

function heapAfterGc(): number {
  const gc = (globalThis as { gc?: () => void }).gc
  if (!gc) throw new Error('run with --expose-gc (vitest.config.ts sets it)')
  gc()
  return process.memoryUsage().heapUsed
}

/**
 * A fetch that answers with a generated stream and keeps nothing itself, so heap growth is the
 * client's alone (msw tees mocked bodies, and a scripted server accumulates the stage text).
 */
function generatedStreamFetch(deltas: number, text: string): typeof fetch {
  return async () => {
    function* steps(): Generator<ScriptStep> {
      yield { event: 'run', data: { id: 'run_1' } }
      yield { event: 'stage-start', data: { stage: 'narrate' } }
      for (let i = 0; i < deltas; i++) {
        yield { event: 'delta', data: { stage: 'narrate', text } }
        if (i % 1000 === 0) yield { comment: 'ping' }
      }
      const result = { ...stageResult('narrate', 'not the concatenation: only the count matters here', deltas) }
      yield { event: 'stage-end', data: { stage: 'narrate', ...result } }
      yield { event: 'done', data: { id: 'run_1', ...result } }
    }
    const source = steps()
    let id = 0
    const body = new ReadableStream<Uint8Array>(
      {
        pull(controller) {
          const next = source.next()
          if (next.done) return controller.close()
          controller.enqueue(encodeStep(next.value, ++id))
        },
      },
      { highWaterMark: 0 },
    )
    return new Response(body, { headers: { 'content-type': 'text/event-stream' } })
  }
}

describe('a 100k-event stream', () => {
  it('is iterated without keeping events: heap stays flat', async () => {
    const fetch = generatedStreamFetch(EVENTS, 'word '.repeat(20))
    const run = testClient({ baseURL: BASE_URL, fetch }).narrate({ instruction: 'Go on.' })
    let deltas = 0
    let heapAt10k = 0
    let growth = 0
    for await (const event of run) {
      if (event.type !== 'delta') continue
      deltas++
      if (deltas === 10_000) heapAt10k = heapAfterGc()
      if (deltas === EVENTS) growth = heapAfterGc() - heapAt10k
    }
    expect(deltas).toBe(EVENTS)
    expect((await run).usage.outputTokens).toBe(EVENTS)
    // Keeping the 90k later events (100-character texts) would hold over 15 MB.
    expect(growth).toBeLessThan(4 * 1024 * 1024)
  })

  it('through the msw mock, awaiting only reaches the full text', async () => {
    mock({ narrate: tokenStream({ route: 'narrate', tokens: { narrate: tokens(EVENTS) } }) })
    const result = await testClient().narrate({ instruction: 'Go on.' })
    expect(result.text).toHaveLength(EVENTS)
  })
})
