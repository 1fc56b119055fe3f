import { describe, expect, it, vi } from 'vitest'
import { InvalidInputError, type PipelineEvent } from '../../src/index'
import { MOCK_RUN_ID, rawStream, tokenStream } from '../../src/testing'
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

  it('awaiting first consumes the stream; iterating afterwards is a clear error', async () => {
    mock({ narrate: tokenStream({ route: 'narrate' }) })
    const run = testClient().narrate({ instruction: 'Hi' })
    await run
    const error = await rejectionOf(collect(run))
    expect(error).toBeInstanceOf(InvalidInputError)
    expect(error).toMatchObject({ code: 'run_consumed' })
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
      authorization: 'Bearer sk-1',
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
