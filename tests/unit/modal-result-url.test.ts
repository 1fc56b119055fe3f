import { readFileSync } from 'node:fs'
import { http, HttpResponse } from 'msw'
import { describe, expect, it } from 'vitest'
import { BASE_URL, testClient, useMockServer } from './support/mock-server'

// Modal answers a web request that has not completed within 150 s with a 303 to its result URL
// (the same URL plus `__modal_function_call_id`), which blocks until the request completes.
// What the SDK does with one: fetch follows it as the Fetch standard prescribes (msw's interceptor
// does the same here), so no SDK code is involved (docs/deploy.md).
const RESULT_URL = `${BASE_URL}/v1/narrate?__modal_function_call_id=fc-1`
const narrateStream = readFileSync(new URL('../contract/streams/narrate.sse', import.meta.url))

const { server } = useMockServer()

describe("Modal's 303 to a result URL", () => {
  it('is fetched with GET, without the body, with the same credentials, and yields the run', async () => {
    const seen: { method: string; url: string; headers: Record<string, string>; body: string }[] = []
    server.use(
      http.all(`${BASE_URL}/v1/narrate`, async ({ request }) => {
        seen.push({ method: request.method, url: request.url, headers: Object.fromEntries(request.headers), body: await request.text() })
        if (request.url !== RESULT_URL) return new HttpResponse(null, { status: 303, headers: { location: RESULT_URL } })
        return new HttpResponse(narrateStream, { headers: { 'content-type': 'text/event-stream' } })
      }),
    )
    const run = testClient({ apiKey: 'sk-1', modal: { key: 'wk-1', secret: 'ws-2' } }).narrate({ instruction: 'Go.' })
    const result = await run
    expect(result.text.length).toBeGreaterThan(0)
    expect(seen.map(({ method, url }) => [method, url])).toEqual([
      ['POST', `${BASE_URL}/v1/narrate`],
      ['GET', RESULT_URL],
    ])
    const [post, get] = seen
    expect(post!.body).toContain('"instruction":"Go."')
    expect(get!.body).toBe('')
    for (const header of ['x-api-key', 'modal-key', 'modal-secret', 'idempotency-key', 'accept']) {
      expect(get!.headers[header], header).toBe(post!.headers[header])
    }
  })
})
