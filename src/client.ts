import {
  resolveOptions,
  resolveTimeouts,
  type CallOptions,
  type ClientOptions,
  type ResolvedOptions,
} from './client-options'
import { InvalidInputError, ValidationError } from './errors/client-errors'
import { linkUserSignal } from './http/abort'
import { newIdempotencyKey, sendRequest } from './http/send-request'
import { prepareImage } from './images/prepare-image'
import type { ImageInput } from './images/image-input'
import { Run } from './run/run'
import type { ResultKind } from './run/decode-event'
import type { DescribeEvent, NarrateEvent, PipelineEvent } from './schemas/events'
import type { Health } from './schemas/health'
import { loadSchemas, type Schemas } from './schemas/load-schemas'
import type { DescribeRequest, NarrateRequest, PipelineRequest } from './schemas/requests'
import type {
  CancelResult,
  DescribeResult,
  NarrateResult,
  PipelineResult,
  RunStatus,
  StartedRun,
  TextResult,
} from './schemas/results'
import { camelizeKeys, snakeizeKeys } from './wire/case'
import { waitUntilReady, type WaitUntilReadyOptions } from './wait-until-ready'

type Schema = {
  safeParse(value: unknown, params?: { reportInput?: boolean }): {
    success: boolean
    data?: unknown
    error?: { issues: Issue[] }
  }
}

/** Picks one schema from the lazily loaded set. */
type SchemaOf = (schemas: Schemas) => Schema

const describeRequest: SchemaOf = (s) => s.DescribeRequestSchema
const narrateRequest: SchemaOf = (s) => s.NarrateRequestSchema
const pipelineRequest: SchemaOf = (s) => s.PipelineRequestSchema

const CANCEL_CONNECT_MS = 10_000

/** A client for one pictale server. Create it with {@link createClient}. */
export class PictaleClient {
  readonly #options: ResolvedOptions

  /** @internal Use {@link createClient}. */
  constructor(options: ClientOptions) {
    this.#options = resolveOptions(options)
  }

  /** The base URL requests go to. */
  get baseURL(): string {
    return this.#options.baseURL
  }

  /**
   * Describes an image with the vision model. Await it for the result or iterate its events.
   * With `background: true` it starts the run and resolves with its id at once.
   */
  describe(request: DescribeRequest & Background, options?: CallOptions): Promise<StartedRun>
  describe(request: DescribeRequest, options?: CallOptions): Run<DescribeResult, DescribeEvent>
  describe(request: DescribeRequest, options: CallOptions = {}): Run<DescribeResult, DescribeEvent> | Promise<StartedRun> {
    if (isBackground(request)) return this.#start('/v1/describe', describeRequest, request, options)
    return this.#run('/v1/describe', 'text', describeRequest, request, options)
  }

  /** Writes prose or a roleplay turn from an instruction (and optional scene context). */
  narrate(request: NarrateRequest & Background, options?: CallOptions): Promise<StartedRun>
  narrate(request: NarrateRequest, options?: CallOptions): Run<NarrateResult, NarrateEvent>
  narrate(request: NarrateRequest, options: CallOptions = {}): Run<NarrateResult, NarrateEvent> | Promise<StartedRun> {
    if (isBackground(request)) return this.#start('/v1/narrate', narrateRequest, request, options)
    return this.#run('/v1/narrate', 'text', narrateRequest, request, options)
  }

  /** Describes the image, then narrates from that description, in one run. */
  pipeline(request: PipelineRequest & Background, options?: CallOptions): Promise<StartedRun>
  pipeline(request: PipelineRequest, options?: CallOptions): Run<PipelineResult, PipelineEvent>
  pipeline(request: PipelineRequest, options: CallOptions = {}): Run<PipelineResult, PipelineEvent> | Promise<StartedRun> {
    if (isBackground(request)) return this.#start('/v1/pipeline', pipelineRequest, request, options)
    return this.#run('/v1/pipeline', 'pipeline', pipelineRequest, request, options)
  }

