// In a web page: a path as baseURL resolves against the page's origin, and a request the
// browser blocks before any response says CORS is the likely cause and is not retried.
import { afterEach, describe, expect, it, vi } from 'vitest'
import { ConnectionError, InvalidInputError, createClient } from '../../src/index'
import { rejectionOf } from './support/mock-server'

afterEach(() => vi.unstubAllGlobals())

describe('a page calling the API', () => {
  it('resolves a path baseURL against its own origin', () => {
    vi.stubGlobal('location', { origin: 'https://app.example' })
    expect(createClient({ baseURL: '/api/pictale/' }).baseURL).toBe('https://app.example/api/pictale')
  })

  it('outside a page a path is not a baseURL, and says what is', () => {
    expect(() => createClient({ baseURL: '/api/pictale' })).toThrow(InvalidInputError)
    expect(() => createClient({ baseURL: '/api/pictale' })).toThrow(/in a web page, a path/)
  })

  it('a fetch the browser blocks is a ConnectionError naming CORS, not retried', async () => {
    vi.stubGlobal('window', {})
    vi.stubGlobal('document', {})
    const fetch = vi.fn(async () => {
      throw new TypeError('Failed to fetch')
    })
    const client = createClient({ baseURL: 'https://api.example', fetch, maxRetries: 2 })
    const error = await rejectionOf(client.narrate({ instruction: 'Hi' }))
    expect(error).toBeInstanceOf(ConnectionError)
    expect(error).toMatchObject({ maybeCors: true })
    expect((error as Error).message).toMatch(/CORS/)
    expect(fetch).toHaveBeenCalledTimes(1)
  })

  it('outside a browser a connection error is retried as before', async () => {
    const fetch = vi.fn(async () => {
      throw new TypeError('fetch failed')
    })
    const client = createClient({ baseURL: 'https://api.example', fetch, maxRetries: 1 })
    const error = await rejectionOf(client.health({ maxRetries: 1 }))
    expect(error).toMatchObject({ maybeCors: false })
    expect(fetch).toHaveBeenCalledTimes(2)
  })
})
