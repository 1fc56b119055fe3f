import type { ScriptStep } from './sse-encoding'

/** A scripted SSE response (status 200 unless given). */
export interface StreamResponse {
  kind: 'stream'
  /** The steps, consumed lazily: a generator can script millions of events. */
  steps: Iterable<ScriptStep>
  /** Split the body into chunks of at most this many bytes (default: one chunk per step). */
  chunkSize?: number
  headers?: Record<string, string>
}

/** A plain HTTP response, e.g. an error body. */
export interface HttpResponse {
  kind: 'http'
  status: number
  body: unknown
  headers?: Record<string, string>
}

/** What a mocked route answers. */
export type MockResponse = StreamResponse | HttpResponse

/** Route names of the generation endpoints. */
export type MockRoute = 'describe' | 'narrate' | 'pipeline'

/** Stage texts for {@link tokenStream}, one array of deltas per stage. */
export interface StageTokens {
  describe?: Iterable<string>
  narrate?: Iterable<string>
}

/** Options of {@link tokenStream}. */
export interface TokenStreamOptions {
  /** Which route's event order and `done` shape to produce. */
  route: MockRoute
  /** Delta texts per stage. Defaults to a short sentence for each stage the route runs. */
  tokens?: StageTokens
  /** The run id in `run` and `done`. */
  runId?: string
  /** Number of `status: loading` events before the first stage (a cold start). */
  loadingEvents?: number
  /** Queue position to report with a `status: queued` event before running. */
  queuePosition?: number
  /** A `: ping` comment after every this many deltas. */
  pingEvery?: number
  /** Pause between deltas, in ms. */
  deltaDelayMs?: number
  /** Split the body into chunks of at most this many bytes. */
  chunkSize?: number
}

/** The run id scripted streams use unless told otherwise. */
export const MOCK_RUN_ID = 'run_000000000000000000000001'

const DEFAULT_TOKENS: Required<StageTokens> = {
  describe: ['A red circle', ' on a blue field.'],
  narrate: ['Once upon a time', ', a circle rolled away.'],
}

const MODELS = { describe: 'pictale-dev/qwen2_5_vl-tiny', narrate: 'pictale-dev/mistral-nemo-tiny' }

/** A stage result as the server sends it (snake_case), for `stage-end` and `done`. */
export function stageResult(stage: 'describe' | 'narrate', text: string, outputTokens: number, finishReason = 'stop') {
  return {
    text,
    finish_reason: finishReason,
    model: MODELS[stage],
    usage: { input_tokens: 32, output_tokens: outputTokens },
    timings: { queued_ms: 0.5, first_token_ms: 5, total_ms: 20, tokens_per_second: 100 },
  }
}

/** A complete, valid stream for `route`: `run`, statuses, each stage's deltas, `done`. */
export function tokenStream(options: TokenStreamOptions): StreamResponse {
  return { kind: 'stream', steps: { [Symbol.iterator]: () => tokenSteps(options) }, ...(options.chunkSize ? { chunkSize: options.chunkSize } : {}) }
}

function* tokenSteps(options: TokenStreamOptions): Generator<ScriptStep> {
  const id = options.runId ?? MOCK_RUN_ID
  const stages: ('describe' | 'narrate')[] = options.route === 'pipeline' ? ['describe', 'narrate'] : [options.route]
  yield { event: 'run', data: { id } }
  for (let i = 0; i < (options.loadingEvents ?? 0); i++) yield { event: 'status', data: { state: 'loading' } }
  if (options.queuePosition !== undefined) {
    yield { event: 'status', data: { state: 'queued', position: options.queuePosition } }
  }
  yield { event: 'status', data: { state: 'running' } }
  const results: Record<string, ReturnType<typeof stageResult>> = {}
  for (const stage of stages) {
    yield { event: 'stage-start', data: { stage } }
    let text = ''
    let count = 0
    for (const token of options.tokens?.[stage] ?? DEFAULT_TOKENS[stage]) {
      if (options.deltaDelayMs) yield { waitMs: options.deltaDelayMs }
      yield { event: 'delta', data: { stage, text: token } }
      text += token
      count++
      if (options.pingEvery && count % options.pingEvery === 0) yield { comment: 'ping' }
    }
    results[stage] = stageResult(stage, text, count)
    yield { event: 'stage-end', data: { stage, ...results[stage] } }
  }
  const done =
    options.route === 'pipeline'
      ? { id, description: results.describe, story: results.narrate }
      : { id, ...results[options.route] }
  yield { event: 'done', data: done }
}

