import { describe, expect, it } from 'vitest'
import { StreamEndedEarlyError } from '../../src/index'
import { rawStream, tokenStream } from '../../src/testing'
import { collect, rejectionOf, testClient, useMockServer } from './support/mock-server'

const { mock } = useMockServer()

const done = (text: string) =>
  `event: done\ndata: ${JSON.stringify({
    id: 'run_1', text, finish_reason: 'stop', model: 'm',
    usage: { input_tokens: 1, output_tokens: 1 },
    timings: { queued_ms: 0, first_token_ms: 0, total_ms: 0, tokens_per_second: 0 },
  })}\n\n`

describe('SSE decoding', () => {
  it('joins a multi-byte character split across two chunks', async () => {
    const body = new TextEncoder().encode(`event: delta\ndata: {"stage":"narrate","text":"雪🌙"}\n\n${done('雪🌙')}`)
    const snow = body.indexOf(0xe9)
    const moon = body.indexOf(0xf0)
    const chunks = [body.subarray(0, snow + 1), body.subarray(snow + 1, moon + 2), body.subarray(moon + 2)]
    mock({
      narrate: {
        kind: 'stream',
        steps: chunks.flatMap((raw) => [{ raw }, { waitMs: 1 }]),
      },
    })
    const events = await collect(testClient().narrate({ instruction: 'x' }))
    expect(events[0]).toEqual({ type: 'delta', stage: 'narrate', text: '雪🌙' })
  })

  it('handles CRLF, CR, comments, multi-line data and a BOM-less start', async () => {
    const sse =
      ': comment first\r\n\r\n' +
      'event: delta\r\ndata: {"stage":"narrate",\r\ndata: "text":"a"}\r\n\r\n' +
      'event: delta\rdata: {"stage":"narrate","text":"b"}\r\r' +
      done('ab')
    mock({ narrate: rawStream(sse, 3) })
    const run = testClient().narrate({ instruction: 'x' })
    expect(await collect(run.textStream)).toEqual(['a', 'b'])
  })

  it('an empty stream ends early', async () => {
    mock({ narrate: rawStream('') })
    const error = await rejectionOf(testClient().narrate({ instruction: 'x' }))
    expect(error).toBeInstanceOf(StreamEndedEarlyError)
    expect(error).toMatchObject({ code: 'stream_ended_early', retryable: true })
  })

  it('a final event without its blank line is dropped, so the stream ended early', async () => {
    mock({ narrate: rawStream(done('x').trimEnd()) })
    expect(await rejectionOf(testClient().narrate({ instruction: 'x' }))).toBeInstanceOf(StreamEndedEarlyError)
  })

  it('stops reading at done', async () => {
    mock({ narrate: rawStream(`${done('x')}event: delta\ndata: {"stage":"narrate","text":42}\n\n`) })
    const events = await collect(testClient().narrate({ instruction: 'x' }))
    expect(events.map((e) => e.type)).toEqual(['done'])
  })

  it('streams 1-byte chunks of a whole pipeline', async () => {
    mock({ pipeline: tokenStream({ route: 'pipeline', chunkSize: 1, pingEvery: 1 }) })
    const result = await testClient().pipeline({ image: 'https://example.com/a.png', instruction: 'x' })
    expect(result.story.text).toBe('Once upon a time, a circle rolled away.')
  })
})
