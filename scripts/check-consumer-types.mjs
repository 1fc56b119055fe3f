// Type-checks the packed package as a user's project would, in every module mode of
// TypeScript 5 (the repository's) and 7 (tests/consumer-types' pin), with `types: []`, so
// no entry may lean on @types/node being present. Needs `dist/` (npx tsup) first.
// Library checking stays on, so pictale's own .d.ts files are checked; errors inside other
// packages' types (zod's locales under node10, msw's under node16 CJS) are theirs, and are
// counted but do not fail the check.
import { execFileSync } from 'node:child_process'
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

const HERE = resolve('tests/consumer-types')
const TS5 = resolve('node_modules/typescript/bin/tsc')

/** [label, compiler, tsconfig options, file extension]. TypeScript 7 removed node10 resolution. */
const MODES = [
  ['node10', { module: 'commonjs', moduleResolution: 'node10' }, '.ts'],
  ['node16 (CJS)', { module: 'node16', moduleResolution: 'node16' }, '.cts'],
  ['node16 (ESM)', { module: 'node16', moduleResolution: 'node16' }, '.mts'],
  ['bundler', { module: 'esnext', moduleResolution: 'bundler' }, '.ts'],
]

const project = mkdtempSync(join(tmpdir(), 'pictale-consumer-'))
const run = (command, args, cwd = project) => execFileSync(command, args, { cwd, encoding: 'utf8', stdio: 'pipe' })
let failed = 0
try {
  const tarball = join(project, run('npm', ['pack', '--silent', '--pack-destination', project], resolve('.')).trim().split('\n').at(-1))
  copyFileSync(join(HERE, 'package.json'), join(project, 'package.json'))
  copyFileSync(join(HERE, 'package-lock.json'), join(project, 'package-lock.json'))
  run('npm', ['ci', '--silent', '--no-audit', '--no-fund'])
  run('npm', ['install', '--silent', '--no-save', '--no-audit', '--no-fund', tarball])
  const compilers = [
    ['TypeScript 5', TS5],
    ['TypeScript 7', join(project, 'node_modules/typescript/bin/tsc')],
  ]
  for (const [compiler, tsc] of compilers) {
    const version = run(process.execPath, [tsc, '--version']).trim()
    for (const [mode, options, extension] of MODES) {
      if (compiler === 'TypeScript 7' && mode === 'node10') continue
      const file = `consumer${extension}`
      copyFileSync(join(HERE, 'consumer.ts'), join(project, file))
      const config = { compilerOptions: { ...options, strict: true, noEmit: true, skipLibCheck: false, types: [], target: 'es2022', lib: ['es2022', 'dom'] }, files: [file] }
      writeFileSync(join(project, 'tsconfig.json'), JSON.stringify(config, null, 2))
      try {
        run(process.execPath, [tsc, '-p', 'tsconfig.json'])
        console.log(`✓ ${version}, ${mode}`)
      } catch (error) {
        const lines = `${error.stdout}${error.stderr}`.split('\n').filter((line) => /error TS\d+/.test(line))
        const ours = lines.filter((line) => !line.startsWith('node_modules/') || line.startsWith('node_modules/pictale/'))
        if (lines.length === 0 || ours.length > 0) {
          failed += 1
          console.log(`✗ ${version}, ${mode}\n${(ours.length > 0 ? ours.join('\n') : `${error.stdout}${error.stderr}`)}`)
        } else {
          const owners = [...new Set(lines.map((line) => line.split('/')[1]))].join(', ')
          console.log(`✓ ${version}, ${mode} (${lines.length} errors inside other packages' types: ${owners})`)
        }
      } finally {
        rmSync(join(project, file))
      }
    }
  }
} finally {
  rmSync(project, { recursive: true, force: true })
}
if (failed > 0) {
  console.log(`${failed} consumer type check(s) failed`)
  process.exit(1)
}
