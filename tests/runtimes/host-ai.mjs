// pictale/ai from the installed package under the current `ai` package (7, pinned in
// tests/runtimes, which needs Node 22 or later): the language models of specification v3 that
// pictale/ai gives are adapted by ai 7, so this checks that adaptation end to end.
import { createRequire } from 'node:module'
import process from 'node:process'
import { pathToFileURL } from 'node:url'
import { createPictale } from 'pictale/ai'

const PNG = Uint8Array.from(
  atob(
    'iVBORw0KGgoAAAANSUhEUgAAAEAAAABACAIAAAAlC+aJAAAAWUlEQVR42u3PQQ0AIAwEsCmZEoQhERGIQcNI7tekBlpnr6gOKwEBAQEBAQEBAQEBAQEBAQEBAQEBAQGBj8CN6jABAQEBAQEBAQEBAQEBAQEBAQEBAQEBgbEHSZdxWkksh+8AAAAASUVORK5CYII=',
  ),
  (char) => char.charCodeAt(0),
)

function check(condition, message) {
  if (!condition) throw new Error(message)
}

try {
  const matrix = createRequire(process.env.PICTALE_MATRIX_PACKAGE)
  const { generateText, streamText } = await import(pathToFileURL(matrix.resolve('ai')).href)
  const VERSION = matrix('ai/package.json').version
  check(VERSION.startsWith('7.'), `expected the ai package 7, got ${VERSION}`)
  const pictale = createPictale({ baseURL: process.env.PICTALE_BASE_URL, apiKey: process.env.PICTALE_API_KEY, maxRetries: 0 })

  const written = streamText({ model: pictale('writer'), prompt: 'A harbour at dusk.', maxOutputTokens: 8 })
  let streamed = ''
  for await (const text of written.textStream) streamed += text
  check(streamed === (await written.text), 'streamText: the streamed text differs from the result')
  check((await written.usage).outputTokens > 0, 'streamText: no output tokens in usage')
  console.log('ok streamText (writer)')

  const story = await generateText({
    model: pictale('pipeline'),
    maxOutputTokens: 8,
    messages: [{ role: 'user', content: [{ type: 'image', image: PNG }, { type: 'text', text: 'One line about this.' }] }],
  })
  check((story.reasoningText ?? '').length > 0, 'generateText: the pipeline gave no description (reasoning)')
  check(story.usage.outputTokenDetails?.reasoningTokens > 0, 'generateText: no reasoning tokens in usage')
  console.log('ok generateText (pipeline, picture bytes)')

  const controller = new AbortController()
  let aborted = false
  const stopped = streamText({
    model: pictale('writer'),
    prompt: 'A very long story.',
    maxOutputTokens: 2048,
    abortSignal: controller.signal,
    onAbort: () => void (aborted = true),
  })
  for await (const part of stopped.fullStream) if (part.type === 'text-delta') controller.abort()
  check(aborted, 'abortSignal: the AI SDK did not see an abort')
  console.log('ok abortSignal')
  console.log(`passed 3 checks with ai ${VERSION}`)
} catch (error) {
  console.error(error)
  process.exitCode = 1
}
