// `npm run demo`: installs what is missing (node modules, the server's Python venv), then runs
// the demo itself (scripts/lib/demo.ts) through tsx. Plain JavaScript so it can run before
// the node modules it needs are installed.
import { spawnSync } from 'node:child_process'
import { ensureNodeModules } from './ensure-node-modules.mjs'

const remote = Boolean(process.env.PICTALE_BASE_URL)
const plan = remote
  ? `It sends examples/assets/sample.png to ${process.env.PICTALE_BASE_URL}: a vision model describes\nthe picture, then a writer model writes a story from that description.`
  : 'It starts a local pictale server and sends it examples/assets/sample.png: a vision model describes\nthe picture, then a writer model writes a story from that description. Then it stops the server.'
console.log(`pictale demo: a picture goes in, a description and a story come out.\n${plan}\n`)
ensureNodeModules()
if (!remote) {
  console.log('› Python environment for the local server (server/.venv; the first run installs CPU torch and friends, ~2 GB, a few minutes)')
  const venv = spawnSync(process.execPath, ['scripts/server-venv.mjs'], { stdio: 'inherit' })
  if (venv.status !== 0) process.exit(venv.status ?? 1)
}
const { tsImport } = await import('tsx/esm/api')
await tsImport('./lib/demo.ts', import.meta.url)
