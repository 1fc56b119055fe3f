// The demo proper: start the local dev-profile server (or use PICTALE_BASE_URL), wait until it
// is ready, run examples/pipeline.ts on the bundled picture, and always stop the server again.
import { spawn } from 'node:child_process'
import { createClient, type Health } from '../../src/node/index'
import { bold, dim, spinner } from '../../examples/lib/terminal'
import { ROOT, startLocalServer, type LocalServer } from './local-server'

const remoteURL = process.env.PICTALE_BASE_URL
let server: LocalServer | undefined
let stopping = false

async function shutdown(exitCode: number): Promise<never> {
  if (!stopping) {
    stopping = true
    if (server) {
      await server.stop()
      console.log(dim(`\n› ${exitCode === 130 ? 'interrupted: ' : ''}stopped the local server`))
    }
  }
  process.exit(exitCode)
}
// Ctrl-C reaches the example too (same process group); the server has its own group, so stop it here.
process.on('SIGINT', () => void shutdown(130))
process.on('SIGTERM', () => void shutdown(143))

async function waitForServer(url: string, what: string): Promise<Health> {
  const started = Date.now()
  const waiting = spinner()
  const seconds = () => `${Math.round((Date.now() - started) / 1000)} s`
  waiting.update(`waiting for ${what}…`)
  try {
    const health = await createClient({ baseURL: url }).waitUntilReady({
      timeoutMs: remoteURL ? 10 * 60_000 : 5 * 60_000,
      intervalMs: remoteURL ? 3_000 : 500,
      onStatus: ({ health: status }) => {
        if (status?.status === 'loading') waiting.update(`${what}: loading models…`)
      },
    })
    waiting.stop(`✓ ready after ${seconds()}: vision ${health.models.vision.id}, writer ${health.models.writer.id}`)
    return health
  } catch (error) {
    waiting.stop()
    throw error
  }
}

function runPipelineExample(url: string): Promise<number> {
  const args = ['--import', 'tsx', 'examples/pipeline.ts', '--base-url', url]
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: 'inherit' })
  return new Promise((resolve) => child.on('exit', (code) => resolve(code ?? 1)))
}

async function main(): Promise<number> {
  let url: string
  let health: Health
  if (remoteURL) {
    url = remoteURL
    console.log(`› using the deployment at ${url} (PICTALE_BASE_URL)`)
    health = await waitForServer(url, 'the deployment (a Modal cold start takes a few minutes)')
  } else {
    console.log('› starting the local pictale server (dev profile)')
    server = await startLocalServer()
    url = server.url
    const died = server.exited.then((code) => {
      throw new Error(`the server stopped (exit code ${code}) before it was ready. Its output:\n${server?.output()}`)
    })
    health = await Promise.race([waitForServer(url, `the server at ${url}`), died])
  }

  if (health.profile === 'dev') {
    console.log(
      `\n${bold('Note:')} the dev profile runs tiny models with random weights, so the description and story\n` +
        'below are random words. Everything around them is real: image checks, prompts, streaming,\n' +
        'queueing, cancellation. For real text, deploy the real models: docs/deploy.md.',
    )
  }
  console.log(dim(`\n$ npx tsx examples/pipeline.ts --base-url ${url}`))
  return runPipelineExample(url)
}

main().then(
  async (exitCode) => {
    if (server) {
      await server.stop()
      server = undefined
      console.log(dim('\n› stopped the local server'))
    }
    if (exitCode === 0) {
      console.log(
        `\nNext: ${bold('npm test')} runs every test; examples/ has describe.ts, narrate.ts, pipeline.ts and\n` +
          'proxy-server.ts (keeps keys out of browsers); docs/sdk.md shows the SDK.',
      )
    }
    return shutdown(exitCode)
  },
  (error: unknown) => {
    console.error(`\ndemo failed: ${error instanceof Error ? error.message : String(error)}`)
    return shutdown(1)
  },
)
