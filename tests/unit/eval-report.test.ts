// From pipeline outcomes to the report: scores per story, summaries per preset, the terminal
// table, and the self-contained HTML page (rendered in Chromium by tests/integration/eval.test.ts).
import { describe, expect, it } from 'vitest'
import { buildReport } from '../../src/eval/build-report'
import { renderHtmlReport } from '../../src/eval/html/render-report'
import { BUNDLED_PRESETS, type Preset } from '../../src/eval/presets'
import { PROMPTS, type EvalPrompt } from '../../src/eval/prompt-set'
import type { EvalJob, JobOutcome } from '../../src/eval/run-jobs'
import { renderSummaryTable } from '../../src/eval/summary-table'
import type { Health, PipelineResult, StageResult } from '../../src/index'

const HEALTH: Health = {
  status: 'ok',
  profile: 'reference',
  models: { vision: { id: 'vision-model', loaded: true }, writer: { id: 'writer-model', loaded: true } },
  version: '1',
}
const DESCRIPTION = 'Setting: a cottage with a red roof on green grass.\nNotable objects: a tree, a blue ball, the sun.'
const preset = (name: string): Preset => ({ name, sampling: BUNDLED_PRESETS[name]!, source: 'bundled' })
const prompt = (id: string): EvalPrompt => PROMPTS.find((entry) => entry.id === id)!

function stage(text: string, timings: Partial<StageResult['timings']> = {}, finishReason: StageResult['finishReason'] = 'stop'): StageResult {
  return {
    text,
    finishReason,
    model: 'model',
    usage: { inputTokens: 100, outputTokens: 50 },
    timings: { queuedMs: 10, firstTokenMs: 200, totalMs: 2000, tokensPerSecond: 40, ...timings },
  }
}
const done = (story: StageResult): JobOutcome => ({
  status: 'done',
  wallMs: 3000,
  result: { id: 'run_1', description: stage(DESCRIPTION), story } satisfies PipelineResult,
})
const job = (promptId: string, presetName: string): EvalJob => ({
  prompt: prompt(promptId),
  preset: preset(presetName),
  image: '/pictures/x.png',
  seed: 1,
  maxTokens: { story: 375 },
})

function fixture() {
  const jobs = [job('en-bedtime-cottage', 'plain'), job('pt-fabula-park', 'plain'), job('en-bedtime-cottage', 'dry'), job('pt-fabula-park', 'dry')]
  const outcomes: JobOutcome[] = [
    done(stage('The cottage slept under the sun. A testament to calm, a ball lay on the grass. <script>alert(1)</script>', { firstTokenMs: 100, tokensPerSecond: 30 })),
    { status: 'refused', message: 'The request was refused.', wallMs: 100 },
    done(stage("I'm sorry, but I can't write that.", { firstTokenMs: 300, tokensPerSecond: 50 }, 'length')),
    { status: 'failed', code: 'internal', message: 'boom', wallMs: 100 },
  ]
  return buildReport(jobs, outcomes, { baseURL: 'https://user:secret@pictale.example', health: HEALTH, seed: 1, concurrency: 4, maxTokens: null, now: new Date('2026-01-02T03:04:05Z') })
}

describe('the report', () => {
  it('scores each story and records refusals and failures with their errors', () => {
    const report = fixture()
    expect(report.format).toBe('pictale-eval/1')
    expect(report.server).toEqual({ baseURL: 'https://pictale.example', profile: 'reference', models: { vision: 'vision-model', writer: 'writer-model' } })
    expect(report.settings).toMatchObject({ prompts: ['en-bedtime-cottage', 'pt-fabula-park'], seed: 1, concurrency: 4, maxTokens: null })
    expect(Object.keys(report.settings.presets)).toEqual(['plain', 'dry'])
    expect(report.outputs.map((output) => output.status)).toEqual(['done', 'refused', 'done', 'failed'])
    expect(report.outputs[0]!.metrics!.slop.hits).toBe(1)
    expect(report.outputs[0]!.metrics!.grounding.used).toEqual(expect.arrayContaining(['cottage', 'sun', 'ball', 'grass']))
    expect(report.outputs[1]!.error).toEqual({ code: 'content_refused', message: 'The request was refused.' })
    expect(report.outputs[3]!.error).toEqual({ code: 'internal', message: 'boom' })
  })

  it('summarises each preset: counts, means over stories, shares, medians', () => {
    const [plain, dry] = fixture().summary
    expect(plain).toMatchObject({ preset: 'plain', runs: 2, completed: 1, refused: 1, failed: 0, slopHits: 1, refusalRate: 0.5 })
    expect(plain!.ttftMsMedian).toBe(100)
    expect(plain!.tokensPerSecondMedian).toBe(30)
    expect(plain!.truncatedRate).toBe(0)
    expect(plain!.languageAdherence).toBe(1)
    // A model-written refusal counts as a refusal; the failed run counts nowhere but `failed`.
    expect(dry).toMatchObject({ preset: 'dry', runs: 2, completed: 1, refused: 0, failed: 1, refusalRate: 1, truncatedRate: 1 })
  })

  it('prints a table: a column per preset, a row per metric', () => {
    const table = renderSummaryTable(fixture()).split('\n')
    expect(table[0]).toMatch(/^\s+plain\s+dry$/)
    expect(table.find((line) => line.includes('Refusals'))).toMatch(/↓ Refusals \(benign prompts\)\s+50%\s+100%$/)
    expect(table.find((line) => line.includes('Time to first token'))).toMatch(/100 ms\s+300 ms$/)
    expect(table.find((line) => line.includes('Grounding'))).toMatch(/%\s+0%$/)
  })

  it('renders one self-contained HTML page: charts as inline SVG, no script, no network, text escaped', () => {
    const html = renderHtmlReport(fixture(), { pictures: { 'cottage.png': 'data:image/png;base64,AAAA' }, pictureOf: { 'en-bedtime-cottage': 'cottage.png' } })
    expect(html.match(/<svg class="chart"/g)).toHaveLength(12)
    expect(html).not.toMatch(/<script|<link|@import|url\(|src="http|href="http/i)
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;')
    expect(html).toContain('<img src="data:image/png;base64,AAAA"')
    expect(html).toContain("default-src 'none'")
    expect(html).not.toContain('secret')
  })
})
