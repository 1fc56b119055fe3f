// `npm test`: installs what is missing (node modules, the server's Python venv), then runs
// every suite — vitest (unit + integration against a real dev-profile server) and pytest —
// and fails if any of them failed.
import { spawnSync } from 'node:child_process'
import { ensureNodeModules } from './ensure-node-modules.mjs'

function run(label, command, args, options = {}) {
  console.log(`\n› ${label}: ${[command, ...args].join(' ')}`)
  const result = spawnSync(command, args, { stdio: 'inherit', ...options })
  return result.status === 0
}

ensureNodeModules()
if (!run('server venv', 'node', ['scripts/server-venv.mjs'])) process.exit(1)

const results = {
  pytest: run('pytest', 'server/.venv/bin/python', ['-m', 'pytest', 'server/tests', '-q', '-p', 'no:cacheprovider']),
  vitest: run('vitest', 'npx', ['vitest', 'run']),
}
const failed = Object.entries(results).filter(([, ok]) => !ok).map(([name]) => name)
console.log(failed.length ? `\nFAILED: ${failed.join(', ')}` : '\nAll suites passed.')
process.exit(failed.length ? 1 : 0)
