// `npx pictale eval` end to end against the live dev server: a small slice of the prompt set
// under bundled and file presets, then its HTML report opened in headless Chromium. The dev
// models' text is gibberish, so the numbers mean nothing here; the runs, files and charts are real.
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { chromium } from 'playwright-core'
import { beforeAll, describe, expect, it } from 'vitest'
import type { EvalReport } from '../../src/eval/report'
import { liveServer } from './support'

const PRESETS = ['plain', 'dry+xtc', 'banned-phrases', 'warm']
const CHART_COUNT = 12

function pictale(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const { url, key } = liveServer()
  return new Promise((resolve) => {
    const child = spawn('npx', ['tsx', 'src/cli/index.ts', ...args], {
      env: { ...process.env, PICTALE_BASE_URL: url, PICTALE_API_KEY: key },
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk) => (stdout += chunk))
    child.stderr.on('data', (chunk) => (stderr += chunk))
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

const CHROMIUM = '/usr/bin/chromium'
const ENSURE_CHROMIUM = new URL('../../scripts/lib/ensure-chromium.mjs', import.meta.url)

/** Debian's Chromium, installed by the project's helper when it is missing. */
async function chromiumPath(): Promise<string> {
  if (existsSync(CHROMIUM) || !existsSync(ENSURE_CHROMIUM)) return CHROMIUM
  // A URL specifier: the helper is plain JavaScript without type declarations.
  const { ensureChromium } = (await import(ENSURE_CHROMIUM.href)) as { ensureChromium(): string }
  return ensureChromium()
}

describe('pictale eval', () => {
  const out = mkdtempSync(join(tmpdir(), 'pictale-eval-'))
  let run: Awaited<ReturnType<typeof pictale>>

  beforeAll(async () => {
    const presetsFile = join(out, 'presets.json')
    writeFileSync(presetsFile, JSON.stringify({ warm: { temperature: 1.1, minP: 0.1 } }))
    run = await pictale([
      'eval', '--limit', '2', '--presets', PRESETS.join(','), '--presets-file', presetsFile,
      '--max-tokens', '12', '--concurrency', '4', '--out', out,
    ])
  }, 90_000)

  it('runs every prompt under every preset and prints the summary table', () => {
    expect(run.code, run.stderr).toBe(0)
    expect(run.stderr).toMatch(/2 prompts × 4 presets = 8 runs/)
    expect(run.stderr.match(/^pictale: eval \d\/8: /gm)).toHaveLength(8)
    const header = run.stdout.split('\n')[0]!
    for (const preset of PRESETS) expect(header).toContain(preset)
    expect(run.stdout).toMatch(/Slop index \(stock phrases \/ 1,000 words\)( +\d+\.\d){4}$/m)
    expect(run.stdout).toContain(`report: ${join(out, 'report.html')}`)
  })

  it('writes report.json: settings, a summary per preset, every output with its metrics', () => {
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as EvalReport
    expect(report.format).toBe('pictale-eval/1')
    expect(report.server.profile).toBe('dev')
    expect(report.settings.prompts).toEqual(['en-bedtime-cottage', 'pt-fabula-park'])
    expect(Object.keys(report.settings.presets)).toEqual(PRESETS)
    expect(report.settings.presets.warm).toEqual({ temperature: 1.1, minP: 0.1 })
    expect(report.summary.map((summary) => summary.preset)).toEqual(PRESETS)
    for (const summary of report.summary) {
      expect(summary).toMatchObject({ runs: 2, completed: 2, failed: 0 })
      expect(summary.tokensPerSecondMedian).toBeGreaterThan(0)
    }
    expect(report.outputs).toHaveLength(8)
    for (const output of report.outputs) {
      expect(output.status).toBe('done')
      expect(output.result!.story.usage.outputTokens).toBeLessThanOrEqual(12)
      expect(output.metrics).toMatchObject({
        slop: { hits: expect.any(Number) },
        length: { targetWords: output.targetWords },
        language: { expected: output.language, detected: expect.stringMatching(/^[a-z]{3}$/) },
        templateLeaks: { count: expect.any(Number) },
        grounding: { nouns: expect.any(Array) },
        speed: { ttftMs: expect.any(Number), tokensPerSecond: expect.any(Number) },
      })
    }
    // One seed per prompt under every preset: the same picture gets the same description.
    const descriptions = report.outputs.filter((output) => output.promptId === 'en-bedtime-cottage').map((output) => output.result!.description.text)
    expect(new Set(descriptions).size).toBe(1)
  })

  it('writes report.html, which renders its charts in Chromium without any network', async () => {
    const htmlPath = join(out, 'report.html')
    expect(existsSync(htmlPath)).toBe(true)
    const browser = await chromium.launch({ executablePath: await chromiumPath(), args: process.getuid?.() === 0 ? ['--no-sandbox'] : [] })
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
      const problems: string[] = []
      page.on('console', (message) => message.type() === 'error' && problems.push(`console: ${message.text()}`))
      page.on('pageerror', (error) => problems.push(`page error: ${error.message}`))
      page.on('request', (request) => !/^(file|data):/.test(request.url()) && problems.push(`request: ${request.url()}`))
      await page.goto(pathToFileURL(htmlPath).href)

      const charts = await page.locator('svg.chart').all()
      expect(charts).toHaveLength(CHART_COUNT)
      for (const chart of charts) {
        const box = await chart.boundingBox()
        expect(box!.width).toBeGreaterThan(100)
        expect(box!.height).toBeGreaterThan(100)
      }
      // Every preset has a bar in the speed charts (dev timings are real).
      const speedBars = await page.locator('figure', { hasText: 'Decode speed' }).locator('rect').all()
      expect(speedBars).toHaveLength(PRESETS.length)
      for (const bar of speedBars) expect((await bar.boundingBox())!.height).toBeGreaterThan(0)
      expect(await page.locator('table.summary tbody tr').count()).toBeGreaterThan(15)
      const pictureWidths = await page.locator('section.prompt img').evaluateAll((images) => images.map((image) => (image as HTMLImageElement).naturalWidth))
      expect(pictureWidths).toEqual([480, 480])

      const screenshot = join(out, 'report.png')
      await page.screenshot({ path: screenshot, fullPage: true })
      console.log(`eval report screenshot: ${screenshot}`)
      expect(problems).toEqual([])
    } finally {
      await browser.close()
    }
  })
})
