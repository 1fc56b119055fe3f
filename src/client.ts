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
import { HealthSchema, type Health } from './schemas/health'
import {
  DescribeRequestSchema,
  NarrateRequestSchema,
  PipelineRequestSchema,
  type DescribeRequest,
  type NarrateRequest,
  type PipelineRequest,
} from './schemas/requests'
import {
  CancelResultSchema,
  type CancelResult,
  type DescribeResult,
  type NarrateResult,
  type PipelineResult,
} from './schemas/results'
import { camelizeKeys, snakeizeKeys } from './wire/case'
import { waitUntilReady, type WaitUntilReadyOptions } from './wait-until-ready'

type Schema = {
  safeParse(value: unknown): {
    success: boolean
    data?: unknown
    error?: { issues: { path: PropertyKey[]; message: string }[] }
  }
}

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

  /** Describes an image with the vision model. Await it for the result or iterate its events. */
  describe(request: DescribeRequest, options: CallOptions = {}): Run<DescribeResult, DescribeEvent> {
    return this.#run('/v1/describe', 'text', DescribeRequestSchema, request, options)
  }

  /** Writes prose or a roleplay turn from an instruction (and optional scene context). */
  narrate(request: NarrateRequest, options: CallOptions = {}): Run<NarrateResult, NarrateEvent> {
    return this.#run('/v1/narrate', 'text', NarrateRequestSchema, request, options)
  }

  /** Describes the image, then narrates from that description, in one run. */
  pipeline(request: PipelineRequest, options: CallOptions = {}): Run<PipelineResult, PipelineEvent> {
    return this.#run('/v1/pipeline', 'pipeline', PipelineRequestSchema, request, options)
  }

  /** `GET /health`: whether the server's models are loaded. Needs no API key. */
  async health(options: CallOptions = {}): Promise<Health> {
    const body = await this.#json('GET', '/health', undefined, options)
    return parseResponse(HealthSchema, body) as Health
  }

  /**
   * Asks the server to stop a run by id (`POST /v1/runs/{id}/cancel`). `run.abort()` and
   * leaving a loop early already do this; use it for a run started elsewhere.
   */
  async cancel(runId: string, options: CallOptions = {}): Promise<CancelResult> {
    if (typeof runId !== 'string' || runId === '') {
      throw new InvalidInputError('invalid_request', 'runId must be a non-empty string', 'runId')
    }
    const body = await this.#json('POST', `/v1/runs/${encodeURIComponent(runId)}/cancel`, {}, options)
    return parseResponse(CancelResultSchema, body) as CancelResult
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
    schema: Schema,
    request: object,
    call: CallOptions,
  ): Run<TResult, TEvent> {
    const options = this.#options
    return new Run<TResult, TEvent>({
      path,
      resultKind,
      options,
      call,
      idempotencyKey: call.idempotencyKey ?? newIdempotencyKey(),
      buildBody: () => buildBody(options, schema, request),
      cancel: (runId) =>
        this.cancel(runId, { maxRetries: 0, timeout: { connectMs: CANCEL_CONNECT_MS }, headers: call.headers }),
    })
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

function parseResponse(schema: Schema, body: unknown): unknown {
  const { data, requestId } = body as { data: unknown; requestId: string | undefined }
  const parsed = schema.safeParse(camelizeKeys(data))
  if (!parsed.success) {
    throw new ValidationError('response', issueLines(parsed.error?.issues ?? []), data, requestId)
  }
  return parsed.data
}

async function buildBody(options: ResolvedOptions, schema: Schema, request: object): Promise<Record<string, unknown>> {
  const parsed = schema.safeParse(request)
  if (!parsed.success) {
    const issues = parsed.error?.issues ?? []
    throw new InvalidInputError(
      'invalid_request',
      `invalid request: ${issueLines(issues).join('; ')}`,
      issues[0]?.path.map(String).join('.'),
    )
  }
  const { image, ...rest } = request as { image?: unknown }
  const wire = snakeizeKeys(rest) as Record<string, unknown>
  if (image !== undefined) {
    const resolved = options.resolveImage ? await options.resolveImage(image) : (image as ImageInput)
    wire.image = await prepareImage(resolved, options.maxImageBytes)
  }
  wire.stream = true
  return wire
}

function issueLines(issues: { path: PropertyKey[]; message: string }[]): string[] {
  return issues.map((issue) => `${issue.path.map(String).join('.') || '(request)'}: ${issue.message}`)
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
