import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import {
  APIError,
  AuthenticationError,
  BadRequestError,
  ContentRefusedError,
  InvalidInputError,
  NotFoundError,
  RateLimitError,
  ServerError,
  ServiceUnavailableError,
  StreamEndedEarlyError,
  StreamError,
  ValidationError,
  type PipelineEvent,
  type TextRunEvent,
} from '../../src/index'
import { HealthSchema } from '../../src/schemas/index'
import { rawStream, tokenStream } from '../../src/testing'
import { camelizeKeys } from '../../src/wire/case'
import { BASE_URL, PNG_BASE64, collect, rejectionOf, testClient, useMockServer } from './support/mock-server'

const contractDir = new URL('../contract/', import.meta.url)
const load = (name: string) => JSON.parse(readFileSync(new URL(name, contractDir), 'utf8'))

interface StreamCase {
  name: string
  route: string
  file: string
  result?: Record<string, unknown>
  texts?: Record<string, string>
  error?: { code: string; retryable: boolean }
}

const streams: StreamCase[] = load('streams.json').streams
const drift: { name: string; route: string; sse: string; expect: string }[] = load('drift.json').streams
const errors: { status: number; headers: Record<string, string>; body: any }[] = load('errors.json').errors
const health: { valid: unknown[]; invalid: unknown[] } = load('health.json')

interface RequestCase {
  name: string
  route: string
  body: Record<string, unknown>
  status?: number
  code?: string
  param?: string
}
const requests: { valid: RequestCase[]; invalid: RequestCase[] } = load('requests.json')

const { mock } = useMockServer()

function start(route: string): PromiseLike<unknown> & AsyncIterable<TextRunEvent | PipelineEvent> {
  const client = testClient()
  const image = `data:image/png;base64,${PNG_BASE64}`
  if (route === '/v1/describe') return client.describe({ image })
  if (route === '/v1/narrate') return client.narrate({ instruction: 'Continue.' })
  return client.pipeline({ image, instruction: 'Continue.' })
}

const routeName = (route: string) => route.slice('/v1/'.length) as 'describe' | 'narrate' | 'pipeline'

describe('contract: recorded streams', () => {
  for (const stream of streams) {
    const bytes = new Uint8Array(readFileSync(new URL(stream.file, contractDir)))
    for (const chunkSize of [undefined, 1, 7]) {
      it(`${stream.name} (${chunkSize ? `${chunkSize}-byte chunks` : 'one chunk'})`, async () => {
        mock({ [routeName(stream.route)]: rawStream(bytes, chunkSize) })
        const run = start(stream.route)
        const texts: Record<string, string> = {}
        const events: { type: string }[] = []
        const consume = async () => {
          for await (const event of run) {
            events.push(event)
            if (event.type === 'delta') texts[event.stage] = (texts[event.stage] ?? '') + event.text
          }
        }
        if (stream.error) {
          const error = await rejectionOf(consume())
          expect(error).toBeInstanceOf(StreamError)
          expect(error).toMatchObject({ code: stream.error.code, retryable: stream.error.retryable })
          await expect(run).rejects.toBe(error)
          return
        }
        await consume()
        expect(await run).toEqual(camelizeKeys(stream.result))
        expect(texts).toEqual(stream.texts)
        expect(events[0]).toEqual({ type: 'run', id: (stream.result as { id: string }).id })
        expect(events.at(-1)).toEqual({ type: 'done', ...(camelizeKeys(stream.result) as object) })
      })
    }
  }

  it('parses the same transcripts with CRLF line endings', async () => {
    const text = readFileSync(new URL('streams/narrate.sse', contractDir), 'utf8').replace(/\n/g, '\r\n')
    mock({ narrate: rawStream(text, 5) })
    const result = await start('/v1/narrate')
    expect(result).toMatchObject({ text: 'Snow fell — 雪 — softly. 🌙' })
  })
})

describe('contract: drift is rejected', () => {
  for (const stream of drift) {
    it(`${stream.name} → ${stream.expect}`, async () => {
      mock({ [routeName(stream.route)]: rawStream(stream.sse) })
      const run = start(stream.route)
      const error = await rejectionOf(collect(run))
      if (stream.expect === 'validation_error') {
        expect(error).toBeInstanceOf(ValidationError)
        expect((error as ValidationError).code).toBe('validation_error')
      } else {
        expect(error).toBeInstanceOf(StreamEndedEarlyError)
        expect((error as StreamError).code).toBe('stream_ended_early')
      }
    })
  }
})

