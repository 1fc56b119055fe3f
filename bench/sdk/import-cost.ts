// What `import('pictale')` costs a fresh Node process (a serverless or edge cold start), timed
// inside that process around the import alone, against the same entry of a baseline commit
// built in the same run. Rounds alternate the two so machine load hits both alike.
import { execFileSync, execSync } from 'node:child_process'
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'

const ROUNDS = 15

/** Milliseconds one fresh `node` takes to import `file`, timed by that process itself. */
function importMs(file: string): number {
  const url = pathToFileURL(file).href
  const script = `const t = performance.now(); await import(${JSON.stringify(url)}); console.log(performance.now() - t)`
  return Number(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' }))
}

/** Builds `ref`'s package in a temporary folder (sharing this checkout's node_modules). */
function buildAt(ref: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'pictale-import-'))
  execSync(`git archive ${ref} src tsup.config.ts tsconfig.json package.json | tar -x -C ${dir}`)
  symlinkSync(resolve('node_modules'), join(dir, 'node_modules'))
  execSync('npx tsup', { cwd: dir, stdio: 'ignore' })
  return dir
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!

export interface ImportCost {
  ref: string
  currentMs: number
  baselineMs: number
}

/** Median import time of the default entry, this checkout against `baselineRef`. */
export function importCost(baselineRef: string): ImportCost {
  execSync('npx tsup', { stdio: 'ignore' })
  const baseline = buildAt(baselineRef)
  try {
    const current: number[] = []
    const before: number[] = []
    importMs('dist/index.js') // the first process of a run also warms the disk cache
    importMs(join(baseline, 'dist/index.js'))
    for (let round = 0; round < ROUNDS; round++) {
      current.push(importMs('dist/index.js'))
      before.push(importMs(join(baseline, 'dist/index.js')))
    }
    return { ref: baselineRef, currentMs: median(current), baselineMs: median(before) }
  } finally {
    rmSync(baseline, { recursive: true, force: true })
  }
}
