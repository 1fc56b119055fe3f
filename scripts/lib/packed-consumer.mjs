// The SDK as a new user gets it: build it, `npm pack` the repository, and install the tarball
// into a fresh project, so tests import `pictale` through its package.json exports, with only
// the files the package ships and the dependency versions npm resolves for a user.
import { spawnSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

/**
 * @param root the repository
 * @param dir an empty temporary folder; the tarball and the project go in it
 * @returns the consumer project's folder
 */
export function packedConsumer(root, dir) {
  quiet('build (tsup)', 'npx', ['tsup'], root)
  const [{ filename }] = JSON.parse(quiet('npm pack', 'npm', ['pack', '--json', '--pack-destination', dir], root))
  const project = join(dir, 'consumer')
  mkdirSync(project)
  writeFileSync(join(project, 'package.json'), `${JSON.stringify({ name: 'pictale-consumer', private: true }, null, 2)}\n`)
  quiet('npm install (the tarball)', 'npm', ['install', join(dir, filename), '--no-audit', '--no-fund', '--loglevel=error'], project)
  return project
}

/** Runs a command with its output kept; returns stdout, or throws with all of it. */
function quiet(label, command, args, cwd) {
  const result = spawnSync(command, args, { cwd, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })
  if (result.status !== 0) {
    throw new Error(`${label} failed (${command} ${args.join(' ')}):\n${result.error?.message ?? ''}${result.stdout}${result.stderr}`)
  }
  return result.stdout
}
