import { describe, expect, it } from 'vitest'
import { ContentRefusedError, NotFoundError, StreamError } from '../../src/index'
import { midStreamError, pictaleHandlers, rateLimited, refused, refusedMidStream, tokenStream } from '../../src/testing'
import { BASE_URL, collect, rejectionOf, testClient, useMockServer } from './support/mock-server'

const { mock, server } = useMockServer()

describe('pictale/testing', () => {
  it('plays a sequence of answers, repeating the last', async () => {
    const server = mock({ narrate: [refused(), tokenStream({ route: 'narrate' })] })
    const client = testClient()
    expect(await rejectionOf(client.narrate({ instruction: 'x' }))).toBeInstanceOf(ContentRefusedError)
    expect((await client.narrate({ instruction: 'x' })).finishReason).toBe('stop')
    expect((await client.narrate({ instruction: 'x' })).finishReason).toBe('stop')
    expect(server.streams).toHaveLength(2)
    expect(server.streams.every((s) => !s.closedByClient)).toBe(true)
  })

  it('scripts a cold start with loading statuses', async () => {
    mock({ describe: tokenStream({ route: 'describe', loadingEvents: 3, tokens: { describe: ['A', 'B'] } }) })
    const events = await collect(testClient().describe({ image: 'https://example.com/a.png' }))
    expect(events.filter((e) => e.type === 'status').map((e) => (e as { state: string }).state)).toEqual([
      'loading', 'loading', 'loading', 'running',
    ])
  })

  it('scripts refusals and failures after the stream opened', async () => {
    mock({ pipeline: refusedMidStream(), narrate: midStreamError({ code: 'internal' }) })
    const refusal = await rejectionOf(testClient().pipeline({ image: 'https://example.com/a.png', instruction: 'x' }))
    expect(refusal).toBeInstanceOf(ContentRefusedError)
    expect(refusal).toBeInstanceOf(StreamError)
    expect(refusal).toMatchObject({ code: 'content_refused', source: 'stream', status: undefined, retryable: false })
    expect(await rejectionOf(testClient().narrate({ instruction: 'x' }))).toMatchObject({ code: 'internal', retryable: true })
  })

  it('answers a function script per request and 404 for unscripted routes', async () => {
    mock({
      narrate: (request) =>
        (request.body as { instruction: string }).instruction === 'busy' ? rateLimited(1) : tokenStream({ route: 'narrate' }),
    })
    const client = testClient()
    expect(await rejectionOf(client.narrate({ instruction: 'busy' }))).toMatchObject({ status: 429, retryAfter: 1000 })
    expect((await client.narrate({ instruction: 'calm' })).text).toContain('circle')
    expect(await rejectionOf(client.describe({ image: 'https://example.com/a.png' }))).toBeInstanceOf(NotFoundError)
  })

  it('pictaleHandlers gives the handlers alone', async () => {
    server.use(...pictaleHandlers({ baseURL: BASE_URL, narrate: tokenStream({ route: 'narrate', tokens: { narrate: ['ok'] } }) }))
    expect((await testClient().narrate({ instruction: 'x' })).text).toBe('ok')
  })
})
