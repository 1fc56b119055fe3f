// `node scripts/runtime-matrix.mjs` (the `runtimes` suite of `npm test`): runs the SDK's smoke
// test (tests/runtimes/smoke.mjs) on every runtime the SDK supports — Node 20, 22 and 24 (ESM
// and CommonJS), Bun, Deno, and Chromium both cross-origin and through
// examples/proxy-server.ts — against one local dev-profile server, with the package built,
// packed and installed into a fresh project as a user gets it; and pictale/ai under the `ai`
// package 7 on Node 22 and 24. The runtimes come from
// tests/runtimes/package.json (its own lock file), Chromium from Debian's package.
// Prints `runtime | result | seconds` and exits non-zero if any runtime failed.
import { spawn, spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startStaticServer } from '../tests/runtimes/browser/static-server.mjs'
import { ensureNodeModules } from './ensure-node-modules.mjs'
import { ensureChromium } from './lib/ensure-chromium.mjs'
import { packedConsumer } from './lib/packed-consumer.mjs'
import { startProxyExample } from './lib/start-proxy-example.mjs'

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)))
const MATRIX = join(ROOT, 'tests', 'runtimes')
const BIN = join(MATRIX, 'node_modules')
const HOST_FILES = ['smoke.mjs', 'host.mjs', 'host-esm.mjs', 'host-cjs.cjs', 'host-ai.mjs']
const API_KEY = 'pk_runtime_matrix'
const RUNTIME_TIMEOUT_MS = 90_000
const started = Date.now()
/** What to stop and remove at the end, last first (servers, the temporary folder, a running runtime). */
const cleanups = []

function step(message) {
  console.log(`› ${message} (${Math.round((Date.now() - started) / 1000)} s)`)
}

/** `npm ci` in tests/runtimes when its lock file changed since the last install. */
function installRuntimes() {
  const stamp = join(BIN, '.pictale-lock-hash')
  const hash = createHash('sha256').update(readFileSync(join(MATRIX, 'package-lock.json'))).digest('hex')
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === hash) return
  step('installing the runtimes (npm ci --prefix tests/runtimes)')
  const result = spawnSync('npm', ['ci', '--prefix', MATRIX, '--no-audit', '--no-fund', '--loglevel=error'], { stdio: 'inherit' })
  if (result.status !== 0) throw new Error('npm ci --prefix tests/runtimes failed')
  writeFileSync(stamp, hash)
}

