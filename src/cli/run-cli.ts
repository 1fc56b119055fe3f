import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { createClient, type NodePictaleClient } from '../node/index'
import { EVAL_OPTIONS, evalSettings, givenEvalOptions, type EvalSettings } from './eval-options'
import { EXIT, describeFailure } from './exit-codes'
import { Spinner } from './spinner'

export const USAGE = `pictale: turn a picture into a story, from the terminal

Usage:
  pictale story <image> <instruction>   describe the picture, then write from it
  pictale describe <image> [--style caption|detailed|scene]
  pictale health
  pictale eval [eval options]            score the server's stories under sampler presets

Options:
  --url <url>    the server (default: $PICTALE_BASE_URL, else http://127.0.0.1:8000)
  --json         print the result as one JSON object, for scripts (no streaming)
  --help         this text
  --version      the package's version

Eval options (docs/eval.md in the pictale repository defines each metric):
  --presets <a,b>         presets to compare: plain, dry, dry+xtc, banned-phrases, or
                          names from --presets-file (default: all of them)
  --presets-file <path>   JSON: { "name": { sampling fields, e.g. "temperature": 1.1 } }
  --prompts <ids>         bundled prompts to run (default: all 10, English and Portuguese)
  --limit <n>             only the first n of them
  --concurrency <n>       pipelines in flight at once (default 4)
  --max-tokens <n>        cap both stages' tokens (default: from each requested length)
  --seed <n>              the first prompt's seed, the next +1 (default 1)
  --out <dir>             where report.json and report.html go
                          (default ./pictale-eval/<time>)

<image> is a file path, a file: URL, an https URL or a data: URL.
The story streams to stdout; the description of the picture to stderr.
Keys come from the environment: PICTALE_API_KEY, MODAL_KEY and MODAL_SECRET.

Exit codes: 0 done; 2 a bad command line or request (image, field, API key,
preset, presets file); 3 the server is unreachable, not ready, busy or too slow;
4 refused by the content policy; 5 another server error (eval: some runs failed,
the report written); 130 interrupted.`

/** Where a command writes; the real process's streams, or a test's. */
export interface CliIO {
  stdout: { write(text: string): unknown; isTTY?: boolean }
  stderr: { write(text: string): unknown; isTTY?: boolean }
  env: Record<string, string | undefined>
  /** Called with a function that stops the command (Ctrl-C). */
  onInterrupt(stop: () => void): void
}

const DEFAULT_URL = 'http://127.0.0.1:8000'

