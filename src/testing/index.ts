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
/**
 * Loads the client's schemas now. A client loads them on its first call, which is real module
 * I/O: in tests that fake timers, `await preloadSchemas()` first (a `beforeAll`), so that
 * advancing the fake clock finds the request already sent.
 */
export { loadSchemas as preloadSchemas } from '../schemas/load-schemas'
