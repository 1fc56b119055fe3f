// Creates the Python server's virtual environment at server/.venv, or does nothing when it is
// up to date. "Up to date" means: built from exactly the current lock files (a hash of them
// is stamped into the venv). When a lock changes the venv is rebuilt from scratch, so what is
// installed is always exactly what the locks say.
//
//   node scripts/server-venv.mjs         runtime + test locks (what `npm test` and `npm run serve` use)
//   node scripts/server-venv.mjs --gpu   also the GPU extras (CUDA torch, bitsandbytes, accelerate)
//
// torch==2.13.0 is installed first and held there by server/constraints.txt for every later
// step, so no lock can pull in another (multi-GB) torch.
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, readFileSync, rmSync, writeFileSync, readdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)))
const SERVER = join(ROOT, 'server')
const VENV = join(SERVER, '.venv')
const VENV_PYTHON = join(VENV, 'bin', 'python')
const STAMP = join(VENV, '.pictale-lock-hash')
const TORCH = 'torch==2.13.0'
const RECIPE_VERSION = '2' // bump when the steps below change

const gpu = process.argv.includes('--gpu')
const locks = ['requirements.lock', 'requirements-test.lock', ...(gpu ? ['requirements-gpu.lock'] : [])]
const inputs = [...locks, 'constraints.txt']

function log(message) {
  console.log(`server-venv: ${message}`)
}

function fail(message) {
  console.error(`server-venv: ${message}`)
  process.exit(1)
}

function lockHash() {
  const hash = createHash('sha256').update(`recipe ${RECIPE_VERSION}\n`)
  for (const name of inputs) {
    hash.update(`${name}\n`).update(readFileSync(join(SERVER, name)))
  }
  return hash.digest('hex')
}

function run(command, args) {
  const result = spawnSync(command, args, { stdio: 'inherit', cwd: SERVER })
  if (result.error) fail(`${command}: ${result.error.message}`)
  if (result.status !== 0) fail(`failed: ${command} ${args.join(' ')}`)
}

function findPython() {
  const candidates = [process.env.PICTALE_PYTHON, 'python3.11', 'python3.12', 'python3.13', 'python3'].filter(Boolean)
  for (const candidate of candidates) {
    const probe = spawnSync(candidate, ['-c', 'import sys; print(sys.version_info >= (3, 11))'], { encoding: 'utf8' })
    if (probe.status === 0 && probe.stdout.trim() === 'True') return candidate
  }
  fail('needs Python 3.11 or newer (set PICTALE_PYTHON to its path)')
}

function sitePackages() {
  const lib = join(VENV, 'lib')
  const python = readdirSync(lib).find((name) => name.startsWith('python'))
  return join(lib, python, 'site-packages')
}

const wanted = lockHash()
if (existsSync(STAMP) && readFileSync(STAMP, 'utf8').trim() === wanted) {
  log('up to date')
  process.exit(0)
}

const started = Date.now()
if (existsSync(VENV)) {
  log('lock files changed: rebuilding server/.venv')
  rmSync(VENV, { recursive: true, force: true })
}
const python = findPython()
log(`creating server/.venv with ${python}`)
run(python, ['-m', 'venv', VENV])
const pip = [VENV_PYTHON, '-m', 'pip', 'install', '--disable-pip-version-check', '--progress-bar', 'off']
log(`installing ${TORCH}`)
// Without its dependencies: the locks below pin those, so nothing is installed twice.
run(pip[0], [...pip.slice(1), '--no-deps', TORCH, '-c', 'constraints.txt'])
log(`installing ${locks.join(', ')}`)
run(pip[0], [...pip.slice(1), ...locks.flatMap((lock) => ['-r', lock]), '-c', 'constraints.txt'])
// The package itself, from the working tree (like an editable install, without a build step).
writeFileSync(join(sitePackages(), 'pictale_server.pth'), `${SERVER}\n`)
run(VENV_PYTHON, ['-m', 'pip', 'check', '--disable-pip-version-check'])
run(VENV_PYTHON, ['-c', 'import pictale_server, fastapi, torch, transformers; print("server-venv: imports ok, torch", torch.__version__)'])
writeFileSync(STAMP, `${wanted}\n`)
log(`ready in ${Math.round((Date.now() - started) / 1000)} s`)