/** Runs one command line; resolves with the exit code. Never throws. */
export async function runCli(argv: string[], io: CliIO): Promise<number> {
  let parsed: ReturnType<typeof parse>
  try {
    parsed = parse(argv)
  } catch (error) {
    io.stderr.write(`pictale: ${(error as Error).message}\n\n${USAGE}\n`)
    return EXIT.usage
  }
  const { values, positionals } = parsed
  if (values.help) {
    io.stdout.write(`${USAGE}\n`)
    return EXIT.ok
  }
  if (values.version) {
    io.stdout.write(`${packageVersion()}\n`)
    return EXIT.ok
  }
  const [command, ...rest] = positionals
  const usage = (message: string) => {
    io.stderr.write(`pictale: ${message}\n\n${USAGE}\n`)
    return EXIT.usage
  }
  const evalOnly = givenEvalOptions(values)
  if (command !== 'eval' && evalOnly.length) return usage(`${evalOnly.join(', ')}: only for eval`)
  const baseURL = values.url ?? io.env.PICTALE_BASE_URL ?? DEFAULT_URL
  let client: NodePictaleClient
  try {
    client = createClient({
      baseURL,
      apiKey: io.env.PICTALE_API_KEY || undefined,
      modal: io.env.MODAL_KEY && io.env.MODAL_SECRET ? { key: io.env.MODAL_KEY, secret: io.env.MODAL_SECRET } : undefined,
    })
  } catch (error) {
    const where = (error as { param?: string }).param === 'baseURL' ? `the server URL ${JSON.stringify(baseURL)} (--url or PICTALE_BASE_URL): ` : ''
    return usage(`${where}${(error as Error).message}`)
  }
  try {
    switch (command) {
      case 'health':
        if (rest.length) return usage('health takes no arguments')
        return await health(client, io, values.json ?? false)
      case 'describe': {
        if (rest.length !== 1) return usage('describe takes one image')
        const style = values.style
        if (style !== undefined && !['caption', 'detailed', 'scene'].includes(style)) {
          return usage('--style is caption, detailed or scene')
        }
        const run = client.describe({ image: rest[0]!, ...(style ? { style: style as 'caption' } : {}) })
        return await stream(run, io, values.json ?? false, { describe: io.stdout })
      }
      case 'story': {
        if (rest.length !== 2) return usage('story takes an image and an instruction')
        const run = client.pipeline({ image: rest[0]!, instruction: rest[1]! })
        return await stream(run, io, values.json ?? false, { describe: io.stderr, narrate: io.stdout })
      }
      case 'eval': {
        if (rest.length) return usage('eval takes options only')
        let settings: EvalSettings
        try {
          settings = evalSettings(values)
        } catch (error) {
          return usage((error as Error).message)
        }
        const { runEvalCommand } = await import('./eval-command')
        return await runEvalCommand(settings, { client, baseURL, io, json: values.json ?? false })
      }
      case undefined:
        return usage('no command')
      default:
        return usage(`unknown command ${JSON.stringify(command)}`)
    }
  } catch (error) {
    const failure = describeFailure(error)
    io.stderr.write(`pictale: ${failure.message}\n`)
    return failure.code
  }
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      url: { type: 'string' },
      style: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean', short: 'v' },
      ...EVAL_OPTIONS,
    },
  })
}

async function health(client: NodePictaleClient, io: CliIO, json: boolean): Promise<number> {
  const status = await client.health()
  if (json) io.stdout.write(`${JSON.stringify(status)}\n`)
  else {
    const models = Object.entries(status.models).map(([role, model]) => `${role} ${model.id} (${model.loaded ? 'loaded' : 'not loaded'})`)
    io.stdout.write(`${status.status}: ${models.join(', ')}\n`)
  }
  return status.status === 'ok' ? EXIT.ok : EXIT.unavailable
}

type Streamed = AsyncIterable<{ type: string } & Record<string, unknown>> & PromiseLike<unknown> & { abort(reason?: unknown): void }

async function stream(
  run: Streamed,
  io: CliIO,
  json: boolean,
  outputs: { describe?: CliIO['stdout']; narrate?: CliIO['stdout'] },
): Promise<number> {
  io.onInterrupt(() => run.abort())
  const spinner = new Spinner(io.stderr)
  try {
    for await (const event of run) {
      if (event.type === 'status') {
        const state = event.state as string
        if (state === 'loading') spinner.show('the server is loading its models (a cold start takes a minute or two)')
        else if (state === 'queued') spinner.show(`waiting in the queue (position ${event.position})`)
        else spinner.show('generating')
      } else if (event.type === 'delta') {
        spinner.clear()
        if (!json) outputs[event.stage as 'describe' | 'narrate']?.write(event.text as string)
      } else if (event.type === 'stage-end' && !json) {
        outputs[event.stage as 'describe' | 'narrate']?.write('\n')
      }
    }
  } finally {
    spinner.clear()
  }
  const result = await run
  if (json) io.stdout.write(`${JSON.stringify(result)}\n`)
  return EXIT.ok
}

function packageVersion(): string {
  for (const path of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(path, import.meta.url), 'utf8')) as { name?: string; version?: string }
      if (pkg.name === 'pictale' && pkg.version) return pkg.version
    } catch {
      // not this layout (dist/ or src/cli/)
    }
  }
  return 'unknown'
}
