// Requests are checked before anything is sent: unknown fields and missing ones are named;
// extraBody carries fields this SDK does not type yet.
import { describe, expect, it } from 'vitest'
import { InvalidInputError } from '../../src/index'
import { tokenStream } from '../../src/testing'
import { rejectionOf, testClient, useMockServer } from './support/mock-server'

const { mock } = useMockServer()

describe('request checks', () => {
  it('a misspelt field is refused, naming it, and nothing is sent', async () => {
    const server = mock({ narrate: tokenStream({ route: 'narrate' }) })
    // @ts-expect-error maxTokenz is not a field
    const error = await rejectionOf(testClient().narrate({ instruction: 'Hi', maxTokenz: 5 }))
    expect(error).toBeInstanceOf(InvalidInputError)
    expect(error).toMatchObject({ param: 'maxTokenz' })
    expect((error as Error).message).toMatch(/unknown field maxTokenz/)
    expect(server.requests).toHaveLength(0)
  })

  it('a missing required field is named as required; a wrong type says what was expected', async () => {
    mock({ narrate: tokenStream({ route: 'narrate' }) })
    // @ts-expect-error instruction is required
    const missing = await rejectionOf(testClient().narrate({ maxTokens: 5 }))
    expect((missing as Error).message).toMatch(/instruction: required/)
    // @ts-expect-error maxTokens is a number
    const wrong = await rejectionOf(testClient().narrate({ instruction: 'Hi', maxTokens: '5' }))
    expect((wrong as Error).message).toMatch(/maxTokens: expected number, got string/)
  })

  it('a misspelt field in a pipeline stage is named with its path', async () => {
    mock({ pipeline: tokenStream({ route: 'pipeline' }) })
    const image = 'https://example.com/a.png'
    // @ts-expect-error temprature is not a field
    const error = await rejectionOf(testClient().pipeline({ image, instruction: 'Hi', narrate: { temprature: 1 } }))
    expect(error).toMatchObject({ param: 'narrate.temprature' })
  })

  it('deterministic travels as sent, in every stage, and only when set', async () => {
    const image = 'https://example.com/a.png'
    const narrate = mock({ narrate: tokenStream({ route: 'narrate' }) })
    await testClient().narrate({ instruction: 'Hi', seed: 5, deterministic: true })
    await testClient().narrate({ instruction: 'Hi', deterministic: false })
    await testClient().narrate({ instruction: 'Hi' })
    expect(narrate.requests.map((request) => (request.body as Record<string, unknown>).deterministic)).toEqual([true, false, undefined])
    expect(narrate.requests[0]!.body).toMatchObject({ instruction: 'Hi', seed: 5, deterministic: true })
    const imageRoutes = mock({ pipeline: tokenStream({ route: 'pipeline' }), describe: tokenStream({ route: 'describe' }) })
    await testClient().pipeline({ image, instruction: 'Hi', describe: { deterministic: true }, narrate: { deterministic: true } })
    await testClient().describe({ image, deterministic: true })
    expect(imageRoutes.requests[0]!.body).toMatchObject({ describe: { deterministic: true }, narrate: { deterministic: true } })
    expect(imageRoutes.requests[1]!.body).toMatchObject({ image, deterministic: true })
  })

  it('a deterministic that is not a boolean is refused, naming it, and nothing is sent', async () => {
    const server = mock({ narrate: tokenStream({ route: 'narrate' }), pipeline: tokenStream({ route: 'pipeline' }) })
    // @ts-expect-error deterministic is a boolean
    const error = await rejectionOf(testClient().narrate({ instruction: 'Hi', deterministic: 'yes' }))
    expect(error).toBeInstanceOf(InvalidInputError)
    expect(error).toMatchObject({ code: 'invalid_request', param: 'deterministic' })
    expect((error as Error).message).toMatch(/deterministic: expected boolean, got string/)
    const image = 'https://example.com/a.png'
    // @ts-expect-error deterministic is a boolean
    const nested = await rejectionOf(testClient().pipeline({ image, instruction: 'Hi', narrate: { deterministic: 1 } }))
    expect(nested).toMatchObject({ param: 'narrate.deterministic' })
    expect(server.requests).toHaveLength(0)
  })

  it('extraBody fields travel as they are', async () => {
    const server = mock({ narrate: tokenStream({ route: 'narrate' }) })
    await testClient().narrate({ instruction: 'Hi' }, { extraBody: { future_field: 1, max_tokens: 9 } })
    expect(server.requests[0]!.body).toMatchObject({ instruction: 'Hi', future_field: 1, max_tokens: 9 })
  })
})
