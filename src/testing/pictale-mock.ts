import { http, HttpResponse as MswResponse, type HttpHandler } from 'msw'
import { encodeStep, type ScriptStep } from './sse-encoding'
import type { HttpResponse, MockResponse, MockRoute, StreamResponse } from './scenarios'

/** A request the mock received. */
export interface RecordedRequest {
  method: string
  /** Path without the base URL, e.g. `/v1/describe`. */
  path: string
  headers: Record<string, string>
  /** Parsed JSON body, or undefined when there was none. */
  body: unknown
}

/** One SSE response the mock sent. */
export interface RecordedStream {
  route: MockRoute
  /** True once the client closed the connection before the script ended. */
  closedByClient: boolean
  /** Resolves when the stream ends, either way. */
  ended: Promise<void>
}

/** One answer or a sequence of answers (used in order, the last one repeating). */
export type RouteScript = MockResponse | MockResponse[] | ((request: RecordedRequest) => MockResponse)

/** Options of {@link pictaleMock}. */
export interface PictaleMockOptions {
  /** The base URL the client under test uses. */
  baseURL: string
  describe?: RouteScript
  narrate?: RouteScript
  pipeline?: RouteScript
  /** `GET /health` bodies, in order (the last repeats), or HTTP responses. Default: ready. */
  health?: (HttpResponse | Record<string, unknown>)[]
}

/** A mocked pictale server: msw handlers plus what they saw. */
export interface PictaleMock {
  /** Pass to `setupServer(...)` or `server.use(...)`. */
  handlers: HttpHandler[]
  /** Every request received, in order (generation, cancel and health routes). */
  requests: RecordedRequest[]
  /** Run ids the client asked to cancel, in order. */
  cancels: string[]
  /** Every SSE response sent, in order. */
  streams: RecordedStream[]
}

/** The health body of a ready dev-profile server. */
export const READY_HEALTH = {
  status: 'ok',
  profile: 'dev',
  models: {
    vision: { id: 'pictale-dev/qwen2_5_vl-tiny', loaded: true },
    writer: { id: 'pictale-dev/mistral-nemo-tiny', loaded: true },
  },
  version: '1',
}

/** The health body of a server whose models failed to load (`status: 'failed'`). */
export function failedHealth(reason = 'model_not_found', detail = 'mock checkpoint not found') {
  return {
    ...READY_HEALTH,
    status: 'failed',
    models: {
      vision: { ...READY_HEALTH.models.vision, loaded: false },
      writer: { ...READY_HEALTH.models.writer, loaded: false },
    },
    failure: { reason, message: detail },
  }
}

/**
 * msw handlers that behave like a pictale server following a script. Unscripted generation
 * routes answer `404 not_found`.
 *
 * @example
 * const mock = pictaleMock({ baseURL, pipeline: [rateLimited(1), tokenStream({ route: 'pipeline' })] })
 * server.use(...mock.handlers)
 */
export function pictaleMock(options: PictaleMockOptions): PictaleMock {
  const base = options.baseURL.replace(/\/+$/, '')
  const mock: PictaleMock = { handlers: [], requests: [], cancels: [], streams: [] }
  let requestCount = 0
  const nextRequestId = () => `req_${(++requestCount).toString(16).padStart(24, '0')}`

  const record = async (request: Request): Promise<RecordedRequest> => {
    const text = await request.text()
    let body: unknown
    try {
      body = text ? JSON.parse(text) : undefined
    } catch {
      body = text
    }
    const recorded: RecordedRequest = {
      method: request.method,
      path: new URL(request.url).pathname,
      headers: Object.fromEntries(request.headers),
      body,
    }
    mock.requests.push(recorded)
    return recorded
  }

  for (const route of ['describe', 'narrate', 'pipeline'] as const) {
    const pick = sequence(options[route])
    mock.handlers.push(
      http.post(`${base}/v1/${route}`, async ({ request }) => {
        const recorded = await record(request)
        const answer = pick(recorded) ?? notFound()
        const requestId = nextRequestId()
        if (answer.kind === 'http') return httpAnswer(answer.status, answer.body, answer.headers, requestId)
        const { stream, recordedStream } = sseBody(route, answer, request.signal)
        mock.streams.push(recordedStream)
        return new MswResponse(stream, {
          status: 200,
          headers: {
            'content-type': 'text/event-stream',
            'cache-control': 'no-cache',
            'x-request-id': requestId,
            ...answer.headers,
          },
        })
      }),
    )
  }

  mock.handlers.push(
    http.post(`${base}/v1/runs/:id/cancel`, async ({ request, params }) => {
      await record(request)
      const id = String(params.id)
      mock.cancels.push(id)
      return httpAnswer(200, { id, cancelled: true, state: 'cancelled' }, {}, nextRequestId())
    }),
  )

  const healthAnswers = options.health ?? [READY_HEALTH]
  let healthIndex = 0
  mock.handlers.push(
    http.get(`${base}/health`, async ({ request }) => {
      await record(request)
      const answer = healthAnswers[Math.min(healthIndex++, healthAnswers.length - 1)]
      if (answer !== undefined && isHttpResponse(answer)) {
        return httpAnswer(answer.status, answer.body, answer.headers, nextRequestId())
      }
      return httpAnswer(200, answer ?? READY_HEALTH, {}, nextRequestId())
    }),
  )
  return mock
}

