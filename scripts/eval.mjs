// `npm run eval [-- eval options]`: `pictale eval` from the sources. With PICTALE_BASE_URL or --url
// it measures that deployment; otherwise it starts a local dev-profile server first and stops it
// after (scripts/lib/eval-in-repo.ts). Plain JavaScript so it can install what it needs first.
import { spawnSync } from 'node:child_process'
import { ensureNodeModules } from './ensure-node-modules.mjs'

const args = process.argv.slice(2)
const remote = Boolean(process.env.PICTALE_BASE_URL) || args.some((arg) => arg === '--url' || arg.startsWith('--url='))
ensureNodeModules()
if (!remote) {
  const venv = spawnSync(process.execPath, ['scripts/server-venv.mjs'], { stdio: 'inherit' })
  if (venv.status !== 0) process.exit(venv.status ?? 1)
}
const { tsImport } = await import('tsx/esm/api')
const { evalInRepo } = await tsImport('./lib/eval-in-repo.ts', import.meta.url)
process.exitCode = await evalInRepo(args, { startServer: !remote })
