// A background run on the live dev server calls a local endpoint when it ends; the endpoint
// verifies the delivery with pictale/webhooks, as an app would.
import { createServer, type IncomingHttpHeaders } from 'node:http'
import { describe, expect, it } from 'vitest'
import { createClient } from '../../src/node/index'
import { WebhookSignatureError, verifyWebhook } from '../../src/webhooks/index'
import { TEST_WEBHOOK_SECRET } from './global-setup'
import { liveServer } from './support'

function receiver(): Promise<{ url: string; next: Promise<{ body: string; headers: Record<string, string> }>; close(): void }> {
  let deliver: (value: { body: string; headers: Record<string, string> }) => void = () => {}
  const next = new Promise<{ body: string; headers: Record<string, string> }>((resolve) => (deliver = resolve))
  const server = createServer((request, response) => {
    let body = ''
    request.setEncoding('utf8')
    request.on('data', (chunk: string) => (body += chunk))
    request.on('end', () => {
      response.writeHead(204).end()
      deliver({ body, headers: plain(request.headers) })
    })
  })
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.2', () => {
      const { port } = server.address() as { port: number }
      resolve({ url: `http://127.0.0.2:${port}/hooks/pictale`, next, close: () => server.close() })
    })
  })
}

function plain(headers: IncomingHttpHeaders): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).map(([name, value]) => [name, String(value)]))
}

describe('webhooks', () => {
  it('a background run reports its end, signed, and the SDK verifies it', async () => {
    const { url, key } = liveServer()
    const hook = await receiver()
    try {
      const client = createClient({ baseURL: url, apiKey: key })
      const started = await client.narrate({ instruction: 'One line.', maxTokens: 8, background: true, webhook: { url: hook.url } })
      const { body, headers } = await hook.next
      const event = verifyWebhook(body, headers, TEST_WEBHOOK_SECRET)
      expect(event).toMatchObject({ type: 'run.done', data: { id: started.id, state: 'done' } })
      expect(event.data.result).toMatchObject({ id: started.id, finishReason: 'length' })
      expect(() => verifyWebhook(body.replace('"done"', '"error"'), headers, TEST_WEBHOOK_SECRET)).toThrow(WebhookSignatureError)
    } finally {
      hook.close()
    }
  })
})
