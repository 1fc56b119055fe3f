import { describe, expect, it, vi } from 'vitest'
import { NotFoundError, RateLimitError } from '../../src/index'
import { errorFromResponse } from '../../src/errors/error-from-response'

// A browser holding a page from before a deploy can fail to fetch the schemas' chunk.
vi.mock('../../src/schemas/load-schemas', () => ({
  loadSchemas: () => Promise.reject(new TypeError('Failed to fetch dynamically imported module')),
}))

describe('schemas that fail to load', () => {
  it("never hide the server's answer: the status still chooses the error class", async () => {
    const body = JSON.stringify({ error: { code: 'not_found', message: 'no such run' } })
    const missing = await errorFromResponse(404, new Headers({ 'x-request-id': 'req_1' }), body)
    expect(missing).toBeInstanceOf(NotFoundError)
    expect(missing.requestId).toBe('req_1')
    const busy = await errorFromResponse(429, new Headers({ 'retry-after': '2' }), '')
    expect(busy).toBeInstanceOf(RateLimitError)
    expect((busy as RateLimitError).retryAfter).toBe(2000)
  })
})
