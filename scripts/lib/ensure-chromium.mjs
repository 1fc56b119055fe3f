// Chromium for the browser runs of the runtime matrix: Debian's `chromium` package. When it is
// missing it is installed with apt-get (as root, or through sudo when that needs no password);
// when that is impossible the suite fails with what to do, rather than skipping the browser.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'

export const CHROMIUM = '/usr/bin/chromium'
const INSTALL = ['apt-get', 'install', '-y', '--no-install-recommends', 'chromium']

/** Returns the path of the Chromium binary, installing the package first if needed; throws if it cannot. */
export function ensureChromium() {
  if (existsSync(CHROMIUM)) return CHROMIUM
  const asRoot = process.getuid?.() === 0
  const hasSudo = !asRoot && spawnSync('sudo', ['--version'], { stdio: 'ignore' }).status === 0
  if (!asRoot && !hasSudo) throw missing('not running as root, and there is no sudo')
  if (spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).status !== 0) throw missing('apt-get is not available')
  // sudo drops the environment, so DEBIAN_FRONTEND goes through `env`; -n: never ask for a password.
  const prefix = asRoot ? [] : ['sudo', '-n', 'env', 'DEBIAN_FRONTEND=noninteractive']
  const apt = (args) => {
    const [command, ...rest] = [...prefix, ...args]
    console.log(`› ${[command, ...rest].join(' ')}`)
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
    return spawnSync(command, rest, { stdio: ['ignore', 'inherit', 'inherit'], env }).status === 0
  }
  // A fresh machine may have no package lists yet: update once and try again.
  const installed = apt(INSTALL) || (apt(['apt-get', 'update']) && apt(INSTALL))
  if (!installed || !existsSync(CHROMIUM)) throw missing(`\`${INSTALL.join(' ')}\` failed`)
  return CHROMIUM
}

function missing(why) {
  return new Error(
    `Chromium is needed at ${CHROMIUM} for the browser runs and could not be installed (${why}). ` +
      `Install Debian's chromium package (${INSTALL.join(' ')}) and run the suite again.`,
  )
}