  /**
   * Runs by id: `get` its state (and result or error once ended), `stream` its events from
   * any point on (a run started elsewhere, in the background, or by an earlier process).
   * Runs are visible only to the API key that started them.
   */
  get runs(): {
    get(runId: string, options?: CallOptions): Promise<RunStatus>
    stream(runId: string, from?: { after?: number }, options?: CallOptions): Run<TextResult | PipelineResult, PipelineEvent>
  } {
    return {
      get: async (runId, options = {}) => {
        const body = await this.#json('GET', `/v1/runs/${encodeURIComponent(checkRunId(runId))}`, undefined, options)
        return (await parseResponse((s) => s.RunStatusSchema, body)) as RunStatus
      },
      stream: (runId, from = {}, options = {}) => {
        const after = from.after ?? 0
        if (!Number.isInteger(after) || after < 0) {
          throw new InvalidInputError('invalid_request', 'after must be a whole number of events, 0 or more', 'after')
        }
        const run = this.#run<TextResult | PipelineResult, PipelineEvent>('', 'any', pipelineRequest, {}, options, {
          runId: checkRunId(runId),
          after,
        })
        return run
      },
    }
  }

  /** `GET /health`: whether the server's models are loaded. Needs no API key. */
  async health(options: CallOptions = {}): Promise<Health> {
    const body = await this.#json('GET', '/health', undefined, options)
    return (await parseResponse((s) => s.HealthSchema, body)) as Health
  }

  /**
   * Asks the server to stop a run by id (`POST /v1/runs/{id}/cancel`). `run.abort()` and
   * leaving a loop early already do this; use it for a run started elsewhere.
   */
  async cancel(runId: string, options: CallOptions = {}): Promise<CancelResult> {
    const body = await this.#json('POST', `/v1/runs/${encodeURIComponent(checkRunId(runId))}/cancel`, {}, options)
    return (await parseResponse((s) => s.CancelResultSchema, body)) as CancelResult
  }

  /**
   * Polls `/health` until the server reports `status: 'ok'` (a deployment's cold start: the
   * container boots, then the models load). Resolves with the last health object.
   */
  waitUntilReady(options: WaitUntilReadyOptions = {}): Promise<Health> {
    return waitUntilReady((call) => this.health(call), options)
  }

  #run<TResult, TEvent extends { type: string }>(
    path: string,
    resultKind: ResultKind,
    schema: SchemaOf,
    request: object,
    call: CallOptions,
    follow?: { runId: string; after: number },
  ): Run<TResult, TEvent> {
    const options = this.#options
    return new Run<TResult, TEvent>({
      path,
      resultKind,
      options,
      call,
      follow,
      idempotencyKey: call.idempotencyKey ?? newIdempotencyKey(),
      buildBody: () => buildBody(options, schema, request, call.extraBody),
      // Leaving a run you started stops it; leaving one you only follow (runs.stream) does
      // not: a background run goes on for whoever comes back (client.cancel stops it).
      cancel: follow
        ? async () => undefined
        : (runId) => this.cancel(runId, { maxRetries: 0, timeout: { connectMs: CANCEL_CONNECT_MS }, headers: call.headers }),
    })
  }

  /** A `background: true` call: the server answers `202 {id, state}` at once. */
  async #start(path: string, schema: SchemaOf, request: object, call: CallOptions): Promise<StartedRun> {
    const wire = await buildBody(this.#options, schema, request, call.extraBody)
    delete wire.stream
    const body = await this.#json('POST', path, wire, {
      ...call,
      headers: { 'idempotency-key': call.idempotencyKey ?? newIdempotencyKey(), ...call.headers },
    })
    return (await parseResponse((s) => s.StartedRunSchema, body)) as StartedRun
  }

  async #json(method: 'GET' | 'POST', path: string, body: unknown, call: CallOptions): Promise<unknown> {
    const timeouts = resolveTimeouts(this.#options.timeout, call.timeout)
    const controller = new AbortController()
    const unlink = linkUserSignal(call.signal, (error) => controller.abort(error))
    try {
      const response = await sendRequest(this.#options, {
        method,
        path,
        body,
        headers: body === undefined ? { accept: 'application/json' } : { 'content-type': 'application/json', accept: 'application/json' },
        callHeaders: call.headers,
        maxRetries: call.maxRetries ?? this.#options.maxRetries,
        connectMs: timeouts.connectMs,
        signal: controller.signal,
      })
      const requestId = response.headers.get('x-request-id') ?? undefined
      const text = await response.text()
      try {
        return { data: JSON.parse(text), requestId }
      } catch {
        throw new ValidationError('response', ['body is not JSON'], text, requestId)
      }
    } catch (error) {
      throw controller.signal.aborted ? controller.signal.reason : error
    } finally {
      unlink()
    }
  }
}

