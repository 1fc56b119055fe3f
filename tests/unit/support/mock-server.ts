import { setupServer } from 'msw/node'
import { afterAll, afterEach, beforeAll } from 'vitest'
import { pictaleMock, type PictaleMockOptions } from '../../../src/testing'
import { createClient, type ClientOptions } from '../../../src/index'
import { loadSchemas } from '../../../src/schemas/load-schemas'

export const BASE_URL = 'http://pictale.test'

/** A 1×1 PNG (the contract fixtures' image). */
export const PNG_BASE64 =
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC'
export const PNG_BYTES = Uint8Array.from(atob(PNG_BASE64), (c) => c.charCodeAt(0))

/** An msw server for this test file; unhandled requests fail the test. */
export function useMockServer() {
  const server = setupServer()
  beforeAll(() => server.listen({ onUnhandledRequest: 'error' }))
  // The client loads its schemas on its first call: real module I/O that no fake clock moves.
  // Loaded up front, the tests that advance timers by hand see the request go out at once.
  beforeAll(() => loadSchemas())
  afterEach(() => server.resetHandlers())
  afterAll(() => server.close())
  return {
    server,
    /** Installs a scripted pictale server and returns its recorder. */
    mock(options: Omit<PictaleMockOptions, 'baseURL'>) {
      const mock = pictaleMock({ baseURL: BASE_URL, ...options })
      server.use(...mock.handlers)
      return mock
    },
  }
}

/** A client for the mock server, without retry waits unless a test asks for them. */
export function testClient(options: Partial<ClientOptions> = {}) {
  return createClient({ baseURL: BASE_URL, maxRetries: 0, ...options })
}

/** Collects every event of an async iterable. */
export async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const item of iterable) out.push(item)
  return out
}

/** The rejection of a promise (fails if it resolves). */
export async function rejectionOf(promise: PromiseLike<unknown>): Promise<unknown> {
  try {
    await promise
  } catch (error) {
    return error
  }
  throw new Error('expected a rejection')
}
