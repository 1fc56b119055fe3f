// Runs survive a broken stream: the SDK resumes from the last event id it saw; runs by id;
// background runs.
import { http, HttpResponse } from 'msw'
import { describe, expect, it } from 'vitest'
import { NotFoundError, StreamEndedEarlyError, type NarrateEvent } from '../../src/index'
import { BASE_URL, collect, rejectionOf, testClient, useMockServer } from './support/mock-server'

const { server } = useMockServer()
const RUN = 'run_0000000000000000000000aa'

function sse(events: [number, string, object][]): string {
  return events.map(([id, name, data]) => `event: ${name}\nid: ${id}\ndata: ${JSON.stringify(data)}\n\n`).join('')
}

const result = (text: string) => ({
  id: RUN,
  text,
  finish_reason: 'stop',
  model: 'm',
  usage: { input_tokens: 3, output_tokens: 2 },
  timings: { queued_ms: 0, first_token_ms: 1, total_ms: 2, tokens_per_second: 1 },
})

const EVENTS: [number, string, object][] = [
  [1, 'run', { id: RUN }],
  [2, 'status', { state: 'running' }],
  [3, 'stage-start', { stage: 'narrate' }],
  [4, 'delta', { stage: 'narrate', text: 'Once ' }],
  [5, 'delta', { stage: 'narrate', text: 'upon' }],
  [6, 'stage-end', { stage: 'narrate', ...result('Once upon') }],
  [7, 'done', result('Once upon')],
]

function streamResponse(body: string) {
  return new HttpResponse(body, { headers: { 'content-type': 'text/event-stream' } })
}

/** A server whose first stream breaks after `breakAfter` events; resumes serve the rest. */
function breakingServer(breakAfter: number, breaksOnResume = 0) {
  const resumes: (string | null)[] = []
  server.use(
    http.post(`${BASE_URL}/v1/narrate`, () => streamResponse(sse(EVENTS.slice(0, breakAfter)))),
    http.get(`${BASE_URL}/v1/runs/${RUN}/events`, ({ request }) => {
      const after = Number(request.headers.get('last-event-id'))
      resumes.push(request.headers.get('last-event-id'))
      const rest = EVENTS.filter(([id]) => id > after)
      return streamResponse(sse(resumes.length <= breaksOnResume ? rest.slice(0, 1) : rest))
    }),
  )
  return resumes
}

describe('a broken stream resumes where it broke', () => {
  it('with no gap and no repeat, from the last event id', async () => {
    const resumes = breakingServer(4)
    const run = testClient().narrate({ instruction: 'x' })
    const events: NarrateEvent[] = await collect(run)
    expect(resumes).toEqual(['4'])
    expect(events.map((event) => event.type)).toEqual(['run', 'status', 'stage-start', 'delta', 'delta', 'stage-end', 'done'])
    expect((await run).text).toBe('Once upon')
  })

  it('again when the resumed stream breaks too', async () => {
    const resumes = breakingServer(3, 1)
    const text = (await collect(testClient().narrate({ instruction: 'x' }).textStream)).join('')
    expect(resumes).toEqual(['3', '4'])
    expect(text).toBe('Once upon')
  })

  it('a run the server no longer has is its NotFoundError', async () => {
    server.use(
      http.post(`${BASE_URL}/v1/narrate`, () => streamResponse(sse(EVENTS.slice(0, 4)))),
      http.get(`${BASE_URL}/v1/runs/${RUN}/events`, () =>
        HttpResponse.json({ error: { code: 'not_found', message: 'No such run.', request_id: 'req_1' } }, { status: 404 }),
      ),
      http.post(`${BASE_URL}/v1/runs/${RUN}/cancel`, () => HttpResponse.json({ id: RUN, cancelled: false, state: 'done' })),
    )
    expect(await rejectionOf(testClient().narrate({ instruction: 'x' }))).toBeInstanceOf(NotFoundError)
  })

  it('a stream that breaks before the run event cannot resume: it ended early', async () => {
    server.use(http.post(`${BASE_URL}/v1/narrate`, () => streamResponse('')))
    expect(await rejectionOf(testClient().narrate({ instruction: 'x' }))).toBeInstanceOf(StreamEndedEarlyError)
  })
})

describe('runs by id', () => {
  it('get parses the state and the result', async () => {
    server.use(
      http.get(`${BASE_URL}/v1/runs/${RUN}`, () =>
        HttpResponse.json({ id: RUN, state: 'done', events: 7, result: result('Once upon') }),
      ),
    )
    const status = await testClient().runs.get(RUN)
    expect(status).toMatchObject({ id: RUN, state: 'done', events: 7, result: { text: 'Once upon', finishReason: 'stop' } })
  })

  it('stream follows a run from any event on', async () => {
    const seen: (string | null)[] = []
    server.use(
      http.get(`${BASE_URL}/v1/runs/${RUN}/events`, ({ request }) => {
        seen.push(request.headers.get('last-event-id'))
        return streamResponse(sse(EVENTS.slice(4)))
      }),
    )
    const run = testClient().runs.stream(RUN, { after: 4 })
    expect(await collect(run.textStream)).toEqual(['upon'])
    expect(seen).toEqual(['4'])
    expect(run.id).toBe(RUN)
    expect(await run).toMatchObject({ id: RUN, text: 'Once upon' })
  })

  it('leaving a followed run does not cancel it: it may be a background run', async () => {
    const cancels: string[] = []
    server.use(
      http.get(`${BASE_URL}/v1/runs/${RUN}/events`, () => streamResponse(sse(EVENTS.slice(0, 5)) + ': waiting\n\n')),
      http.post(`${BASE_URL}/v1/runs/${RUN}/cancel`, ({ request }) => {
        cancels.push(request.url)
        return HttpResponse.json({ id: RUN, cancelled: true, state: 'cancelled' })
      }),
    )
    const run = testClient().runs.stream(RUN)
    for await (const event of run) if (event.type === 'delta') break
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(cancels).toEqual([])
  })

  it('refuses an after that is not a count of events', () => {
    expect(() => testClient().runs.stream(RUN, { after: -1 })).toThrow(/after/)
  })
})

describe('background runs', () => {
  it('start at once and answer with the id; the body has no stream flag', async () => {
    let body: Record<string, unknown> = {}
    server.use(
      http.post(`${BASE_URL}/v1/narrate`, async ({ request }) => {
        body = (await request.json()) as Record<string, unknown>
        return HttpResponse.json({ id: RUN, state: 'queued' }, { status: 202 })
      }),
    )
    const started = await testClient().narrate({ instruction: 'x', background: true })
    expect(started).toEqual({ id: RUN, state: 'queued' })
    expect(body).toMatchObject({ instruction: 'x', background: true })
    expect(body).not.toHaveProperty('stream')
  })
})
