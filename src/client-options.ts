import { InvalidInputError } from './errors/client-errors'
import type { ImageInput } from './images/image-input'
import { DEFAULT_MAX_IMAGE_BYTES } from './images/prepare-image'

/**
 * Timeouts in milliseconds. `Infinity` turns one off. They cover the whole stream, not just
 * the headers.
 */
export interface TimeoutOptions {
  /** Sending the request until response headers arrive, per attempt. Default 120 000 (covers a cold start). */
  connectMs?: number
  /** Start of the run until the first `delta` event. Default `Infinity` (queues can be long; idle still applies). */
  firstTokenMs?: number
  /** Longest silence between any two received bytes, pings included. Default 60 000 (the server pings every 15 s). */
  idleMs?: number
  /** Start of the run (retries included) until its result. Default `Infinity`. */
  totalMs?: number
}

/** Where log lines go; `console` fits. */
export interface Logger {
  debug(message: string, ...details: unknown[]): void
  warn(message: string, ...details: unknown[]): void
}

/** Options of {@link createClient}. */
export interface ClientOptions {
  /** The server's base URL, e.g. `http://127.0.0.1:8000` or a Modal endpoint. Required. */
  baseURL: string
  /**
   * Sent as `Authorization: Bearer <apiKey>` when set; as `x-api-key` when `modal` is set too,
   * since Modal's edge reads `Authorization` as a proxy token of its own.
   */
  apiKey?: string | undefined
  /** Modal proxy-auth credentials, sent as `Modal-Key` / `Modal-Secret` when set. */
  modal?: { key: string; secret: string } | undefined
  /** Retries before the first body byte (408/409/425/429/5xx, connection errors). Default 2. */
  maxRetries?: number
  /** Timeouts for every call; each call may override them. */
  timeout?: TimeoutOptions
  /** A fetch implementation (a proxy-aware one, a test double). Default `globalThis.fetch`. */
  fetch?: typeof fetch
  /** Extra headers on every request. */
  headers?: Record<string, string>
  /** Receives retry and cancel diagnostics. Default: silent. */
  logger?: Logger
  /** Largest image accepted client-side, in bytes. Default 20 MiB, the server's own limit. */
  maxImageBytes?: number
  /**
   * Turns other image sources into an accepted form before encoding; return the input unchanged
   * for forms the default encoder knows. `pictale/node` uses it for file paths and streams.
   */
  resolveImage?: (image: unknown) => Promise<ImageInput> | ImageInput
}

/** Per-call options of `describe()`, `narrate()`, `pipeline()`, `health()`. */
export interface CallOptions {
  /** Aborts the call like `run.abort()`. */
  signal?: AbortSignal | undefined
  /** Overrides the client's timeouts for this call. */
  timeout?: TimeoutOptions | undefined
  /** Overrides the client's `maxRetries` for this call. */
  maxRetries?: number | undefined
  /** Extra headers for this call. */
  headers?: Record<string, string> | undefined
  /** The `Idempotency-Key` to send (default: a fresh random one per call). */
  idempotencyKey?: string | undefined
  /**
   * Fields sent in the request body as they are (wire names, snake_case), beside the checked
   * ones: for server fields this SDK version does not type yet. They win over typed fields.
   */
  extraBody?: Record<string, unknown> | undefined
}

/** Fully resolved timeouts. */
export type ResolvedTimeouts = Required<TimeoutOptions>

/** Client options after defaults and checks. */
export interface ResolvedOptions {
  baseURL: string
  apiKey: string | undefined
  modal: { key: string; secret: string } | undefined
  maxRetries: number
  timeout: ResolvedTimeouts
  fetch: typeof fetch
  headers: Record<string, string>
  logger: Logger | undefined
  maxImageBytes: number
  resolveImage: ((image: unknown) => Promise<ImageInput> | ImageInput) | undefined
}

/** The default timeouts (see {@link TimeoutOptions}). */
export const DEFAULT_TIMEOUTS: ResolvedTimeouts = {
  connectMs: 120_000,
  firstTokenMs: Infinity,
  idleMs: 60_000,
  totalMs: Infinity,
}

/** Merges `override` over `base`, checking every value. */
export function resolveTimeouts(base: ResolvedTimeouts, override?: TimeoutOptions): ResolvedTimeouts {
  const merged = { ...base }
  for (const key of Object.keys(base) as (keyof ResolvedTimeouts)[]) {
    const value = override?.[key]
    if (value === undefined) continue
    if (typeof value !== 'number' || !(value > 0)) {
      throw new InvalidInputError('invalid_options', `timeout.${key} must be a positive number of ms or Infinity`, `timeout.${key}`)
    }
    merged[key] = value
  }
  return merged
}

/** Applies defaults and rejects unusable options with {@link InvalidInputError}. */
export function resolveOptions(options: ClientOptions): ResolvedOptions {
  const baseURL = absoluteBaseURL(options?.baseURL)
  if (typeof (options.fetch ?? globalThis.fetch) !== 'function') {
    throw new InvalidInputError('invalid_options', 'no fetch available: pass options.fetch', 'fetch')
  }
  const maxRetries = options.maxRetries ?? 2
  if (!Number.isInteger(maxRetries) || maxRetries < 0) {
    throw new InvalidInputError('invalid_options', 'maxRetries must be a whole number ≥ 0', 'maxRetries')
  }
  const maxImageBytes = options.maxImageBytes ?? DEFAULT_MAX_IMAGE_BYTES
  if (!(maxImageBytes > 0)) {
    throw new InvalidInputError('invalid_options', 'maxImageBytes must be positive', 'maxImageBytes')
  }
  return {
    baseURL: baseURL.replace(/\/+$/, ''),
    apiKey: options.apiKey,
    modal: options.modal,
    maxRetries,
    timeout: resolveTimeouts(DEFAULT_TIMEOUTS, options.timeout),
    // Called unbound (some runtimes' fetch throws "Illegal invocation" as a method), and the
    // global looked up per request, so a fetch patched later (msw, polyfills) is the one used.
    fetch: options.fetch ? (input, init) => options.fetch!(input, init) : (input, init) => globalThis.fetch(input, init),
    headers: { ...options.headers },
    logger: options.logger,
    maxImageBytes,
    resolveImage: options.resolveImage,
  }
}

/**
 * `baseURL` as an absolute http(s) URL. In a page, a path (`/api/pictale`) resolves against the
 * page's origin, as `fetch` would resolve it: the way to reach your own proxy route.
 */
function absoluteBaseURL(baseURL: unknown): string {
  if (typeof baseURL === 'string' && /^https?:\/\//i.test(baseURL)) return baseURL
  const origin = (globalThis as { location?: { origin?: unknown } }).location?.origin
  if (typeof baseURL === 'string' && baseURL.startsWith('/') && typeof origin === 'string' && /^https?:\/\//i.test(origin)) {
    return new URL(baseURL, origin).href
  }
  throw new InvalidInputError(
    'invalid_options',
    'baseURL must be an http(s):// URL (or, in a web page, a path such as /api/pictale on its own origin)',
    'baseURL',
  )
}
