import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { tokenStream } from '../../src/testing'
import { testClient, useMockServer } from './support/mock-server'

// tests/contract/auth.json: where the API key travels. The server suite checks the same file.
interface SdkCase {
  name: string
  options: { apiKey?: string; modal?: { key: string; secret: string } }
  sends: Record<string, string>
  omits: string[]
}

const KEY = 'sk-contract'
const contract = JSON.parse(readFileSync(new URL('../contract/auth.json', import.meta.url), 'utf8'))
const cases: SdkCase[] = contract.sdk
const withKey = (value: string) => value.replace('{key}', KEY)

const { mock } = useMockServer()

async function settled(check: () => boolean) {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 5))
  expect(check()).toBe(true)
}

describe('auth headers (contract)', () => {
  for (const { name, options, sends, omits } of cases) {
    it(name, async () => {
      const server = mock({ narrate: tokenStream({ route: 'narrate', tokens: { narrate: Array(20).fill('w ') }, deltaDelayMs: 2 }) })
      const client = testClient({ ...options, apiKey: options.apiKey && withKey(options.apiKey) })
      for await (const event of client.narrate({ instruction: 'Go.' })) if (event.type === 'delta') break
      await settled(() => server.cancels.length === 1) // breaking out cancels the run: same credentials
      expect(server.requests.map((request) => request.path)).toEqual(['/v1/narrate', `/v1/runs/${server.cancels[0]}/cancel`])
      for (const request of server.requests) {
        const expected = Object.fromEntries(Object.entries(sends).map(([header, value]) => [header, withKey(value)]))
        expect(request.headers, request.path).toMatchObject(expected)
        for (const header of omits) expect(request.headers, `${request.path} ${header}`).not.toHaveProperty(header)
      }
    })
  }
})
