// The Vercel AI SDK (`ai`) with pictale/ai against the live dev server, used as an app would.
import { readFileSync } from 'node:fs'
import { generateText, streamText } from 'ai'
import { describe, expect, it } from 'vitest'
import { createPictale } from '../../src/ai/index'
import { liveClient, SAMPLE_IMAGE } from './support'

const pictale = createPictale({ client: liveClient() })

describe('the AI SDK with pictale/ai', () => {
  it('streams a story from picture bytes: the description as reasoning, then the text, with usage', async () => {
    const result = streamText({
      model: pictale('pipeline'),
      maxOutputTokens: 12,
      messages: [
        {
          role: 'user',
          content: [
            { type: 'image', image: readFileSync(SAMPLE_IMAGE), mediaType: 'image/png' },
            { type: 'text', text: 'One line about this place.' },
          ],
        },
      ],
    })
    let streamed = ''
    for await (const text of result.textStream) streamed += text
    expect(streamed).toBe(await result.text)
    expect((await result.reasoningText)?.length).toBeGreaterThan(0)
    const usage = await result.usage
    expect(usage.inputTokens).toBeGreaterThan(0)
    expect(usage.outputTokens).toBeGreaterThan(0)
    expect(usage.reasoningTokens).toBeGreaterThan(0)
    expect(['stop', 'length']).toContain(await result.finishReason)
  })

  it('generates with the writer from a conversation', async () => {
    const { text, usage, response } = await generateText({
      model: pictale('writer'),
      system: 'Write tersely.',
      messages: [
        { role: 'user', content: 'A harbour at dawn.' },
        { role: 'assistant', content: 'Gulls over still water.' },
        { role: 'user', content: 'Go on.' },
      ],
      maxOutputTokens: 8,
    })
    expect(typeof text).toBe('string')
    expect(usage.outputTokens).toBeGreaterThan(0)
    expect(response.id).toMatch(/^run_/)
  })
})
