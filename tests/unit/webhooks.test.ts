// pictale/webhooks verifies what the server signs (tests/contract/webhook.json, signed by the
// server's signer; server/tests/test_webhooks.py checks the server signs it so).
import { readFileSync } from 'node:fs'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { WebhookSignatureError, verifyWebhook } from '../../src/webhooks/index'

const delivery = JSON.parse(readFileSync(new URL('../contract/webhook.json', import.meta.url), 'utf8')) as {
  secret: string
  headers: Record<string, string>
  body: string
}
const signedAt = Number(delivery.headers['webhook-timestamp']) * 1000

describe('verifyWebhook', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['Date'] })
    vi.setSystemTime(signedAt + 30_000)
  })
  afterEach(() => vi.useRealTimers())

  it('returns the camelCased event of a genuine delivery', () => {
    const event = verifyWebhook(delivery.body, delivery.headers, delivery.secret)
    expect(event.type).toBe('run.done')
    expect(event.data).toMatchObject({ id: 'run_0123456789abcdef01234567', state: 'done' })
    expect(event.data.result).toMatchObject({ text: 'Once upon a time.', finishReason: 'stop' })
  })

  it('takes a Headers object as a fetch handler has it', () => {
    expect(verifyWebhook(delivery.body, new Headers(delivery.headers), delivery.secret).type).toBe('run.done')
  })

  it('refuses an altered body, a wrong secret, a missing header and a stale delivery', () => {
    const tampered = delivery.body.replace('Once', 'Twice')
    expect(() => verifyWebhook(tampered, delivery.headers, delivery.secret)).toThrow(WebhookSignatureError)
    const otherSecret = `whsec_${btoa('another secret, thirty-two bytes!')}`
    expect(() => verifyWebhook(delivery.body, delivery.headers, otherSecret)).toThrow(WebhookSignatureError)
    const { 'webhook-signature': _dropped, ...unsigned } = delivery.headers
    expect(() => verifyWebhook(delivery.body, unsigned, delivery.secret)).toThrow(WebhookSignatureError)
    vi.setSystemTime(signedAt + 10 * 60_000)
    expect(() => verifyWebhook(delivery.body, delivery.headers, delivery.secret)).toThrow(WebhookSignatureError)
  })
})