/** The `background` flag of describe, narrate and pipeline. */
export interface Background {
  /** Start the run and resolve with its id at once; it runs to its end with nobody listening. */
  background: true
}

function isBackground(request: object): boolean {
  return (request as { background?: unknown }).background === true
}

function checkRunId(runId: string): string {
  if (typeof runId !== 'string' || runId === '') {
    throw new InvalidInputError('invalid_request', 'runId must be a non-empty string', 'runId')
  }
  return runId
}

async function parseResponse(schema: SchemaOf, body: unknown): Promise<unknown> {
  const { data, requestId } = body as { data: unknown; requestId: string | undefined }
  const parsed = schema(await loadSchemas()).safeParse(camelizeKeys(data))
  if (!parsed.success) {
    throw new ValidationError('response', issueLines(parsed.error?.issues ?? []), data, requestId)
  }
  return parsed.data
}

async function buildBody(
  options: ResolvedOptions,
  schema: SchemaOf,
  request: object,
  extraBody: Record<string, unknown> | undefined,
): Promise<Record<string, unknown>> {
  const parsed = schema(await loadSchemas()).safeParse(request, { reportInput: true })
  if (!parsed.success) {
    const issues = parsed.error?.issues ?? []
    const first = issues[0]
    const unknownKey = first?.code === 'unrecognized_keys' ? (first as { keys?: string[] }).keys?.[0] : undefined
    const param = [...(first?.path ?? []).map(String), ...(unknownKey ? [unknownKey] : [])].join('.')
    throw new InvalidInputError('invalid_request', `invalid request: ${issueLines(issues).join('; ')}`, param || undefined)
  }
  const { image, ...rest } = request as { image?: unknown }
  const wire = snakeizeKeys(rest) as Record<string, unknown>
  if (image !== undefined) {
    const resolved = options.resolveImage ? await options.resolveImage(image) : (image as ImageInput)
    wire.image = await prepareImage(resolved, options.maxImageBytes)
  }
  wire.stream = true
  return extraBody ? { ...wire, ...extraBody } : wire
}

type Issue = { path: PropertyKey[]; message: string; code?: string; input?: unknown; keys?: string[]; expected?: string }

function issueLines(issues: Issue[]): string[] {
  return issues.map((issue) => {
    const where = issue.path.map(String).join('.') || '(request)'
    if (issue.code === 'unrecognized_keys') {
      return `${where}: unknown field${(issue.keys?.length ?? 0) > 1 ? 's' : ''} ${(issue.keys ?? []).join(', ')} (a field this SDK does not know yet goes in extraBody)`
    }
    if (issue.code === 'invalid_type' && issue.input === undefined) return `${where}: required`
    if (issue.code === 'invalid_type' && issue.expected) {
      const got = issue.input === null ? 'null' : Array.isArray(issue.input) ? 'array' : typeof issue.input
      return `${where}: expected ${issue.expected}, got ${got}`
    }
    return `${where}: ${issue.message}`
  })
}

/**
 * Creates a client. `baseURL` is required; everything else has a default (see
 * {@link ClientOptions}). Throws {@link InvalidInputError} for unusable options.
 *
 * @example
 * const client = createClient({ baseURL: 'http://127.0.0.1:8000', apiKey })
 * const { text } = await client.describe({ image: 'https://example.com/cat.png' })
 */
export function createClient(options: ClientOptions): PictaleClient {
  return new PictaleClient(options)
}
