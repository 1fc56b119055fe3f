import { describe, expect, it, vi } from 'vitest'
import { InvalidInputError, StreamError, UserAbortError, type PipelineEvent } from '../../src/index'
import { MOCK_RUN_ID, midStreamError, rawStream, stalled, tokenStream } from '../../src/testing'
import { PNG_BASE64, collect, rejectionOf, testClient, useMockServer } from './support/mock-server'

const { mock } = useMockServer()
const image = `data:image/png;base64,${PNG_BASE64}`

describe('a run is one request you can await and iterate', () => {
  it('iterating then awaiting shares the same request', async () => {
    const server = mock({ pipeline: tokenStream({ route: 'pipeline', queuePosition: 2 }) })
    const run = testClient().pipeline({ image, instruction: 'A fable.' })
    const events: PipelineEvent[] = await collect(run)
    const result = await run
    expect(server.requests).toHaveLength(1)
    expect(events.map((e) => e.type)).toEqual([
      'run', 'status', 'status',
      'stage-start', 'delta', 'delta', 'stage-end',
      'stage-start', 'delta', 'delta', 'stage-end',
      'done',
    ])
    expect(events[1]).toEqual({ type: 'status', state: 'queued', position: 2 })
    expect(result.id).toBe(MOCK_RUN_ID)
    expect(result.description.text).toBe('A red circle on a blue field.')
    expect(result.story).toMatchObject({ text: 'Once upon a time, a circle rolled away.', finishReason: 'stop' })
    expect(result.story.usage).toEqual({ inputTokens: 32, outputTokens: 2 })
    expect(run.id).toBe(MOCK_RUN_ID)
    expect(run.requestId).toMatch(/^req_/)
  })

  it('textStream yields only delta text', async () => {
    mock({ narrate: tokenStream({ route: 'narrate', tokens: { narrate: ['Hel', 'lo'] } }) })
    const run = testClient().narrate({ instruction: 'Hi' })
    expect(await collect(run.textStream)).toEqual(['Hel', 'lo'])
    expect((await run).text).toBe('Hello')
  })

  it('sends nothing until awaited or iterated', async () => {
    const server = mock({ narrate: tokenStream({ route: 'narrate' }) })
    const run = testClient().narrate({ instruction: 'Hi' })
    await new Promise((resolve) => setTimeout(resolve, 10))
    expect(server.requests).toHaveLength(0)
    await run
    expect(server.requests).toHaveLength(1)
  })

  it('sends snake_case JSON with stream: true, SSE accept, auth and an idempotency key', async () => {
    const server = mock({ pipeline: tokenStream({ route: 'pipeline' }) })
    const client = testClient({ apiKey: 'sk-1', modal: { key: 'k', secret: 's' }, headers: { 'x-app': 'demo' } })
    const run = client.pipeline(
      {
        image,
        instruction: 'Tell it.',
        describe: { style: 'scene', maxTokens: 64 },
        narrate: { history: [{ role: 'user', content: 'keep_this_key_untouched' }], repetitionPenalty: 1.1, topK: 40 },
      },
      { headers: { 'x-request-id': 'req_mine' }, idempotencyKey: 'key-1' },
    )
    await run
    const [request] = server.requests
    expect(request!.body).toEqual({
      image: { data: PNG_BASE64, media_type: 'image/png' },
      instruction: 'Tell it.',
      describe: { style: 'scene', max_tokens: 64 },
      narrate: { history: [{ role: 'user', content: 'keep_this_key_untouched' }], repetition_penalty: 1.1, top_k: 40 },
      stream: true,
    })
    expect(request!.headers).toMatchObject({
      accept: 'text/event-stream',
      'content-type': 'application/json',
      'x-api-key': 'sk-1',
      'modal-key': 'k',
      'modal-secret': 's',
      'x-app': 'demo',
      'x-request-id': 'req_mine',
      'idempotency-key': 'key-1',
    })
    expect(run.idempotencyKey).toBe('key-1')
  })

  it('each call gets its own idempotency key', async () => {
    const server = mock({ narrate: tokenStream({ route: 'narrate' }) })
    const client = testClient()
    await client.narrate({ instruction: 'a' })
    await client.narrate({ instruction: 'b' })
    const [first, second] = server.requests.map((r) => r.headers['idempotency-key'])
    expect(first).not.toBe(second)
  })

  it('rejects a malformed request before sending anything', async () => {
    const server = mock({ narrate: tokenStream({ route: 'narrate' }) })
    const error = await rejectionOf(
      testClient().narrate({ instruction: 'x', maxTokens: 'many' as unknown as number }),
    )
    expect(error).toBeInstanceOf(InvalidInputError)
    expect(error).toMatchObject({ code: 'invalid_request', param: 'maxTokens' })
    expect(server.requests).toHaveLength(0)
  })

  it('ignores unknown events and unknown fields', async () => {
    const sse =
      'event: run\ndata: {"id":"run_1","extra":true}\n\n' +
      'event: heartbeat\ndata: {"n":1}\n\n' +
      'event: delta\ndata: {"stage":"narrate","text":"Hi","logprob":-0.1}\n\n' +
      'event: done\ndata: {"id":"run_1","text":"Hi","finish_reason":"length","model":"m","usage":{"input_tokens":1,"output_tokens":1},' +
      '"timings":{"queued_ms":0,"first_token_ms":0,"total_ms":0,"tokens_per_second":0},"new_field":"x"}\n\n'
    mock({ narrate: rawStream(sse) })
    const run = testClient().narrate({ instruction: 'x' })
    const events = await collect(run)
    expect(events.map((e) => e.type)).toEqual(['run', 'delta', 'done'])
    expect(events[1]).toEqual({ type: 'delta', stage: 'narrate', text: 'Hi' })
    expect(await run).not.toHaveProperty('newField')
  })

  it('rejects a 200 that is not an event stream', async () => {
    mock({ narrate: { kind: 'http', status: 200, body: { id: 'run_1' } } })
    const error = await rejectionOf(testClient().narrate({ instruction: 'x' }))
    expect(error).toMatchObject({ code: 'validation_error', source: 'response' })
  })

  it('validates client options', () => {
    expect(() => testClient({ baseURL: 'localhost:8000' })).toThrow(InvalidInputError)
    expect(() => testClient({ maxRetries: -1 })).toThrow(/maxRetries/)
  })

  it('uses the global fetch of the moment, so one patched after createClient is seen', async () => {
    const client = testClient()
    const seen: string[] = []
    vi.stubGlobal('fetch', async (input: string) => {
      seen.push(input)
      return new Response('{}', { status: 418 })
    })
    try {
      await rejectionOf(client.health())
    } finally {
      vi.unstubAllGlobals()
    }
    expect(seen).toEqual(['http://pictale.test/health'])
  })
})

