/**
 * pictale: turn a picture into a story. The default entry runs in browsers, Node ≥ 20, Deno
 * and Bun; it imports nothing from `node:` and never reads `process.env`.
 * @packageDocumentation
 */
export { createClient, PictaleClient, type Background } from './client'
export type { CallOptions, ClientOptions, Logger, TimeoutOptions } from './client-options'
export { DEFAULT_TIMEOUTS } from './client-options'
export type { WaitUntilReadyOptions } from './wait-until-ready'
export { Run } from './run/run'

export { PictaleError, type PictaleErrorOptions } from './errors/pictale-error'
export {
  APIError,
  AuthenticationError,
  BadRequestError,
  NotFoundError,
  RateLimitError,
  ServerError,
  ServiceUnavailableError,
  type APIErrorInit,
  type FieldError,
} from './errors/api-error'
export {
  ContentRefusedError,
  type ContentRefusedInit,
  type RefusalSource,
} from './errors/content-refused-error'
export {
  ConnectionError,
  InvalidImageError,
  InvalidInputError,
  StreamEndedEarlyError,
  StreamError,
  TimeoutError,
  UserAbortError,
  ValidationError,
  type TimeoutPhase,
} from './errors/client-errors'

export type { ImageInput, InlineImage, RemoteImage } from './images/image-input'
export { DEFAULT_MAX_IMAGE_BYTES } from './images/prepare-image'
export { sniffImageType, type ImageMediaType } from './images/sniff-media-type'

// Types only, named one by one (`export type *` would re-export the schema values in the
// built .d.ts files): the schemas themselves are `pictale/schemas`, built when first needed.
export type {
  DescribeRequest,
  DescribeStyle,
  HistoryTurn,
  NarrateRequest,
  PipelineRequest,
  Sampling,
  WebhookSpec,
} from './schemas/requests'
export type {
  CancelResult,
  DescribeResult,
  FinishReason,
  NarrateResult,
  PipelineResult,
  RunState,
  RunStatus,
  Stage,
  StageResult,
  StartedRun,
  TextResult,
  Timings,
  Usage,
} from './schemas/results'
export type {
  DeltaEvent,
  DescribeEvent,
  DoneEvent,
  ErrorEventData,
  NarrateEvent,
  PipelineEvent,
  ProgressEvent,
  RunEvent,
  StageEndEvent,
  StageStartEvent,
  StatusEvent,
  TextRunEvent,
} from './schemas/events'
export type { Health, HealthFailure } from './schemas/health'
export type { ErrorBody } from './schemas/error-body'
