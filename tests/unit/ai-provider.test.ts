import { generateText, jsonSchema, streamText, tool } from 'ai'
import { describe, expect, it } from 'vitest'
import { createPictale } from '../../src/ai/index'
import { ContentRefusedError, InvalidInputError } from '../../src/index'
import { MOCK_RUN_ID, refused, refusedMidStream, stalled, tokenStream } from '../../src/testing'
import { BASE_URL, PNG_BASE64, rejectionOf, useMockServer } from './support/mock-server'

const { mock } = useMockServer()
const pictale = createPictale({ baseURL: BASE_URL, apiKey: 'sk-test', maxRetries: 0 })
const png = Uint8Array.from(atob(PNG_BASE64), (c) => c.charCodeAt(0))

async function settled(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 5))
}

describe('pictale/ai with the AI SDK', () => {
  it('generateText on the writer: instruction, system, history and sampling reach narrate; text and usage come back', async () => {
    const server = mock({ narrate: tokenStream({ route: 'narrate', tokens: { narrate: ['It was', ' dark.'] } }) })
    const result = await generateText({
      model: pictale('writer'),
      system: 'You write gothic fiction.',
      messages: [
        { role: 'user', content: 'Set the scene.' },
        { role: 'assistant', content: 'A manor on a hill.' },
        { role: 'user', content: 'Go on.' },
      ],
      maxOutputTokens: 40,
      temperature: 0.9,
      stopSequences: ['THE END'],
      seed: 7,
      providerOptions: { pictale: { dryMultiplier: 0.8, bannedPhrases: ['a testament to'] } },
    })
    expect(result.text).toBe('It was dark.')
    expect(result.finishReason).toBe('stop')
    expect(result.usage).toMatchObject({ inputTokens: 32, outputTokens: 2, totalTokens: 34 })
    expect(result.response.id).toBe(MOCK_RUN_ID)
    expect(result.providerMetadata?.pictale).toMatchObject({ runId: MOCK_RUN_ID, narrate: { model: 'pictale-dev/mistral-nemo-tiny' } })
    expect(server.requests[0]!.path).toBe('/v1/narrate')
    expect(server.requests[0]!.body).toEqual({
      instruction: 'Go on.',
      system: 'You write gothic fiction.',
      history: [
        { role: 'user', content: 'Set the scene.' },
        { role: 'assistant', content: 'A manor on a hill.' },
      ],
      max_tokens: 40,
      temperature: 0.9,
      stop: ['THE END'],
      seed: 7,
      dry_multiplier: 0.8,
      banned_phrases: ['a testament to'],
      stream: true,
    })
  })

  it('streamText on the pipeline: an image part in, the description as reasoning, then the story as text', async () => {
    const server = mock({ pipeline: tokenStream({ route: 'pipeline' }) })
    const result = streamText({
      model: pictale('pipeline'),
      messages: [{ role: 'user', content: [{ type: 'image', image: png, mediaType: 'image/png' }, { type: 'text', text: 'A ghost story.' }] }],
    })
    const chunks: string[] = []
    for await (const text of result.textStream) chunks.push(text)
    expect(chunks).toEqual(['Once upon a time', ', a circle rolled away.'])
    expect(await result.reasoningText).toBe('A red circle on a blue field.')
    expect(await result.usage).toMatchObject({ inputTokens: 64, outputTokens: 4, reasoningTokens: 2 })
    const body = server.requests[0]!.body as { image: { data: string; media_type: string }; instruction: string }
    expect(server.requests[0]!.path).toBe('/v1/pipeline')
    expect(body.instruction).toBe('A ghost story.')
    expect(body.image).toEqual({ data: PNG_BASE64, media_type: 'image/png' })
  })

  it("a pipeline's samplers shape the story: standard and pictale's own go to narrate, describe keeps its place", async () => {
    const server = mock({ pipeline: tokenStream({ route: 'pipeline' }) })
    await generateText({
      model: pictale('pipeline'),
      system: 'Gothic.',
      messages: [{ role: 'user', content: [{ type: 'image', image: png, mediaType: 'image/png' }, { type: 'text', text: 'A ghost story.' }] }],
      maxOutputTokens: 30,
      providerOptions: { pictale: { xtcProbability: 0.5, describe: { style: 'scene' } } },
    })
    expect(server.requests[0]!.body).toMatchObject({
      instruction: 'A ghost story.',
      describe: { style: 'scene' },
      narrate: { system: 'Gothic.', max_tokens: 30, xtc_probability: 0.5 },
    })
    expect(server.requests[0]!.body).not.toHaveProperty('xtc_probability')
  })

  it('the vision model gets an https picture as a URL for the server to fetch, with the question as its prompt', async () => {
    const server = mock({ describe: tokenStream({ route: 'describe' }) })
    const { text } = await generateText({
      model: pictale('vision'),
      messages: [{ role: 'user', content: [{ type: 'text', text: 'What colour is the circle?' }, { type: 'image', image: new URL('https://example.com/shapes.png') }] }],
    })
    expect(text).toBe('A red circle on a blue field.')
    expect(server.requests[0]!.body).toMatchObject({ image: { url: 'https://example.com/shapes.png' }, prompt: 'What colour is the circle?' })
  })

  it('an abort signal stops the stream as an AbortError and cancels the job on the server', async () => {
    const server = mock({ narrate: stalled({ tokens: ['It', ' was'] }) })
    const controller = new AbortController()
    const errors: unknown[] = []
    let aborted = false
    const result = streamText({
      model: pictale('writer'),
      prompt: 'A ghost story.',
      abortSignal: controller.signal,
      onError: ({ error }) => void errors.push(error),
      onAbort: () => void (aborted = true),
    })
    const seen: string[] = []
    const loop = (async () => {
      for await (const text of result.textStream) {
        seen.push(text)
        if (seen.length === 2) controller.abort()
      }
    })()
    await loop.catch((error: unknown) => errors.push(error))
    expect(seen).toEqual(['It', ' was'])
    expect(aborted).toBe(true) // the AI SDK saw a cancellation, not a failure
    expect(errors).toEqual([])
    await settled(() => server.cancels.length === 1)
    expect(server.cancels).toEqual([MOCK_RUN_ID])
    expect(server.streams[0]!.closedByClient).toBe(true)
  })

  it("pictale's typed errors reach the caller: a refusal, and a request pictale cannot carry", async () => {
    mock({ narrate: refused() })
    const refusal = await rejectionOf(generateText({ model: pictale('writer'), prompt: 'x', maxRetries: 0 }))
    expect(refusal).toBeInstanceOf(ContentRefusedError)

    const picture = { role: 'user' as const, content: [{ type: 'image' as const, image: png, mediaType: 'image/png' }, { type: 'text' as const, text: 'x' }] }
    const writerWithImage = await rejectionOf(generateText({ model: pictale('writer'), messages: [picture], maxRetries: 0 }))
    expect(writerWithImage).toBeInstanceOf(InvalidInputError)
    expect((writerWithImage as Error).message).toMatch(/pictale\('pipeline'\)/)

    const typo = await rejectionOf(generateText({ model: pictale('writer'), prompt: 'x', maxRetries: 0, providerOptions: { pictale: { dryMultiplierr: 1 } } }))
    expect(typo).toBeInstanceOf(InvalidInputError)
    expect((typo as InvalidInputError).param).toBe('dryMultiplierr')

    const background = await rejectionOf(generateText({ model: pictale('writer'), prompt: 'x', maxRetries: 0, providerOptions: { pictale: { background: true } } }))
    expect(background).toBeInstanceOf(InvalidInputError)
    expect((background as InvalidInputError).param).toBe('background')
  })

  it('streamText reports refusals through onError: before the stream (HTTP 403) and in it', async () => {
    for (const answer of [refused(), refusedMidStream()]) {
      mock({ pipeline: answer })
      const errors: unknown[] = []
      const result = streamText({
        model: pictale('pipeline'),
        messages: [{ role: 'user', content: [{ type: 'image', image: png, mediaType: 'image/png' }, { type: 'text', text: 'x' }] }],
        onError: ({ error }) => void errors.push(error),
      })
      await result.consumeStream()
      expect(errors).toHaveLength(1)
      expect(errors[0]).toBeInstanceOf(ContentRefusedError)
    }
  })

  it('a conversation goes on after a picture: the description becomes the context, earlier pictures are not resent', async () => {
    const server = mock({ narrate: tokenStream({ route: 'narrate' }) })
    const result = streamText({
      model: pictale('pipeline'),
      messages: [
        { role: 'user', content: [{ type: 'image', image: png, mediaType: 'image/png' }, { type: 'text', text: 'A ghost story.' }] },
        { role: 'assistant', content: [{ type: 'reasoning', text: 'A red circle on a blue field.' }, { type: 'text', text: 'Once upon a time.' }] },
        { role: 'user', content: 'Go on.' },
      ],
      // One set of options for the whole chat: describe's apply when a picture comes again.
      providerOptions: { pictale: { describe: { style: 'scene' }, dryMultiplier: 0.8, narrate: { minP: 0.05 } } },
    })
    await result.consumeStream()
    expect((await result.response).modelId).toBe('pictale-dev/mistral-nemo-tiny')
    expect(await result.warnings).toEqual([expect.objectContaining({ type: 'other', message: expect.stringMatching(/not sent again/) })])
    expect(server.requests[0]!.path).toBe('/v1/narrate')
    expect(server.requests[0]!.body).toMatchObject({
      instruction: 'Go on.',
      context: 'A red circle on a blue field.',
      dry_multiplier: 0.8,
      min_p: 0.05,
      history: [
        { role: 'user', content: 'A ghost story.' },
        { role: 'assistant', content: 'Once upon a time.' },
      ],
    })
  })

  it('takes a picture whose type is only "image" (the ai package 7 sends that for URLs it cannot type)', async () => {
    const server = mock({ describe: tokenStream({ route: 'describe' }) })
    await pictale('vision').doGenerate({
      prompt: [{ role: 'user', content: [{ type: 'file', data: new URL('https://example.com/a'), mediaType: 'image' }] }],
    })
    expect(server.requests[0]!.body).toMatchObject({ image: { url: 'https://example.com/a' } })
  })

  it('providerOptions cannot replace what the messages say', async () => {
    const error = await rejectionOf(generateText({ model: pictale('writer'), prompt: 'x', maxRetries: 0, providerOptions: { pictale: { instruction: 'y' } } }))
    expect(error).toBeInstanceOf(InvalidInputError)
    expect((error as InvalidInputError).param).toBe('instruction')
  })

  it('tools are reported as unsupported warnings, not sent', async () => {
    const server = mock({ narrate: tokenStream({ route: 'narrate' }) })
    const { warnings } = await generateText({
      model: pictale('writer'),
      prompt: 'x',
      tools: { weather: tool({ description: 'weather', inputSchema: jsonSchema({ type: 'object', properties: {} }) }) },
    })
    expect(warnings).toEqual([expect.objectContaining({ type: 'unsupported', feature: 'tools' })])
    expect(server.requests[0]!.body).not.toHaveProperty('tools')
  })

  it('names the models it has', () => {
    expect(() => pictale('gpt-4' as never)).toThrow(/writer, vision, pipeline/)
    expect(() => pictale.imageModel('x')).toThrow(InvalidInputError)
  })
})
