// `npm test`: installs what is missing (node modules, the server's Python venv), then runs
// every suite — pytest, vitest (unit + integration against a real dev-profile server), the
// package checks and the runtime matrix — and fails if any of them failed.
import { spawnSync } from 'node:child_process'
import { ensureNodeModules } from './ensure-node-modules.mjs'

function run(label, command, args) {
  console.log(`\n› ${label}: ${[command, ...args].join(' ')}`)
  const started = Date.now()
  const result = spawnSync(command, args, { stdio: 'inherit' })
  return { ok: result.status === 0, seconds: Math.round((Date.now() - started) / 1000) }
}

ensureNodeModules()
if (!run('server venv', 'node', ['scripts/server-venv.mjs']).ok) process.exit(1)

const results = {
  pytest: run('pytest', 'server/.venv/bin/python', ['-m', 'pytest', 'server/tests', '-q', '-p', 'no:cacheprovider']),
  vitest: run('vitest (unit + integration)', 'npx', ['vitest', 'run']),
  // The packed package as users get it: every entry's types resolve in every TypeScript
  // module mode (node10, node16 CJS and ESM, bundler), its package.json is publishable, and a
  // fresh project type-checks every entry with TypeScript 5 and 7 and no @types/node.
  package: run('package (build, attw, publint, consumer types)', 'sh', [
    '-c',
    'npx tsup >/dev/null && npx attw --pack . && npx publint && node scripts/check-consumer-types.mjs',
  ]),
  // The packed package installed into a fresh project and run on every runtime it supports
  // (Node 20/22/24 as ESM and CommonJS, Bun, Deno, Chromium) against a local dev server.
  runtimes: run('runtimes (Node 20/22/24, Bun, Deno, Chromium)', 'node', ['scripts/runtime-matrix.mjs']),
}
console.log('')
for (const [name, { ok, seconds }] of Object.entries(results)) console.log(`${ok ? '✓' : '✗'} ${name} (${seconds} s)`)
const failed = Object.entries(results).filter(([, { ok }]) => !ok).map(([name]) => name)
console.log(failed.length ? `FAILED: ${failed.join(', ')}` : 'All suites passed.')
process.exit(failed.length ? 1 : 0)
