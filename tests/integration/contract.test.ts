// tests/contract/requests.json against the live server: every valid body is answered 200 with
// a result the SDK's schemas accept; every invalid one with the recorded status, code and param.
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { ErrorBodySchema, PipelineResultSchema, TextResultSchema } from '../../src/schemas/index'
import { camelizeKeys } from '../../src/wire/case'
import { liveServer } from './support'

interface Fixture {
  name: string
  route: string
  body: unknown
  status?: number
  code?: string
  param?: string
}
const fixtures: { valid: Fixture[]; invalid: Fixture[] } = JSON.parse(
  readFileSync(new URL('../contract/requests.json', import.meta.url), 'utf8'),
)

async function post(fixture: Fixture): Promise<{ status: number; body: unknown; requestId: string | null }> {
  const { url, key } = liveServer()
  const response = await fetch(url + fixture.route, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify(fixture.body),
  })
  return { status: response.status, body: await response.json(), requestId: response.headers.get('x-request-id') }
}

describe('contract: valid requests on the live server', () => {
  for (const fixture of fixtures.valid) {
    it(fixture.name, async () => {
      const { status, body, requestId } = await post(fixture)
      expect(status, JSON.stringify(body)).toBe(200)
      expect(requestId).toMatch(/^req_[0-9a-f]{24}$/)
      const schema = fixture.route === '/v1/pipeline' ? PipelineResultSchema : TextResultSchema
      const parsed = schema.safeParse(camelizeKeys(body))
      expect(parsed.success, JSON.stringify(parsed.error?.issues)).toBe(true)
    })
  }
})

describe('contract: invalid requests on the live server', () => {
  for (const fixture of fixtures.invalid) {
    it(`${fixture.name} → ${fixture.status} ${fixture.code}`, async () => {
      const { status, body, requestId } = await post(fixture)
      expect(status).toBe(fixture.status)
      const parsed = ErrorBodySchema.safeParse(camelizeKeys(body))
      expect(parsed.success, JSON.stringify(body)).toBe(true)
      expect(parsed.data?.error.code).toBe(fixture.code)
      if (fixture.param !== undefined) expect(parsed.data?.error.param).toBe(fixture.param)
      expect(parsed.data?.error.requestId).toBe(requestId)
    })
  }
})
