import type { Health } from '../schemas/health'
import type { EvalJob, JobOutcome } from './run-jobs'
import { REPORT_FORMAT, type EvalOutput, type EvalReport } from './report'
import { scoreStory } from './score-story'
import { summarizePresets } from './summarize-presets'

export interface ReportContext {
  baseURL: string
  health: Health
  seed: number
  concurrency: number
  maxTokens: number | null
  now?: Date
}

/** Scores every story and summarises each preset. */
export function buildReport(jobs: EvalJob[], outcomes: JobOutcome[], context: ReportContext): EvalReport {
  const outputs = jobs.map((job, index) => toOutput(job, outcomes[index]!))
  return {
    format: REPORT_FORMAT,
    createdAt: (context.now ?? new Date()).toISOString(),
    server: {
      baseURL: withoutCredentials(context.baseURL),
      profile: context.health.profile,
      models: Object.fromEntries(Object.entries(context.health.models).map(([role, model]) => [role, model.id])),
    },
    settings: {
      presets: Object.fromEntries(jobs.map((job) => [job.preset.name, job.preset.sampling])),
      prompts: [...new Set(jobs.map((job) => job.prompt.id))],
      seed: context.seed,
      concurrency: context.concurrency,
      maxTokens: context.maxTokens,
    },
    summary: summarizePresets(outputs),
    outputs,
  }
}

function toOutput(job: EvalJob, outcome: JobOutcome): EvalOutput {
  const { prompt } = job
  const base = {
    promptId: prompt.id,
    preset: job.preset.name,
    language: prompt.language,
    genre: prompt.genre,
    targetWords: prompt.targetWords,
    wallMs: outcome.wallMs,
  }
  switch (outcome.status) {
    case 'done': {
      const { description, story } = outcome.result
      return { ...base, status: 'done', result: outcome.result, metrics: scoreStory(prompt, description, story) }
    }
    case 'refused':
      return { ...base, status: 'refused', error: { code: 'content_refused', message: outcome.message } }
    case 'failed':
      return { ...base, status: 'failed', error: { code: outcome.code, message: outcome.message } }
  }
}

function withoutCredentials(url: string): string {
  try {
    const parsed = new URL(url)
    parsed.username = ''
    parsed.password = ''
    return parsed.toString().replace(/\/$/, '')
  } catch {
    return url
  }
}
