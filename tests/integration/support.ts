import { inject } from 'vitest'
import { createClient, type NodePictaleClient } from '../../src/node/index'

export const SAMPLE_IMAGE = 'examples/assets/sample.png'

/** The live server's URL and key (from the global setup). */
export function liveServer(): { url: string; key: string } {
  return { url: inject('pictaleURL'), key: inject('pictaleKey') }
}

/** A client of the live server; retries off so every request is the one the test sent. */
export function liveClient(options: Parameters<typeof createClient>[0] = {}): NodePictaleClient {
  const { url, key } = liveServer()
  return createClient({ baseURL: url, apiKey: key, maxRetries: 0, ...options })
}

/** Every event of a run, in order. */
export async function collect<T>(events: AsyncIterable<T>): Promise<T[]> {
  const seen: T[] = []
  for await (const event of events) seen.push(event)
  return seen
}

/** The error a promise rejects with (fails the test if it resolves). */
export async function rejectionOf(promise: PromiseLike<unknown>): Promise<unknown> {
  try {
    await promise
  } catch (error) {
    return error
  }
  throw new Error('expected a rejection, got a result')
}