async function waitUntilReady(server, timeoutMs = 170_000) {
  const deadline = Date.now() + timeoutMs
  let exited = false
  server.exited.then(() => (exited = true))
  while (Date.now() < deadline && !exited) {
    const health = await fetch(`${server.url}/health`).then((response) => response.json(), () => undefined)
    if (health?.status === 'ok') return
    if (health?.status === 'failed') break
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  throw new Error(`the dev server did not become ready:\n${server.output()}`)
}

function version(command, args = ['--version']) {
  const result = spawnSync(command, args, { encoding: 'utf8' })
  return /\d+(\.\d+)+/.exec(result.stdout ?? '')?.[0] ?? `(no version: ${result.error?.message ?? result.stderr})`
}

/** One runtime: a command run in the consumer project, its own process group, a time limit. */
function runRuntime({ command, args, env, cwd }) {
  return new Promise((resolve) => {
    const begun = Date.now()
    let output = ''
    const child = spawn(command, args, { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
    const kill = () => {
      try {
        process.kill(-child.pid, 'SIGKILL')
      } catch {
        // Already gone.
      }
    }
    cleanups.push(kill)
    const collect = (chunk) => (output += chunk)
    child.stdout.setEncoding('utf8').on('data', collect)
    child.stderr.setEncoding('utf8').on('data', collect)
    const timer = setTimeout(() => {
      output += `\n(timed out after ${RUNTIME_TIMEOUT_MS / 1000} s)`
      kill()
    }, RUNTIME_TIMEOUT_MS)
    const finish = (ok) => {
      clearTimeout(timer)
      if (cleanups.includes(kill)) cleanups.splice(cleanups.indexOf(kill), 1)
      resolve({ ok, output, seconds: (Date.now() - begun) / 1000 })
    }
    child.once('error', (error) => finish(((output += error.message), false)))
    child.once('close', (code) => finish(code === 0))
  })
}

function table(rows) {
  const width = Math.max('runtime'.length, ...rows.map((row) => row.name.length))
  const lines = [`${'runtime'.padEnd(width)} | result | seconds`, `${'-'.repeat(width)}-|--------|--------`]
  for (const row of rows) lines.push(`${row.name.padEnd(width)} | ${(row.ok ? 'pass' : 'FAIL').padEnd(6)} | ${row.seconds.toFixed(1).padStart(7)}`)
  return lines.join('\n')
}

async function main() {
  process.chdir(ROOT)
  ensureNodeModules()
  if (spawnSync(process.execPath, ['scripts/server-venv.mjs'], { stdio: 'inherit' }).status !== 0) throw new Error('server venv failed')
  installRuntimes()
  let chromium
  let chromiumError
  try {
    chromium = ensureChromium()
  } catch (error) {
    chromiumError = error.message
  }

  step('building, packing and installing the SDK into a fresh project')
  const dir = mkdtempSync(join(tmpdir(), 'pictale-runtimes-'))
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
  const consumer = packedConsumer(ROOT, dir)
  for (const file of HOST_FILES) copyFileSync(join(MATRIX, file), join(consumer, file))

  const { tsImport } = await import('tsx/esm/api')
  const { startLocalServer, freePort } = await tsImport('./lib/local-server.ts', import.meta.url)
  const proxyPort = await freePort()
  const page = await startStaticServer({ nodeModules: join(consumer, 'node_modules'), apiTarget: `http://127.0.0.1:${proxyPort}` })
  cleanups.push(() => page.close())

  step('starting the dev server')
  // The page's origin is the only one allowed: cross-origin calls from it work, others would not.
  const server = await startLocalServer({ apiKeys: [API_KEY], env: { PICTALE_CORS_ORIGINS: page.origin } })
  cleanups.push(() => server.stop())
  await waitUntilReady(server)
  const proxy = await startProxyExample({ root: ROOT, port: proxyPort, baseURL: server.url, apiKey: API_KEY })
  cleanups.push(() => proxy.stop())

  const env = {
    ...process.env,
    PICTALE_BASE_URL: server.url,
    PICTALE_API_KEY: API_KEY,
    NO_COLOR: '1',
    DO_NOT_TRACK: '1',
    DENO_NO_UPDATE_CHECK: '1',
    DENO_DIR: join(dir, 'deno'),
    // host-ai.mjs loads the `ai` package pinned here (7 needs Node 22 or later).
    PICTALE_MATRIX_PACKAGE: join(MATRIX, 'package.json'),
  }
  const node = { 20: process.execPath, 22: join(BIN, 'node22', 'bin', 'node'), 24: join(BIN, 'node24', 'bin', 'node') }
  const bun = join(BIN, '.bin', 'bun')
  const deno = join(BIN, '.bin', 'deno')
  const pageURL = (query) => `${page.origin}/?${new URLSearchParams(query)}`
  const browser = (name, query) => ({
    name: ['chromium', chromium && version(chromium), name].filter(Boolean).join(' '),
    error: chromiumError,
    command: process.execPath,
    args: [join(MATRIX, 'browser', 'chromium.mjs'), chromium, pageURL(query)],
  })
  const runtimes = [
    ...Object.values(node).flatMap((binary) => [
      { name: `node ${version(binary)} esm`, command: binary, args: ['host-esm.mjs'] },
      { name: `node ${version(binary)} cjs`, command: binary, args: ['host-cjs.cjs'] },
    ]),
    ...[22, 24].map((major) => ({ name: `node ${version(node[major])} + ai 7 (pictale/ai)`, command: node[major], args: ['host-ai.mjs'] })),
    { name: `bun ${version(bun)}`, command: bun, args: ['host-esm.mjs'] },
    { name: `deno ${version(deno)}`, command: deno, args: ['run', '--no-lock', '--allow-net=127.0.0.1', '--allow-env', '--allow-read', 'host-esm.mjs'] },
    browser('cross-origin', { baseURL: server.url, apiKey: API_KEY }),
    // Runs are read back through the proxy too: the page holds no key at all.
    browser('via proxy', { baseURL: '/api/pictale' }),
  ]

  const rows = []
  for (const runtime of runtimes) {
    step(runtime.name)
    const row = runtime.error
      ? { ok: false, output: runtime.error, seconds: 0 }
      : await runRuntime({ ...runtime, env, cwd: consumer })
    rows.push({ name: runtime.name, ...row })
    if (!row.ok) console.log(`✗ ${runtime.name} failed:\n${row.output.trimEnd().replace(/^/gm, '    ')}`)
  }
  if (rows.some((row) => !row.ok)) {
    console.log(`\nproxy example output:\n${proxy.output().trimEnd().replace(/^/gm, '    ')}`)
    console.log(`\ndev server output (last lines):\n${server.output().split('\n').slice(-30).join('\n').replace(/^/gm, '    ')}`)
  }
  console.log(`\n${table(rows)}\n`)
  const failed = rows.filter((row) => !row.ok).map((row) => row.name)
  console.log(failed.length ? `FAILED: ${failed.join(', ')}` : `All ${rows.length} runtimes passed in ${Math.round((Date.now() - started) / 1000)} s.`)
  return failed.length ? 1 : 0
}

async function cleanUp() {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
}
for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]]) {
  process.once(signal, () => cleanUp().finally(() => process.exit(code)))
}

let exitCode = 1
try {
  exitCode = await main()
} catch (error) {
  console.error(`runtime matrix: ${error instanceof Error ? error.message : error}`)
} finally {
  await cleanUp()
}
process.exit(exitCode)
