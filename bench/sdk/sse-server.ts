import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'

/** One narrate stream of `deltas` events, pre-encoded so the server costs almost nothing. */
export function narrateStreamBody(deltas: number, text: string): Buffer[] {
  const encode = (event: string, id: number, data: unknown) => `event: ${event}\nid: ${id}\ndata: ${JSON.stringify(data)}\n\n`
  const result = {
    text: 'benchmark',
    finish_reason: 'stop',
    model: 'bench',
    usage: { input_tokens: 1, output_tokens: deltas },
    timings: { queued_ms: 0, first_token_ms: 0, total_ms: 0, tokens_per_second: 0 },
  }
  const parts: string[] = [encode('run', 1, { id: 'run_bench' }), encode('stage-start', 2, { stage: 'narrate' })]
  let id = 3
  const chunks: Buffer[] = []
  for (let i = 0; i < deltas; i++) {
    parts.push(encode('delta', id++, { stage: 'narrate', text }))
    if (parts.length === 512) chunks.push(Buffer.from(parts.splice(0).join('')))
  }
  parts.push(encode('stage-end', id++, { stage: 'narrate', ...result }), encode('done', id++, { id: 'run_bench', ...result }))
  chunks.push(Buffer.from(parts.join('')))
  return chunks
}

/** A local HTTP server that answers every request with the given SSE chunks. */
export async function startSseServer(chunks: Buffer[]): Promise<{ url: string; server: Server }> {
  const server = createServer((request, response) => {
    request.resume()
    response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
    let index = 0
    const write = () => {
      while (index < chunks.length) {
        if (!response.write(chunks[index++])) return void response.once('drain', write)
      }
      response.end()
    }
    write()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return { url: `http://127.0.0.1:${port}`, server }
}
