// The pipeline's image check refusing after the description: a ContentRefusedError that
// arrives as a stream event, and the pipeline example explaining it. A server of its own
// loads an operator classifier that refuses every image, so the refusal is certain.
import { spawnSync } from 'node:child_process'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ContentRefusedError, StreamError, createClient, type PipelineEvent } from '../../src/node/index'
import { ROOT, startLocalServer, type LocalServer } from '../../scripts/lib/local-server'
import { SAMPLE_IMAGE, rejectionOf } from './support'

let server: LocalServer

beforeAll(async () => {
  server = await startLocalServer({
    env: {
      PYTHONPATH: `${ROOT}/tests/integration/fixtures`,
      PICTALE_IMAGE_CLASSIFIERS: 'refuse_every_image:create',
    },
  })
  await createClient({ baseURL: server.url }).waitUntilReady({ timeoutMs: 150_000, intervalMs: 200 })
})
afterAll(() => server?.stop())

describe('an image refused after the description', () => {
  it('ends the stream with a ContentRefusedError before any narrate event', async () => {
    const run = createClient({ baseURL: server.url, maxRetries: 0 }).pipeline({
      image: SAMPLE_IMAGE,
      instruction: 'A fable.',
      describe: { maxTokens: 8 },
    })
    const events: PipelineEvent[] = []
    const error = await rejectionOf(
      (async () => {
        for await (const event of run) events.push(event)
      })(),
    )
    expect(error).toBeInstanceOf(ContentRefusedError)
    expect(error).toBeInstanceOf(StreamError)
    expect(error).toMatchObject({ source: 'stream', status: undefined, code: 'content_refused', retryable: false })
    expect(events.some((event) => event.type === 'stage-end' && event.stage === 'describe')).toBe(true)
    expect(events.some((event) => 'stage' in event && event.stage === 'narrate')).toBe(false)
  })

  it('the pipeline example says what happened', () => {
    const result = spawnSync(process.execPath, ['--import', 'tsx', 'examples/pipeline.ts', '--base-url', server.url], {
      cwd: ROOT,
      encoding: 'utf8',
    })
    expect(result.status).toBe(1)
    expect(result.stdout).toContain('1 · describe')
    expect(result.stderr).toContain("The server's safety gate refused this request (the image check after the description")
    expect(result.stderr).toContain('docs/safety.md')
  })
})