/** Rejects if `promise` has not settled within `ms` (a deadlock fails fast instead of hanging). */
function within<T>(promise: PromiseLike<T>, ms = 2000): Promise<T> {
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`not settled within ${ms} ms`)), ms)),
  ])
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe('awaiting and iterating the same run', () => {
  const words = ['Once', ' upon', ' a', ' time', '.']

  it('a result awaited before the loop starts is assembled from the iterated events', async () => {
    const server = mock({ narrate: tokenStream({ route: 'narrate', tokens: { narrate: words } }) })
    const run = testClient().narrate({ instruction: 'Hi' })
    const result = run.then((r) => r)
    const texts = await collect(run.textStream)
    expect(texts).toEqual(words)
    expect((await within(result)).text).toBe(words.join(''))
    expect(server.requests).toHaveLength(1)
  })

  it('awaiting inside the textStream loop resolves, and the loop still gets every text in order', async () => {
    const server = mock({ narrate: tokenStream({ route: 'narrate', tokens: { narrate: words }, deltaDelayMs: 2 }) })
    const run = testClient().narrate({ instruction: 'Hi' })
    const texts: string[] = []
    let awaitedText: string | undefined
    for await (const text of run.textStream) {
      texts.push(text)
      if (texts.length === 1) awaitedText = (await within(run)).text
    }
    expect(awaitedText).toBe(words.join(''))
    expect(texts).toEqual(words)
    expect(server.requests).toHaveLength(1)
  })

  it('awaiting inside the event loop leaves the events exactly as a plain iteration sees them', async () => {
    mock({ pipeline: tokenStream({ route: 'pipeline', queuePosition: 1 }) })
    const plain = await collect(testClient().pipeline({ image, instruction: 'A fable.' }))
    const run = testClient().pipeline({ image, instruction: 'A fable.' })
    const events: PipelineEvent[] = []
    for await (const event of run) {
      events.push(event)
      if (event.type === 'run') await within(run)
    }
    expect(events).toEqual(plain)
    const { type: _type, ...done } = events.at(-1) as PipelineEvent & { type: 'done' }
    expect(await run).toEqual(done)
  })

  it('text and result side by side with Promise.all, from one request', async () => {
    const server = mock({ narrate: tokenStream({ route: 'narrate', tokens: { narrate: words } }) })
    const run = testClient().narrate({ instruction: 'Hi' })
    const [texts, result] = await within(Promise.all([collect(run.textStream), run]))
    expect(texts.join('')).toBe(result.text)
    expect(server.requests).toHaveLength(1)
  })

  it('awaiting after iterating gives the same result object every time', async () => {
    mock({ narrate: tokenStream({ route: 'narrate' }) })
    const run = testClient().narrate({ instruction: 'Hi' })
    await collect(run.textStream)
    const first = await run
    expect(await run).toBe(first)
    expect(await run.then((r) => r.text)).toBe(first.text)
  })

  it('leaving the loop after the result arrived keeps the result and sends no cancel', async () => {
    const server = mock({ narrate: tokenStream({ route: 'narrate', tokens: { narrate: words } }) })
    const run = testClient().narrate({ instruction: 'Hi' })
    for await (const _text of run.textStream) {
      await within(run)
      break
    }
    expect((await run).text).toBe(words.join(''))
    await pause(20)
    expect(server.cancels).toEqual([])
  })

  it('an error event reaches the text stream after the texts before it, and the awaited result', async () => {
    mock({ narrate: midStreamError({ tokens: ['It', ' was'] }) })
    const run = testClient().narrate({ instruction: 'Hi' })
    const awaited = rejectionOf(run)
    const texts: string[] = []
    const error = await rejectionOf(
      (async () => {
        for await (const text of run.textStream) texts.push(text)
      })(),
    )
    expect(texts).toEqual(['It', ' was'])
    expect(error).toBeInstanceOf(StreamError)
    expect(await awaited).toBe(error)
  })

  it('abort() while events are read ahead ends the iteration at once, without them', async () => {
    const server = mock({ narrate: stalled({ tokens: ['a', 'b', 'c'] }) })
    const run = testClient().narrate({ instruction: 'Hi' })
    const seen: string[] = []
    let awaited: Promise<unknown> | undefined
    const error = await rejectionOf(
      (async () => {
        for await (const text of run.textStream) {
          seen.push(text)
          awaited = rejectionOf(run) // reads 'b' and 'c' ahead into the buffer
          await pause(30)
          run.abort('enough')
        }
      })(),
    )
    expect(seen).toEqual(['a'])
    expect(error).toBeInstanceOf(UserAbortError)
    expect(await awaited).toBe(error)
    await server.streams[0]!.ended
    expect(server.streams[0]!.closedByClient).toBe(true)
    for (let i = 0; i < 100 && server.cancels.length === 0; i++) await pause(5)
    expect(server.cancels).toEqual([MOCK_RUN_ID])
  })
})