/**
 * An HTTP error in the protocol's shape (`{"error": {code, message, request_id}}`); `fields`
 * go into the error object as they are (e.g. `state` and `reason` of `not_ready`).
 */
export function httpError(
  status: number,
  code: string,
  options: {
    message?: string
    retryAfterSeconds?: number
    param?: string
    details?: { param: string; message: string }[]
    fields?: Record<string, unknown>
  } = {},
): HttpResponse {
  const headers: Record<string, string> = {}
  if (options.retryAfterSeconds !== undefined) headers['retry-after'] = String(options.retryAfterSeconds)
  return {
    kind: 'http',
    status,
    headers,
    body: {
      error: {
        code,
        message: options.message ?? `mock ${code}`,
        ...(options.param ? { param: options.param } : {}),
        ...(options.details ? { details: options.details } : {}),
        ...options.fields,
      },
    },
  }
}

/** `429 rate_limited` with `Retry-After` (seconds). */
export function rateLimited(retryAfterSeconds = 1): HttpResponse {
  return httpError(429, 'rate_limited', { retryAfterSeconds })
}

/** `503 not_ready` with `Retry-After` and state `loading`: the server is loading its models. */
export function notReady(retryAfterSeconds = 1): HttpResponse {
  return httpError(503, 'not_ready', { retryAfterSeconds, fields: { state: 'loading' } })
}

/**
 * `503 not_ready` with state `failed` and no `Retry-After`: the models failed to load.
 * `reason` is `model_not_found`, `out_of_memory`, `unsupported_gpu`, `load_error` or any other
 * string.
 */
export function modelsFailed(reason = 'model_not_found', detail = 'mock checkpoint not found'): HttpResponse {
  return httpError(503, 'not_ready', {
    message: `The models failed to load (${reason}): ${detail}`,
    fields: { state: 'failed', reason },
  })
}

/** `403 content_refused`: the safety gate refused the request before the stream opened. */
export function refused(): HttpResponse {
  return httpError(403, 'content_refused', { message: 'This request was refused by the content policy.' })
}

/**
 * A stream that sends some deltas, then an `error` event (default `internal`, retryable);
 * `fields` go into the event's data as they are.
 */
export function midStreamError(options: {
  stage?: 'describe' | 'narrate'
  tokens?: string[]
  code?: string
  retryable?: boolean
  fields?: Record<string, unknown>
} = {}): StreamResponse {
  const stage = options.stage ?? 'narrate'
  const steps: ScriptStep[] = [
    { event: 'run', data: { id: MOCK_RUN_ID } },
    { event: 'stage-start', data: { stage } },
    ...(options.tokens ?? ['It was']).map((text) => ({ event: 'delta', data: { stage, text } })),
    {
      event: 'error',
      data: { code: options.code ?? 'internal', message: 'mock failure', retryable: options.retryable ?? true, ...options.fields },
    },
  ]
  return { kind: 'stream', steps }
}

/** A pipeline stream whose image check refuses after the description (an `error` event). */
export function refusedMidStream(): StreamResponse {
  return midStreamError({ stage: 'describe', tokens: ['Shapes.'], code: 'content_refused', retryable: false })
}

/** A stream that sends `run`, a few deltas, then nothing, forever (until the client hangs up). */
export function stalled(options: { stage?: 'describe' | 'narrate'; tokens?: string[]; pingEveryMs?: number } = {}): StreamResponse {
  const stage = options.stage ?? 'narrate'
  return {
    kind: 'stream',
    steps: { [Symbol.iterator]: function* (): Generator<ScriptStep> {
      yield { event: 'run', data: { id: MOCK_RUN_ID } }
      yield { event: 'stage-start', data: { stage } }
      for (const text of options.tokens ?? []) yield { event: 'delta', data: { stage, text } }
      if (options.pingEveryMs) {
        for (;;) {
          yield { waitMs: options.pingEveryMs }
          yield { comment: 'ping' }
        }
      }
      yield { stall: true }
    } },
  }
}

/** An SSE body exactly as given (e.g. a recorded transcript). */
export function rawStream(body: string | Uint8Array, chunkSize?: number): StreamResponse {
  return { kind: 'stream', steps: [{ raw: body }], ...(chunkSize ? { chunkSize } : {}) }
}
