// Type-checked as a user's code in every module mode (scripts/check-consumer-types.mjs);
// never run. It imports every entry of the packed package.
import { createClient, ValidationError, type NarrateRequest, type PipelineEvent } from 'pictale'
import { createPictale } from 'pictale/ai'
import { createClient as createNodeClient } from 'pictale/node'
import { NarrateRequestSchema } from 'pictale/schemas'
import { pictaleMock } from 'pictale/testing'
import { verifyWebhook, type WebhookEvent } from 'pictale/webhooks'

export const client = createClient({ baseURL: 'http://127.0.0.1:8000' })
export const nodeClient = createNodeClient({ baseURL: 'http://127.0.0.1:8000' })
export const request: NarrateRequest = { instruction: 'A ghost story.', maxTokens: 64 }
// @ts-expect-error a misspelt field is a type error
export const typo: NarrateRequest = { instruction: 'A ghost story.', maxTokenz: 64 }
export const parsed = NarrateRequestSchema.safeParse(request).success
// @ts-expect-error the schemas are values of pictale/schemas only; pictale exports their types
export { NarrateRequestSchema as FromTheDefaultEntry } from 'pictale'
export const writer = createPictale({ client: nodeClient })('writer')
export const specification: 'v3' = writer.specificationVersion
export const handlers = pictaleMock({ baseURL: 'http://127.0.0.1:8000' }).handlers

export async function story(image: Uint8Array): Promise<string> {
  const run = nodeClient.pipeline({ image, instruction: 'A ghost story.' })
  for await (const event of run as AsyncIterable<PipelineEvent>) if (event.type === 'delta') void event.text
  return (await run).story.text
}

export function received(body: string, headers: Record<string, string>): WebhookEvent | ValidationError {
  try {
    return verifyWebhook(body, headers, 'whsec_c2VjcmV0')
  } catch (error) {
    if (error instanceof ValidationError) return error
    throw error
  }
}
