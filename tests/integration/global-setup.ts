// Starts the real Python server (dev profile, API key required) once for the integration
// project, waits until its models are loaded, and hands its URL and key to the tests.
import type { TestProject } from 'vitest/node'
import { createClient } from '../../src/index'
import { startLocalServer } from '../../scripts/lib/local-server'

export const TEST_API_KEY = 'pk_integration_test'
/** The server's webhook signing secret; webhook tests receive on 127.0.0.2, allowlisted (127.0.0.1 stays refused, as the contract expects). */
export const TEST_WEBHOOK_SECRET = `whsec_${Buffer.from('integration webhook secret, 32 bytes').toString('base64')}`

declare module 'vitest' {
  export interface ProvidedContext {
    pictaleURL: string
    pictaleKey: string
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const server = await startLocalServer({
    apiKeys: [TEST_API_KEY],
    env: { PICTALE_WEBHOOK_SECRET: TEST_WEBHOOK_SECRET, PICTALE_URL_ALLOWLIST: '127.0.0.2' },
  })
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
