// A backend route that lets a browser use pictale without ever seeing the keys. The browser
// creates its client with `createClient({ baseURL: '/api/pictale' })`; this server adds the
// API key and Modal proxy-auth headers, passes the SSE stream through unbuffered, and aborts
// the upstream request when the browser goes away. The server then keeps the run for its resume
// grace (10 s by default), so a browser that reconnects picks the stream up where it broke
// (GET …/events with Last-Event-ID, allowed below); `run.abort()` in the page cancels at once.
//
//   PICTALE_BASE_URL=https://you--pictale-serve.modal.run PICTALE_API_KEY=… MODAL_KEY=… MODAL_SECRET=… \
//     npx tsx examples/proxy-server.ts [--port 3000]
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { Readable } from 'node:stream'
import { parseArgs } from 'node:util'
import { DEFAULT_BASE_URL, printUsage } from './lib/cli'

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '3000' },
    'base-url': { type: 'string', default: DEFAULT_BASE_URL },
    help: { type: 'boolean', short: 'h', default: false },
  },
})
if (values.help) {
  printUsage(`Usage: npx tsx examples/proxy-server.ts [options]
  --port N             port to listen on (default 3000; 0 picks a free one)`)
}

const PREFIX = '/api/pictale'
/** What a browser may reach upstream: the generation routes, its runs (state, events, cancel), and health. */
const ALLOWED =
  /^(POST \/v1\/(describe|narrate|pipeline|runs\/run_[0-9a-f]{24}\/cancel)|GET \/v1\/runs\/run_[0-9a-f]{24}(\/events)?|GET \/health)$/
/** Request headers passed upstream; everything else (cookies, the browser's own auth) stays here. */
const FORWARDED_REQUEST = ['content-type', 'accept', 'idempotency-key', 'x-request-id', 'last-event-id']
/** Response headers passed back to the browser. */
const FORWARDED_RESPONSE = ['content-type', 'cache-control', 'x-request-id', 'retry-after', 'retry-after-ms', 'www-authenticate']

/** The credentials live only in this process's environment. */
function upstreamHeaders(request: IncomingMessage): Headers {
  const headers = new Headers()
  for (const name of FORWARDED_REQUEST) {
    const value = request.headers[name]
    if (typeof value === 'string') headers.set(name, value)
  }
  // Beside Modal's credentials the key goes in x-api-key: Modal's edge reads Authorization.
  const modal = Boolean(process.env.MODAL_KEY)
  if (process.env.PICTALE_API_KEY) {
    if (modal) headers.set('x-api-key', process.env.PICTALE_API_KEY)
    else headers.set('authorization', `Bearer ${process.env.PICTALE_API_KEY}`)
  }
  if (process.env.MODAL_KEY) headers.set('modal-key', process.env.MODAL_KEY)
  if (process.env.MODAL_SECRET) headers.set('modal-secret', process.env.MODAL_SECRET)
  return headers
}

async function relay(request: IncomingMessage, response: ServerResponse): Promise<void> {
  const path = (request.url ?? '').split('?')[0]!
  const route = path.startsWith(PREFIX) ? path.slice(PREFIX.length) : ''
  if (!ALLOWED.test(`${request.method} ${route}`)) {
    response.writeHead(404, { 'content-type': 'application/json' })
    response.end(JSON.stringify({ error: { code: 'not_found', message: 'Not a pictale route.' } }))
    return
  }

  const upstreamAbort = new AbortController()
  // 'close' before the answer ended means the browser left: stop the upstream request too.
  response.on('close', () => {
    if (!response.writableFinished) {
      upstreamAbort.abort()
      console.log(`browser left during ${route}: upstream request aborted`)
    }
  })

  const upstream = await fetch(values['base-url'].replace(/\/$/, '') + route, {
    method: request.method,
    headers: upstreamHeaders(request),
    // The body streams through as it arrives; images are never held in memory twice.
    body: request.method === 'POST' ? (Readable.toWeb(request) as ReadableStream<Uint8Array>) : undefined,
    duplex: 'half',
    signal: upstreamAbort.signal,
  } as RequestInit)

  const headers: Record<string, string> = { 'x-accel-buffering': 'no' }
  for (const name of FORWARDED_RESPONSE) {
    const value = upstream.headers.get(name)
    if (value !== null) headers[name] = value
  }
  response.writeHead(upstream.status, headers)
  response.flushHeaders()
  if (upstream.body) {
    // Each SSE event goes out as it comes: no buffering between the GPU and the browser.
    for await (const chunk of Readable.fromWeb(upstream.body as import('node:stream/web').ReadableStream)) {
      response.write(chunk)
    }
  }
  response.end()
}

const server = createServer((request, response) => {
  relay(request, response).catch((error: unknown) => {
    if (response.headersSent) {
      response.destroy()
      return
    }
    console.error(`upstream failed: ${error instanceof Error ? error.message : String(error)}`)
    response.writeHead(502, { 'content-type': 'application/json' })
    response.end(JSON.stringify({ error: { code: 'internal', message: 'The pictale server could not be reached.' } }))
  })
})

server.listen(Number(values.port), '127.0.0.1', () => {
  const address = server.address()
  const port = typeof address === 'object' && address ? address.port : values.port
  console.log(`proxy: http://127.0.0.1:${port}${PREFIX} → ${values['base-url']}`)
})
