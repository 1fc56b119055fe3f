// `pictale eval`: runs the bundled prompt set under each sampler preset, scores the stories and
// writes report.json and report.html. Loaded only when that command runs: it brings the
// language and noun libraries that the other commands do not need.
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import type { NodePictaleClient } from '../node/index'
import { buildReport } from '../eval/build-report'
import { EvalUsageError } from '../eval/eval-usage-error'
import { renderHtmlReport } from '../eval/html/render-report'
import { readPresetsFile, selectPresets } from '../eval/presets'
import { PROMPTS, picturesFolder, selectPrompts, storyMaxTokens } from '../eval/prompt-set'
import { FatalJobError, runJobs, type EvalJob, type JobOutcome } from '../eval/run-jobs'
import { renderSummaryTable } from '../eval/summary-table'
import type { EvalSettings } from './eval-options'
import { EXIT, describeFailure } from './exit-codes'
import { ProgressBar } from './progress-bar'
import type { CliIO } from './run-cli'

export interface EvalCommandContext {
  client: NodePictaleClient
  baseURL: string
  io: CliIO
  /** Print the whole report as JSON on stdout instead of the table. */
  json: boolean
}

export async function runEvalCommand(settings: EvalSettings, { client, baseURL, io, json }: EvalCommandContext): Promise<number> {
  let jobs: EvalJob[]
  try {
    jobs = await planJobs(settings)
  } catch (error) {
    if (!(error instanceof EvalUsageError)) throw error
    io.stderr.write(`pictale: ${error.message}\n`)
    return EXIT.usage
  }

  const health = await client.health()
  if (health.status === 'failed') {
    io.stderr.write(`pictale: the server's models failed to load (${health.failure?.reason ?? 'unknown reason'}): ${health.failure?.message ?? ''}\n`)
    return EXIT.unavailable
  }
  const presetCount = new Set(jobs.map((job) => job.preset.name)).size
  const promptCount = new Set(jobs.map((job) => job.prompt.id)).size
  io.stderr.write(
    `pictale: eval: ${promptCount} prompts × ${presetCount} presets = ${jobs.length} runs on ${baseURL} ` +
      `(profile ${health.profile}${health.status === 'loading' ? ', models still loading' : ''}), ${settings.concurrency} at a time\n`,
  )

  const interrupt = new AbortController()
  io.onInterrupt(() => interrupt.abort())
  const progress = new ProgressBar(io.stderr, jobs.length)
  let outcomes: JobOutcome[]
  try {
    outcomes = await runJobs({
      client,
      jobs,
      concurrency: settings.concurrency,
      signal: interrupt.signal,
      onStart: () => progress.start(),
      onSettled: (job, outcome) =>
        progress.finish(`${job.preset.name} · ${job.prompt.id}`, outcome.status === 'failed' ? `failed (${outcome.code})` : outcome.status, outcome.status === 'failed'),
    })
  } catch (error) {
    progress.clear()
    if (interrupt.signal.aborted) {
      io.stderr.write('pictale: interrupted; no report written\n')
      return EXIT.interrupted
    }
    const failure = describeFailure(error instanceof FatalJobError ? error.cause : error)
    const where = error instanceof FatalJobError ? `preset ${error.job.preset.name}, prompt ${error.job.prompt.id}: ` : ''
    io.stderr.write(`pictale: eval stopped: ${where}${failure.message}\n`)
    return failure.code
  }
  progress.clear()

  const report = buildReport(jobs, outcomes, {
    baseURL,
    health,
    seed: settings.seed,
    concurrency: settings.concurrency,
    maxTokens: settings.maxTokens ?? null,
  })
  const html = renderHtmlReport(report, await pictureOptions(jobs))
  const outDir = resolve(settings.outDir)
  try {
    await mkdir(outDir, { recursive: true })
    await writeFile(join(outDir, 'report.json'), `${JSON.stringify(report, null, 2)}\n`)
    await writeFile(join(outDir, 'report.html'), html)
  } catch (error) {
    io.stderr.write(`pictale: cannot write the report to ${outDir}: ${(error as Error).message}\n`)
    return EXIT.failed
  }

  if (json) io.stdout.write(`${JSON.stringify(report)}\n`)
  else io.stdout.write(`${renderSummaryTable(report)}\n\nreport: ${join(outDir, 'report.html')}\ndata:   ${join(outDir, 'report.json')}\n`)
  const failed = outcomes.filter((outcome) => outcome.status === 'failed').length
  if (failed) {
    io.stderr.write(`pictale: ${failed} of ${jobs.length} runs failed; their errors are in the report\n`)
    return EXIT.failed
  }
  return EXIT.ok
}

/** Every prompt under every preset, prompt by prompt so that early results cover each preset. */
export async function planJobs(settings: EvalSettings): Promise<EvalJob[]> {
  const fromFile = settings.presetsFile ? await readPresetsFile(settings.presetsFile) : []
  const presets = selectPresets(settings.presets, fromFile)
  const prompts = selectPrompts(settings.prompts, settings.limit)
  const folder = picturesFolder()
  const cap = settings.maxTokens
  return prompts.flatMap((prompt) =>
    presets.map((preset) => ({
      prompt,
      preset,
      image: join(folder, prompt.picture),
      // The same seed for a prompt under every preset: the description is the same, and the
      // stories differ by their sampler settings. It follows the prompt's place in the whole set,
      // so a run of a few prompts gives them the seeds a run of all of them does.
      seed: settings.seed + PROMPTS.findIndex((bundled) => bundled.id === prompt.id),
      maxTokens: {
        ...(cap ? { describe: cap } : {}),
        story: cap ? Math.min(cap, storyMaxTokens(prompt)) : storyMaxTokens(prompt),
      },
    })),
  )
}

async function pictureOptions(jobs: EvalJob[]) {
  const pictures: Record<string, string> = {}
  const pictureOf: Record<string, string> = {}
  for (const { prompt, image } of jobs) {
    pictureOf[prompt.id] = prompt.picture
    pictures[prompt.picture] ??= `data:image/png;base64,${(await readFile(image)).toString('base64')}`
  }
  return { pictures, pictureOf }
}
