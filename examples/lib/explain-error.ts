// Turns the SDK's typed errors into messages a person running an example can act on.
import {
  AuthenticationError,
  BadRequestError,
  ConnectionError,
  ContentRefusedError,
  PictaleError,
  RateLimitError,
  ServiceUnavailableError,
  TimeoutError,
} from 'pictale/node'

export function explainError(error: unknown, baseURL: string): string {
  if (error instanceof ContentRefusedError) {
    const where = error.source === 'stream' ? 'the image check after the description' : 'the text check'
    return [
      `The server's safety gate refused this request (${where}, code content_refused).`,
      'On the dev profile the image check is decided by a tiny random-weight model, so even a',
      'harmless picture can be refused; with the real models it is not. See docs/safety.md.',
    ].join('\n')
  }
  if (error instanceof ConnectionError) {
    return `No pictale server answered at ${baseURL}. Start one with \`npm run serve\`, or pass --base-url.`
  }
  if (error instanceof AuthenticationError) {
    return `The server at ${baseURL} wants an API key: set PICTALE_API_KEY (and MODAL_KEY / MODAL_SECRET for Modal).`
  }
  if (error instanceof BadRequestError) {
    return `The server refused the request: ${error.code}${error.param ? ` (${error.param})` : ''}: ${error.message}`
  }
  if (error instanceof RateLimitError || error instanceof ServiceUnavailableError) {
    const wait = error.retryAfter === undefined ? '' : ` Try again in ${Math.ceil(error.retryAfter / 1000)} s.`
    return `The server is busy or still starting (${error.code}).${wait}`
  }
  if (error instanceof TimeoutError) return `Timed out waiting for the server (${error.phase} timeout).`
  if (error instanceof PictaleError) return `${error.name} (${error.code}): ${error.message}`
  return error instanceof Error ? (error.stack ?? error.message) : String(error)
}
