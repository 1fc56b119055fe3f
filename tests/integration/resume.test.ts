// A stream cut twice by the network still gives the whole story: a TCP proxy between the SDK
// and the live dev server drops the connection mid-stream, twice in one run; the SDK resumes
// from the last event it saw, and the text equals an uninterrupted run with the same seed,
// character for character, from one job on the server.
import { createServer, connect, type Server, type Socket } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createClient } from '../../src/node/index'
import { liveServer } from './support'

interface CuttingProxy {
  url: string
  /** The first line of each request that went through, in order. */
  requests: string[]
  close(): Promise<void>
}

/** Forwards to `target`; the first `cuts.length` connections are cut after that many bytes of answer. */
function cuttingProxy(target: URL, cuts: number[]): Promise<CuttingProxy> {
  const requests: string[] = []
  const sockets = new Set<Socket>()
  let connections = 0
  const server: Server = createServer((client) => {
    const cutAfter = cuts[connections++]
    const upstream = connect(Number(target.port), target.hostname)
    sockets.add(client).add(upstream)
    let sent = 0
    let firstChunk = true
    client.on('data', (chunk: Buffer) => {
      if (firstChunk) requests.push(chunk.toString('latin1').split('\r\n', 1)[0] ?? '')
      firstChunk = false
      upstream.write(chunk)
    })
    upstream.on('data', (chunk: Buffer) => {
      if (cutAfter !== undefined && sent + chunk.length > cutAfter) {
        client.write(chunk.subarray(0, Math.max(0, cutAfter - sent)))
        client.destroy()
        upstream.destroy()
        return
      }
      sent += chunk.length
      client.write(chunk)
    })
    for (const [a, b] of [[client, upstream], [upstream, client]] as const) {
      a.on('close', () => b.destroy())
      a.on('error', () => b.destroy())
    }
  })
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const address = server.address() as { port: number }
      resolve({
        url: `http://127.0.0.1:${address.port}`,
        requests,
        close: () =>
          new Promise((done) => {
            for (const socket of sockets) socket.destroy()
            server.close(() => done())
          }),
      })
    })
  })
}

describe('a stream the network cuts twice', () => {
  let proxy: CuttingProxy
  beforeAll(async () => {
    // The first answer is cut a little into the story, the first resume sooner.
    proxy = await cuttingProxy(new URL(liveServer().url), [900, 500])
  })
  afterAll(() => proxy.close())

  it('resumes to the same text as an uninterrupted run, from one job', async () => {
    const { url, key } = liveServer()
    const request = { instruction: 'A long tale of the sea.', maxTokens: 160, temperature: 0.9, seed: 42 }
    const whole = await createClient({ baseURL: url, apiKey: key }).narrate(request)

    const run = createClient({ baseURL: proxy.url, apiKey: key }).narrate(request)
    let text = ''
    for await (const chunk of run.textStream) text += chunk
    const result = await run

    expect(text).toBe(whole.text)
    expect(result.text).toBe(whole.text)
    expect(result.id).toBe(run.id)
    const posts = proxy.requests.filter((line) => line.startsWith('POST '))
    const resumes = proxy.requests.filter((line) => line.startsWith(`GET /v1/runs/${run.id}/events`))
    expect(posts).toHaveLength(1) // one job: the SDK never sent the request again
    expect(resumes).toHaveLength(2)
    const status = await createClient({ baseURL: url, apiKey: key }).runs.get(run.id as string)
    expect(status).toMatchObject({ state: 'done', result: { text: whole.text } })
  })
})