describe('contract: HTTP errors map to typed classes', () => {
  const expectedClass = (status: number, code: string) =>
    ({
      400: BadRequestError,
      413: BadRequestError,
      415: BadRequestError,
      422: BadRequestError,
      401: AuthenticationError,
      403: code === 'content_refused' ? ContentRefusedError : AuthenticationError,
      404: NotFoundError,
      429: RateLimitError,
      500: ServerError,
      503: ServiceUnavailableError,
    })[status] ?? APIError

  for (const fixture of errors) {
    const code = fixture.body.error.code
    it(`${fixture.status} ${code}`, async () => {
      mock({ narrate: { kind: 'http', status: fixture.status, body: fixture.body, headers: fixture.headers } })
      const error = await rejectionOf(start('/v1/narrate'))
      expect(error).toBeInstanceOf(expectedClass(fixture.status, code))
      const apiError = error as APIError
      expect(apiError).toMatchObject({ status: fixture.status, code, requestId: fixture.headers['x-request-id'] })
      expect(apiError.param).toBe(fixture.body.error.param)
      if (fixture.headers['retry-after']) {
        expect((error as RateLimitError).retryAfter).toBe(Number(fixture.headers['retry-after']) * 1000)
      }
      if (error instanceof BadRequestError) {
        expect(error.details).toEqual(fixture.body.error.details ?? [])
      }
      if (code === 'not_ready') {
        expect(error).toMatchObject({ state: fixture.body.error.state, reason: fixture.body.error.reason })
        if (!fixture.headers['retry-after']) expect((error as ServiceUnavailableError).retryAfter).toBeUndefined()
      }
    })
  }
})

describe('contract: health bodies', () => {
  it.each(health.valid.map((body, i) => [i, body]))('valid body %i parses', (_, body) => {
    expect(HealthSchema.safeParse(camelizeKeys(body)).success).toBe(true)
  })
  it.each(health.invalid.map((body, i) => [i, body]))('invalid body %i is rejected by client.health()', async (_, body) => {
    mock({ health: [body as Record<string, unknown>] })
    const error = await rejectionOf(testClient().health())
    expect(error).toBeInstanceOf(ValidationError)
  })
  it('client.health() returns a valid body camelCased', async () => {
    mock({ health: [health.valid[1] as Record<string, unknown>] })
    expect(await testClient({ baseURL: BASE_URL }).health()).toEqual(camelizeKeys(health.valid[1]))
  })
})

/** A fixture's body through the client, in the SDK's camelCase: the error, or the body sent. */
async function sendRequest(fixture: RequestCase): Promise<{ error: unknown; sent: Record<string, unknown> | undefined }> {
  const route = routeName(fixture.route)
  const server = mock({ [route]: tokenStream({ route }) })
  const client = testClient()
  const request = camelizeKeys(fixture.body) as never
  let error: unknown
  try {
    if (route === 'describe') await client.describe(request)
    else if (route === 'narrate') await client.narrate(request)
    else await client.pipeline(request)
  } catch (caught) {
    error = caught
  }
  return { error, sent: server.requests[0]?.body as Record<string, unknown> | undefined }
}

/** A body but its image (which the SDK sends in its checked wire form) and `stream`. */
function beyondImage(body: Record<string, unknown>): Record<string, unknown> {
  const { image: _image, stream: _stream, ...rest } = body
  return rest
}

const camelPath = (param: string) => param.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase())

describe('contract: request bodies', () => {
  for (const fixture of requests.valid) {
    it(`${fixture.name} is accepted and sent as recorded`, async () => {
      const { error, sent } = await sendRequest(fixture)
      expect(error).toBeUndefined()
      expect(beyondImage(sent!)).toEqual(beyondImage(fixture.body))
    })
  }
  // The SDK checks types, the server bounds: an invalid body is refused before it is sent,
  // naming the field the server names, or it goes out as it is for the server to refuse.
  for (const fixture of requests.invalid.filter((invalid) => invalid.code === 'invalid_request')) {
    it(`${fixture.name} is refused naming ${fixture.param}, or left to the server`, async () => {
      const { error, sent } = await sendRequest(fixture)
      if (error === undefined) {
        expect(beyondImage(sent!)).toEqual(beyondImage(fixture.body))
      } else {
        expect(error).toBeInstanceOf(InvalidInputError)
        expect(error).toMatchObject({ code: 'invalid_request', param: camelPath(fixture.param!) })
        expect(sent).toBeUndefined()
      }
    })
  }
})
