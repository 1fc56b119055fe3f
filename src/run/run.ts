import type { CallOptions, ResolvedOptions, ResolvedTimeouts, TimeoutOptions } from '../client-options'
import { resolveTimeouts } from '../client-options'
import {
  ConnectionError,
  InvalidInputError,
  StreamEndedEarlyError,
  StreamError,
  TimeoutError,
  UserAbortError,
  ValidationError,
  type TimeoutPhase,
} from '../errors/client-errors'
import { APIError } from '../errors/api-error'
import { abortableSleep, linkUserSignal, untilAborted } from '../http/abort'
import { retryDelayMs } from '../http/retry'
import { sendRequest } from '../http/send-request'
import { decodeEvent, type ResultKind } from './decode-event'
import { loadSchemas } from '../schemas/load-schemas'
import { EventFeed } from './event-feed'
import { readSse } from './read-sse'

/** What a {@link Run} needs to send its one request. */
export interface RunSpec {
  path: string
  resultKind: ResultKind
  /** Checks the request and builds its wire body (images encoded); runs before sending. */
  buildBody(): Promise<Record<string, unknown>>
  /** Best-effort `POST /v1/runs/{id}/cancel`. */
  cancel(runId: string): Promise<unknown>
  options: ResolvedOptions
  call: CallOptions
  idempotencyKey: string
  /** Follow a run that already exists (`client.runs.stream`) instead of starting one. */
  follow?: { runId: string; after: number }
}

/** Reconnections one run makes after its stream broke, before the break is its error. */
const MAX_RESUMES = 5

type Outcome<T> = { ok: true; value: T } | { ok: false; error: unknown }

/**
 * One call to the server: a promise of its result **and** an async iterable of its events,
 * backed by a single streaming HTTP request.
 *
 * The request is sent when the run is first awaited or iterated. Its events can be iterated
 * once, through the run or its {@link Run.textStream}; the result can be awaited any number of
 * times, before, while or after iterating: it is assembled from the same events. Start the
 * iteration no later than the first await: a run awaited with no iterator does not keep its
 * events, and iterating it afterwards throws `run_consumed`, as does a second iteration.
 * Leaving a `for await` early (`break`, `return`, a throw) or calling {@link Run.abort}
 * closes the connection and asks the server to cancel the job.
 */
