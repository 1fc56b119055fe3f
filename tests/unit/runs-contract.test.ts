// tests/contract/runs.json: the runs routes' bodies as the SDK's schemas read them.
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { RunStatusSchema, StartedRunSchema } from '../../src/schemas/index'
import { camelizeKeys } from '../../src/wire/case'

const runs = JSON.parse(readFileSync(new URL('../contract/runs.json', import.meta.url), 'utf8')) as {
  started: unknown
  status: unknown[]
}

describe('contract: runs bodies', () => {
  it('a started run parses', () => {
    expect(StartedRunSchema.safeParse(camelizeKeys(runs.started)).success).toBe(true)
  })
  it.each(runs.status.map((status, index) => [index, status]))('status %i parses', (_, status) => {
    const parsed = RunStatusSchema.safeParse(camelizeKeys(status))
    expect(parsed.success).toBe(true)
  })
})