/** Just the msw handlers of {@link pictaleMock}, for tests that need no recording. */
export function pictaleHandlers(options: PictaleMockOptions): HttpHandler[] {
  return pictaleMock(options).handlers
}

function sequence(script: RouteScript | undefined): (request: RecordedRequest) => MockResponse | undefined {
  if (script === undefined) return () => undefined
  if (typeof script === 'function') return script
  const answers = Array.isArray(script) ? script : [script]
  let index = 0
  return () => answers[Math.min(index++, answers.length - 1)]
}

function isHttpResponse(value: object): value is HttpResponse {
  return (value as { kind?: unknown }).kind === 'http'
}

function notFound(): MockResponse {
  return { kind: 'http', status: 404, body: { error: { code: 'not_found', message: 'no script for this route' } } }
}

function httpAnswer(status: number, body: unknown, headers: Record<string, string> | undefined, requestId: string) {
  const withId =
    typeof body === 'object' && body !== null && 'error' in body
      ? { error: { request_id: requestId, ...(body as { error: object }).error } }
      : body
  return MswResponse.json(withId as object, { status, headers: { 'x-request-id': requestId, ...headers } })
}

function sseBody(route: MockRoute, answer: StreamResponse, clientSignal: AbortSignal) {
  const steps = answer.steps[Symbol.iterator]()
  let id = 0
  let endStream!: () => void
  const recordedStream: RecordedStream = {
    route,
    closedByClient: false,
    ended: new Promise<void>((resolve) => (endStream = resolve)),
  }
  const enqueue = (controller: ReadableStreamDefaultController<Uint8Array>, bytes: Uint8Array) => {
    const size = answer.chunkSize ?? bytes.length
    for (let start = 0; start < bytes.length; start += size) {
      controller.enqueue(bytes.subarray(start, start + size))
    }
  }
  let ended = false
  const end = (byClient: boolean) => {
    if (ended) return
    ended = true
    recordedStream.closedByClient = byClient
    endStream()
  }
  // The client hanging up shows as its request signal aborting or the body being cancelled,
  // depending on the fetch implementation; either counts.
  clientSignal.addEventListener('abort', () => end(true), { once: true })
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      // Send steps up to the next pause, so a long script flows without a timer per event.
      let sent = 0
      for (;;) {
        const next = steps.next()
        if (ended) return
        if (next.done) {
          controller.close()
          end(false)
          return
        }
        const step: ScriptStep = next.value
        if ('stall' in step) return new Promise<void>(() => {})
        if ('waitMs' in step) {
          if (sent > 0) {
            // Resume with the wait on the next pull.
            return new Promise<void>((resolve) => setTimeout(resolve, step.waitMs))
          }
          await new Promise((resolve) => setTimeout(resolve, step.waitMs))
          continue
        }
        enqueue(controller, encodeStep(step, 'event' in step ? ++id : id))
        sent++
        if (sent >= 256) return
      }
    },
    cancel() {
      end(true)
    },
  }, { highWaterMark: 0 })
  return { stream, recordedStream }
}