export class Run<TResult, TEvent extends { type: string }> implements PromiseLike<TResult>, AsyncIterable<TEvent> {
  /** The `Idempotency-Key` this call sends on every attempt. */
  readonly idempotencyKey: string
  readonly #spec: RunSpec
  readonly #controller = new AbortController()
  readonly #feed: EventFeed<TEvent> = new EventFeed(
    () => this.#events(),
    () => this.#stop(new UserAbortError('the consumer stopped iterating')),
  )
  readonly #result: Promise<TResult>
  #resolve!: (value: TResult) => void
  #reject!: (error: unknown) => void
  #outcome: Outcome<TResult> | undefined
  #runId: string | undefined
  #requestId: string | undefined
  #serverFinished = false
  #cancelSent = false
  #timers: ReturnType<typeof setTimeout>[] = []
  #firstTokenTimer: ReturnType<typeof setTimeout> | undefined
  #idleTimer: ReturnType<typeof setTimeout> | undefined
  #timeouts: ResolvedTimeouts | undefined
  #unlinkSignal: () => void

  /** @internal Created by the client's `describe`, `narrate` and `pipeline`. */
  constructor(spec: RunSpec) {
    this.#spec = spec
    this.idempotencyKey = spec.idempotencyKey
    this.#result = new Promise<TResult>((resolve, reject) => {
      this.#resolve = resolve
      this.#reject = reject
    })
    // A caller that only iterates sees errors there; this promise must not be reported unhandled.
    this.#result.catch(() => {})
    this.#unlinkSignal = () => {}
    this.#unlinkSignal = linkUserSignal(spec.call.signal, (error) => this.#stop(error))
  }

  /** The server's run id, once its `run` event has arrived. */
  get id(): string | undefined {
    return this.#runId
  }

  /** The response's `x-request-id`, once headers have arrived. */
  get requestId(): string | undefined {
    return this.#requestId
  }

  /**
   * Stops the run: closes the connection, asks the server to cancel the job (once its id is
   * known), and rejects the result with {@link UserAbortError}. No effect once it has ended.
   */
  abort(reason?: unknown): void {
    this.#stop(new UserAbortError(reason))
  }

  /**
   * The run's delta texts only, in order (both stages for a pipeline). Iterating it is the
   * run's one iteration (like iterating the run); await the run, during or after, for the result.
   */
  get textStream(): AsyncIterable<string> {
    return {
      [Symbol.asyncIterator]: () => {
        const events = this[Symbol.asyncIterator]()
        return (async function* () {
          for await (const event of { [Symbol.asyncIterator]: () => events }) {
            if (event.type === 'delta') yield (event as unknown as { text: string }).text
          }
        })()
      },
    }
  }

  /**
   * Iterates the run's events, once. Throws `run_consumed` for a second iteration, or when
   * the run was awaited before any iteration started (its events were not kept).
   */
  [Symbol.asyncIterator](): AsyncIterator<TEvent> {
    const unavailable = this.#feed.unavailable
    if (unavailable === 'iterated') {
      throw new InvalidInputError(
        'run_consumed',
        "this run's events are already iterated: a run (or its textStream) can be iterated once; await the run for its result",
      )
    }
    if (unavailable === 'dropped') {
      throw new InvalidInputError(
        'run_consumed',
        'this run was awaited before it was iterated, so its events were not kept: start iterating (the run or its textStream) before or while awaiting it',
      )
    }
    return this.#feed.iterate()
  }

  /**
   * Awaits the result; sends the request first if nothing has consumed the run yet. While an
   * iteration is under way the run reads ahead, so awaiting inside the loop works too; the
   * iterator still receives every event, in order.
   */
  then<A = TResult, B = never>(
    onfulfilled?: ((value: TResult) => A | PromiseLike<A>) | null,
    onrejected?: ((reason: unknown) => B | PromiseLike<B>) | null,
  ): Promise<A | B> {
    this.#feed.drain()
    return this.#result.then(onfulfilled, onrejected)
  }

  /** Like `Promise.prototype.catch`. */
  catch<B = never>(onrejected?: ((reason: unknown) => B | PromiseLike<B>) | null): Promise<TResult | B> {
    return this.then(undefined, onrejected)
  }

  /** Like `Promise.prototype.finally`. */
  finally(onfinally?: (() => void) | null): Promise<TResult> {
    return this.then().finally(onfinally)
  }

  /** The events of the one request, read by the feed; the run's outcome is settled here. */
  async *#events(): AsyncGenerator<TEvent> {
    const signal = this.#controller.signal
    try {
      if (signal.aborted) throw signal.reason
      const timeouts = resolveTimeouts(this.#spec.options.timeout, this.#spec.call.timeout as TimeoutOptions)
      this.#timeouts = timeouts
      this.#startTimer('total', timeouts.totalMs)
      this.#firstTokenTimer = this.#startTimer('firstToken', timeouts.firstTokenMs)
      const schemas = await untilAborted(loadSchemas(), signal)
      const follow = this.#spec.follow
      let lastEventId = follow?.after ?? 0
      let response: Response
      if (follow) {
        this.#runId = follow.runId
        response = await this.#openEvents(lastEventId, timeouts.connectMs, signal)
      } else {
        const body = await untilAborted(this.#spec.buildBody(), signal)
        response = await sendRequest(this.#spec.options, {
          method: 'POST',
          path: this.#spec.path,
          body,
          headers: {
            'content-type': 'application/json',
            accept: 'text/event-stream',
            'idempotency-key': this.idempotencyKey,
          },
          callHeaders: this.#spec.call.headers,
          maxRetries: this.#spec.call.maxRetries ?? this.#spec.options.maxRetries,
          connectMs: timeouts.connectMs,
          signal,
        })
      }
      // A stream that breaks after its first byte is resumed from the last event it delivered
      // (GET /v1/runs/{id}/events, Last-Event-ID): the events go on with no gap and no repeat,
      // and the server runs the job once. Retries before the first byte are sendRequest's.
      for (let resumes = 0; ; ) {
        try {
          const body = this.#eventStream(response)
          const messages = readSse(body, { signal, onWaiting: (waiting) => this.#onWaiting(waiting) })
          for await (const batch of messages) {
            for (const message of batch) {
              if (signal.aborted) throw signal.reason
              const event = decodeEvent(message, this.#spec.resultKind, this.#requestId, schemas)
              if (message.id !== undefined && /^[0-9]+$/.test(message.id)) lastEventId = Number(message.id)
              if (event === undefined) continue
              if (event.type === 'run') this.#runId = event.id as string
              if (event.type === 'delta') clearTimeout(this.#firstTokenTimer)
              if (event.type === 'done') {
                this.#serverFinished = true
                const { type: _type, ...result } = event
                this.#finish({ ok: true, value: result as TResult })
                yield event as unknown as TEvent
                return
              }
              yield event as unknown as TEvent
            }
          }
          throw new StreamEndedEarlyError(this.#requestId)
        } catch (error) {
          if (signal.aborted || this.#runId === undefined || !streamBroke(error) || resumes >= MAX_RESUMES) throw error
          resumes += 1
          this.#spec.options.logger?.warn(`pictale: the stream of ${this.#runId} broke; resuming after event ${lastEventId}`, error)
          await abortableSleep(retryDelayMs(resumes - 1, undefined) ?? 0, signal)
          try {
            response = await this.#openEvents(lastEventId, timeouts.connectMs, signal)
          } catch (resumeError) {
            // The server's own answer (the run is gone: 404) says more than the break; a
            // server that cannot be reached again leaves the break as what happened.
            throw signal.aborted || resumeError instanceof APIError ? resumeError : error
          }
        }
      }
    } catch (error) {
      if (error instanceof StreamError && !(error instanceof StreamEndedEarlyError)) this.#serverFinished = true
      const final = signal.aborted ? signal.reason : error
      // The feed hands the events read before this error to the iterator, then the error.
      this.#fail(final)
      throw final
    } finally {
      // Reached without an outcome only if the source was returned before it finished.
      if (this.#outcome === undefined) this.#stop(new UserAbortError('the consumer stopped iterating'))
    }
  }

  /** The SSE body of a response, or a {@link ValidationError} when it is not one. */
  #eventStream(response: Response): ReadableStream<Uint8Array> {
    this.#requestId = response.headers.get('x-request-id') ?? this.#requestId
    const contentType = response.headers.get('content-type') ?? ''
    if (!contentType.includes('text/event-stream')) {
      response.body?.cancel().catch(() => {})
      throw new ValidationError('response', [`expected text/event-stream, got "${contentType}"`], undefined, this.#requestId)
    }
    if (!response.body) throw new StreamEndedEarlyError(this.#requestId)
    return response.body
  }

  /** `GET /v1/runs/{id}/events` after event `after`. */
  #openEvents(after: number, connectMs: number, signal: AbortSignal): Promise<Response> {
    return sendRequest(this.#spec.options, {
      method: 'GET',
      path: `/v1/runs/${encodeURIComponent(this.#runId ?? '')}/events`,
      headers: { accept: 'text/event-stream', 'last-event-id': String(after) },
      callHeaders: this.#spec.call.headers,
      maxRetries: this.#spec.call.maxRetries ?? this.#spec.options.maxRetries,
      connectMs,
      signal,
    })
  }

  /** Stops the run from outside its stream (abort, signal, timeout, leaving the loop). */
  #stop(error: unknown): void {
    if (this.#outcome !== undefined) return
    this.#fail(error)
    // The iterator gets the error at once; events read ahead are not worth waiting through.
    this.#feed.stop(error)
  }

  #fail(error: unknown): void {
    if (this.#outcome !== undefined) return
    this.#finish({ ok: false, error })
    if (!this.#controller.signal.aborted) this.#controller.abort(error)
    this.#cancelOnServer()
  }

  #finish(outcome: Outcome<TResult>): void {
    if (this.#outcome !== undefined) return
    this.#outcome = outcome
    for (const timer of this.#timers) clearTimeout(timer)
    clearTimeout(this.#idleTimer)
    this.#unlinkSignal()
    if (outcome.ok) this.#resolve(outcome.value)
    else this.#reject(outcome.error)
  }

  #cancelOnServer(): void {
    const id = this.#runId
    if (id === undefined || this.#serverFinished || this.#cancelSent) return
    this.#cancelSent = true
    this.#spec.cancel(id).catch((error: unknown) => {
      this.#spec.options.logger?.debug(`pictale: cancel of ${id} failed`, error)
    })
  }

  #startTimer(phase: TimeoutPhase, ms: number): ReturnType<typeof setTimeout> | undefined {
    if (!Number.isFinite(ms)) return undefined
    const timer = setTimeout(() => this.#stop(new TimeoutError(phase, ms)), ms)
    this.#timers.push(timer)
    return timer
  }

  #onWaiting(waiting: boolean): void {
    clearTimeout(this.#idleTimer)
    this.#idleTimer = undefined
    const idleMs = this.#timeouts?.idleMs ?? Infinity
    if (waiting && this.#outcome === undefined && Number.isFinite(idleMs)) {
      this.#idleTimer = setTimeout(() => this.#stop(new TimeoutError('idle', idleMs)), idleMs)
    }
  }
}

/** Whether `error` is a stream that broke under way (a dropped connection, a body cut short),
 * as opposed to an answer: an `error` event, a bad event, an HTTP error. */
function streamBroke(error: unknown): boolean {
  if (error instanceof StreamEndedEarlyError || error instanceof ConnectionError) return true
  // fetch's body reader rejects with a TypeError when the connection drops mid-body
  // (undici: "terminated"; browsers: "network error"); nothing else here throws one.
  return error instanceof TypeError
}
