/**
 * Verifying pictale's webhooks (`webhook: { url }` on describe, narrate or pipeline) in your
 * endpoint: Node, Bun, Deno, edge runtimes and browsers' workers (no `node:` imports).
 *
 * Deliveries are signed per Standard Webhooks (HMAC-SHA256 under the server's
 * `PICTALE_WEBHOOK_SECRET`); verification is that spec's reference library: a constant-time
 * comparison of the signature, and the timestamp within 5 minutes of now.
 *
 * @example
 * import { verifyWebhook } from 'pictale/webhooks'
 * export async function POST(request: Request) {
 *   const event = verifyWebhook(await request.text(), request.headers, process.env.PICTALE_WEBHOOK_SECRET!)
 *   if (event.type === 'run.done') console.log(event.data.id, event.data.result)
 *   return new Response(null, { status: 204 })
 * }
 * @packageDocumentation
 */
import { Webhook, WebhookVerificationError } from 'standardwebhooks'
import * as z from 'zod/mini'
import { PictaleError } from '../errors/pictale-error'
import { RunStateSchema } from '../schemas/results'
import { camelizeKeys } from '../wire/case'

/** A delivery's body, camelCased. `data.result` is the run's result once `run.done`. */
export const WebhookEventSchema = z.object({
  type: z.enum(['run.done', 'run.failed', 'run.cancelled']),
  timestamp: z.string(),
  data: z.object({
    id: z.string(),
    state: RunStateSchema,
    result: z.optional(z.record(z.string(), z.unknown())),
    error: z.optional(z.looseObject({ code: z.string(), message: z.string() })),
  }),
})
/** A verified webhook delivery. */
export type WebhookEvent = z.infer<typeof WebhookEventSchema>

/** The delivery is not pictale's, was altered, or is too old or too new to trust. */
export class WebhookSignatureError extends PictaleError {
  static override readonly kind: string = 'WebhookSignatureError'
  constructor(message: string) {
    super('webhook_signature_invalid', message)
  }
}

/**
 * Checks a delivery against your secret and returns its event. `body` is the request body
 * exactly as received (read it as text before any JSON parsing); `headers` are the request's.
 * Throws {@link WebhookSignatureError} for a missing, wrong or stale signature.
 */
export function verifyWebhook(
  body: string | Uint8Array,
  headers: Headers | Record<string, string>,
  secret: string,
): WebhookEvent {
  const plain: Record<string, string> = {}
  if (typeof Headers !== 'undefined' && headers instanceof Headers) {
    headers.forEach((value, name) => {
      plain[name] = value
    })
  } else {
    for (const [name, value] of Object.entries(headers)) plain[name.toLowerCase()] = value
  }
  let payload: unknown
  try {
    payload = new Webhook(secret).verify(body, plain)
  } catch (error) {
    if (error instanceof WebhookVerificationError) throw new WebhookSignatureError(error.message)
    throw error
  }
  const parsed = WebhookEventSchema.safeParse(camelizeKeys(payload))
  if (!parsed.success) throw new WebhookSignatureError('the delivery is signed but is not a pictale event')
  return parsed.data
}
