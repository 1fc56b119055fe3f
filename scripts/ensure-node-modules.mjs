// Installs the project's node modules with `npm ci` when they are missing or older than
// package-lock.json, so `npm test` and `npm run demo` work on a fresh clone.
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs'

const stampFile = 'node_modules/.pictale-lock-hash'
// npm writes this after every install; newer than the lock file means installed from it.
const npmInstallRecord = 'node_modules/.package-lock.json'

export function ensureNodeModules() {
  const lockHash = createHash('sha256').update(readFileSync('package-lock.json')).digest('hex')
  if (existsSync(stampFile) && readFileSync(stampFile, 'utf8') === lockHash) return
  if (existsSync(npmInstallRecord) && statSync(npmInstallRecord).mtimeMs >= statSync('package-lock.json').mtimeMs) {
    writeFileSync(stampFile, lockHash) // a plain `npm install` just ran
    return
  }
  console.log('› installing node modules (npm ci)…')
  const result = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { stdio: 'inherit' })
  if (result.status !== 0) {
    console.error('npm ci failed')
    process.exit(result.status ?? 1)
  }
  writeFileSync(stampFile, lockHash)
}

if (import.meta.url === `file://${process.argv[1]}`) ensureNodeModules()
