// Defaults the examples share.
import { relative } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The server the examples talk to unless --base-url says otherwise. */
export const DEFAULT_BASE_URL = process.env.PICTALE_BASE_URL || 'http://127.0.0.1:8000'

/** The bundled picture (generated shapes; see examples/assets/make_sample.py). */
export const SAMPLE_IMAGE = relative(process.cwd(), fileURLToPath(new URL('../assets/sample.png', import.meta.url)))

export const BASE_URL_HELP = `  --base-url URL       pictale server (default: PICTALE_BASE_URL or http://127.0.0.1:8000)
  PICTALE_API_KEY, MODAL_KEY and MODAL_SECRET are read from the environment when set.`

export function printUsage(usage: string): never {
  process.stdout.write(`${usage.trim()}\n${BASE_URL_HELP}\n`)
  process.exit(0)
}

export function stats(result: { finishReason: string; usage: { outputTokens: number }; timings: { tokensPerSecond: number } }): string {
  return `${result.usage.outputTokens} tokens, ${result.timings.tokensPerSecond.toFixed(0)} tokens/s, finished: ${result.finishReason}`
}