describe('a run is iterated once', () => {
  it.each([
    ['the events after its textStream', (run: AsyncIterable<unknown> & { textStream: AsyncIterable<string> }) => [run.textStream, run]],
    ['its textStream after its events', (run: AsyncIterable<unknown> & { textStream: AsyncIterable<string> }) => [run, run.textStream]],
    ['its textStream twice', (run: AsyncIterable<unknown> & { textStream: AsyncIterable<string> }) => [run.textStream, run.textStream]],
  ] as const)('iterating %s is run_consumed, and the first iteration is unharmed', async (_, order) => {
    mock({ narrate: tokenStream({ route: 'narrate', tokens: { narrate: ['a', 'b'] } }) })
    const run = testClient().narrate({ instruction: 'Hi' })
    const [first, second] = order(run) as [AsyncIterable<unknown>, AsyncIterable<unknown>]
    const firstItems = collect(first)
    const error = await rejectionOf(collect(second))
    expect(error).toBeInstanceOf(InvalidInputError)
    expect(error).toMatchObject({ code: 'run_consumed' })
    expect((error as Error).message).toMatch(/iterated once/)
    expect((await firstItems).length).toBeGreaterThanOrEqual(2)
    expect((await run).text).toBe('ab')
    // Still refused once the first iteration has finished.
    expect(await rejectionOf(collect(run))).toMatchObject({ code: 'run_consumed' })
  })

  it('awaiting with no iteration keeps no events: iterating afterwards is run_consumed, saying why', async () => {
    mock({ narrate: tokenStream({ route: 'narrate' }) })
    const run = testClient().narrate({ instruction: 'Hi' })
    await run
    const error = await rejectionOf(collect(run.textStream))
    expect(error).toBeInstanceOf(InvalidInputError)
    expect(error).toMatchObject({ code: 'run_consumed' })
    expect((error as Error).message).toMatch(/awaited before it was iterated/)
  })

  it('iterating a run that failed before any event gives its error', async () => {
    mock({ narrate: { kind: 'http', status: 400, body: { error: { code: 'invalid_request', message: 'no' } } } })
    const run = testClient().narrate({ instruction: 'Hi' })
    const awaited = await rejectionOf(run)
    expect(await rejectionOf(collect(run))).toBe(awaited)
  })
})
