/**
 * Test helpers: msw handlers that play a scripted pictale server, for your own tests.
 * Needs `msw` (2.x) installed.
 *
 * @example
 * import { setupServer } from 'msw/node'
 * import { pictaleMock, tokenStream } from 'pictale/testing'
 * const mock = pictaleMock({ baseURL: 'http://pictale.test', describe: tokenStream({ route: 'describe' }) })
 * const server = setupServer(...mock.handlers)
 * @packageDocumentation
 */
export {
  failedHealth,
  pictaleHandlers,
  pictaleMock,
  READY_HEALTH,
  type PictaleMock,
  type PictaleMockOptions,
  type RecordedRequest,
  type RecordedStream,
  type RouteScript,
} from './pictale-mock'
export {
  httpError,
  midStreamError,
  MOCK_RUN_ID,
  modelsFailed,
  notReady,
  rateLimited,
  rawStream,
  refused,
  refusedMidStream,
  stageResult,
  stalled,
  tokenStream,
  type HttpResponse,
  type MockResponse,
  type MockRoute,
  type StageTokens,
  type StreamResponse,
  type TokenStreamOptions,
} from './scenarios'
export { encodeStep, type ScriptStep } from './sse-encoding'
export { preloadSchemas } from './preload-schemas'
