// Starts the real Python server (dev profile, API key required) once for the integration
// project, waits until its models are loaded, and hands its URL and key to the tests.
import type { TestProject } from 'vitest/node'
import { createClient } from '../../src/index'
import { startLocalServer } from '../../scripts/lib/local-server'

export const TEST_API_KEY = 'pk_integration_test'

declare module 'vitest' {
  export interface ProvidedContext {
    pictaleURL: string
    pictaleKey: string
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const server = await startLocalServer({ apiKeys: [TEST_API_KEY] })
  try {
    const ready = createClient({ baseURL: server.url }).waitUntilReady({ timeoutMs: 170_000, intervalMs: 200 })
    const died = server.exited.then((code) => {
      throw new Error(`the pictale server exited (code ${code}) before it was ready:\n${server.output()}`)
    })
    await Promise.race([ready, died])
  } catch (error) {
    await server.stop()
    throw error
  }
  project.provide('pictaleURL', server.url)
  project.provide('pictaleKey', TEST_API_KEY)
  return () => server.stop()
}
