import {
  AuthenticationError,
  BadRequestError,
  ConnectionError,
  ContentRefusedError,
  InvalidInputError,
  NotFoundError,
  ServiceUnavailableError,
  StreamError,
  UserAbortError,
} from '../index'
import type { NodePictaleClient } from '../node/index'
import type { PipelineResult } from '../schemas/results'
import type { Preset } from './presets'
import type { EvalPrompt } from './prompt-set'

/** One pipeline call of the evaluation: a prompt under a preset. */
export interface EvalJob {
  prompt: EvalPrompt
  preset: Preset
  /** The image as the client takes it (a file path). */
  image: string
  seed: number
  maxTokens: { describe?: number; story: number }
}

export type JobOutcome =
  | { status: 'done'; result: PipelineResult; wallMs: number }
  | { status: 'refused'; message: string; wallMs: number }
  | { status: 'failed'; code: string; message: string; wallMs: number }

/** An error that every other job would meet too (a wrong key, a server gone, a preset the server rejects). */
export class FatalJobError extends Error {
  override readonly name = 'FatalJobError'
  constructor(
    readonly job: EvalJob,
    override readonly cause: unknown,
  ) {
    super(`preset ${job.preset.name}, prompt ${job.prompt.id}: ${cause instanceof Error ? cause.message : String(cause)}`)
  }
}

export interface RunJobsOptions {
  client: NodePictaleClient
  jobs: EvalJob[]
  /** Pipelines in flight at once. */
  concurrency: number
  /** Aborting it cancels the runs in flight on the server and rejects with the abort's error. */
  signal?: AbortSignal
  onStart?(job: EvalJob): void
  onSettled?(job: EvalJob, outcome: JobOutcome): void
  /** Pause before retrying a run whose stream ended with a retryable error (tests shorten it). */
  retryDelayMs?: (attempt: number) => number
}

// The SDK retries 429s and 503s before the stream opens, honouring Retry-After. A narrate stage
// that finds the writer's queue full arrives later, as a retryable error event: retried here.
const STREAM_ATTEMPTS = 3
const defaultRetryDelay = (attempt: number) => 2_000 * attempt

/** Runs every job, `concurrency` at a time; outcomes are in the jobs' order. */
export async function runJobs(options: RunJobsOptions): Promise<JobOutcome[]> {
  const { jobs, concurrency } = options
  const outcomes = new Array<JobOutcome>(jobs.length)
  const stop = new AbortController()
  const onOuterAbort = () => stop.abort(options.signal?.reason)
  options.signal?.addEventListener('abort', onOuterAbort, { once: true })
  let next = 0
  let fatal: unknown
  const worker = async () => {
    while (next < jobs.length && !stop.signal.aborted) {
      const index = next++
      const job = jobs[index]!
      options.onStart?.(job)
      try {
        outcomes[index] = await runJob(job, options, stop.signal)
        options.onSettled?.(job, outcomes[index])
      } catch (error) {
        fatal ??= stop.signal.aborted ? stop.signal.reason : new FatalJobError(job, error)
        stop.abort(fatal)
      }
    }
  }
  try {
    await Promise.all(Array.from({ length: Math.min(concurrency, jobs.length) }, worker))
  } finally {
    options.signal?.removeEventListener('abort', onOuterAbort)
  }
  if (fatal !== undefined) throw fatal
  return outcomes
}

async function runJob(job: EvalJob, options: RunJobsOptions, signal: AbortSignal): Promise<JobOutcome> {
  const started = Date.now()
  const wallMs = () => Date.now() - started
  for (let attempt = 1; ; attempt++) {
    try {
      const result = await options.client.pipeline(
        {
          image: job.image,
          instruction: job.prompt.instruction,
          describe: { seed: job.seed, ...(job.maxTokens.describe ? { maxTokens: job.maxTokens.describe } : {}) },
          narrate: { ...job.preset.sampling, seed: job.seed, maxTokens: job.maxTokens.story },
        },
        // More retries than a single call's default: a long evaluation may meet a busy server.
        { signal, maxRetries: 5 },
      )
      return { status: 'done', result, wallMs: wallMs() }
    } catch (error) {
      if (ContentRefusedError.is(error)) return { status: 'refused', message: error.message, wallMs: wallMs() }
      if (isFatal(error)) throw error
      if (StreamError.is(error) && error.retryable && attempt < STREAM_ATTEMPTS) {
        await sleep((options.retryDelayMs ?? defaultRetryDelay)(attempt), signal)
        continue
      }
      const code = (error as { code?: string }).code ?? 'error'
      return { status: 'failed', code, message: error instanceof Error ? error.message : String(error), wallMs: wallMs() }
    }
  }
}

/** Errors no other job would escape: stop the whole evaluation rather than fail each job. */
function isFatal(error: unknown): boolean {
  return (
    UserAbortError.is(error) ||
    AuthenticationError.is(error) ||
    BadRequestError.is(error) ||
    InvalidInputError.is(error) ||
    NotFoundError.is(error) ||
    ConnectionError.is(error) ||
    (ServiceUnavailableError.is(error) && error.state === 'failed') ||
    (StreamError.is(error) && error.state === 'failed')
  )
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason)
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    const onAbort = () => {
      clearTimeout(timer)
      reject(signal.reason)
    }
    signal.addEventListener('abort', onAbort, { once: true })
  })
}
