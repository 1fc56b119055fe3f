// Starts the Python reference server from server/.venv on a free local port, for the demo
// and the integration tests. The process gets its own process group, so stop() (and the exit
// hook) end it and anything it started, even when the caller is interrupted.
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createServer } from 'node:net'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const SERVER_PYTHON = join(ROOT, 'server', '.venv', 'bin', 'python')
/** Where the dev profile builds its tiny models: shared by the demo and the tests, ignored by git. */
export const DEV_CACHE_DIR = join(ROOT, '.pictale-cache')

export interface LocalServerOptions {
  /** PICTALE_CACHE_DIR for the dev models. Default {@link DEV_CACHE_DIR}. */
  cacheDir?: string
  /** Bearer keys the server requires (PICTALE_API_KEYS); none = no auth. */
  apiKeys?: string[]
  /** Extra environment for the server (PICTALE_* settings). */
  env?: Record<string, string>
  /** Receives the server's stdout and stderr; default: discarded. */
  onOutput?: (chunk: string) => void
}

export interface LocalServer {
  url: string
  /** The server's output so far (for error messages). */
  output(): string
  /** Resolves when the process has exited; SIGKILL after `graceMs` if SIGTERM is not enough. */
  stop(graceMs?: number): Promise<void>
  /** Resolves with the exit code if the process ends on its own. */
  exited: Promise<number | null>
}

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const probe = createServer()
    probe.unref()
    probe.on('error', reject)
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address()
      probe.close(() => (typeof address === 'object' && address ? resolvePort(address.port) : reject(new Error('no port'))))
    })
  })
}

export async function startLocalServer(options: LocalServerOptions = {}): Promise<LocalServer> {
  if (!existsSync(SERVER_PYTHON)) {
    throw new Error('server/.venv is missing: run `node scripts/server-venv.mjs` (npm test and npm run demo do it for you)')
  }
  const port = await freePort()
  const child = spawn(SERVER_PYTHON, ['-m', 'pictale_server'], {
    cwd: ROOT,
    detached: true, // own process group: a Ctrl-C in the terminal reaches us, and we stop it
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      PICTALE_PROFILE: 'dev',
      PICTALE_CACHE_DIR: options.cacheDir ?? DEV_CACHE_DIR,
      PICTALE_API_KEYS: (options.apiKeys ?? []).join(','),
      HOST: '127.0.0.1',
      PORT: String(port),
      PYTHONUNBUFFERED: '1',
      ...options.env,
    },
  })
  let output = ''
  const collect = (chunk: Buffer) => {
    const text = chunk.toString('utf8')
    output = (output + text).slice(-20_000)
    options.onOutput?.(text)
  }
  child.stdout?.on('data', collect)
  child.stderr?.on('data', collect)
  const exited = new Promise<number | null>((resolveExit) => {
    child.once('exit', (code) => resolveExit(code))
    child.once('error', () => resolveExit(null))
  })
  const killOnExit = () => killGroup(child, 'SIGKILL')
  process.once('exit', killOnExit)

  return {
    url: `http://127.0.0.1:${port}`,
    output: () => output,
    exited,
    async stop(graceMs = 5_000) {
      process.removeListener('exit', killOnExit)
      if (child.exitCode !== null || child.signalCode !== null) return
      killGroup(child, 'SIGTERM')
      const timer = setTimeout(() => killGroup(child, 'SIGKILL'), graceMs)
      await exited
      clearTimeout(timer)
    },
  }
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return
  try {
    process.kill(-child.pid, signal)
  } catch {
    // Already gone.
  }
}
