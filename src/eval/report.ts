import type { PipelineResult } from '../schemas/results'
import type { PresetSampling } from './presets'
import type { StoryMetrics } from './score-story'

/** Version of the report's JSON layout; bumped when a field changes meaning or goes away. */
export const REPORT_FORMAT = 'pictale-eval/1'

/** One prompt run under one preset, with the story's metrics when it was written. */
export interface EvalOutput {
  promptId: string
  preset: string
  language: string
  genre: string
  targetWords: number
  status: 'done' | 'refused' | 'failed'
  /** For refused and failed runs: the error's code and message. */
  error?: { code: string; message: string }
  /** Wall time of the call, seen from the client (queueing and retries included). */
  wallMs: number
  result?: PipelineResult
  metrics?: StoryMetrics
}

/** A preset's metrics over its runs: means over the stories written, shares, medians. */
export interface PresetSummary {
  preset: string
  runs: number
  completed: number
  refused: number
  failed: number
  slopPer1kWords: number | null
  slopHits: number
  repeated4gramRate: number | null
  distinct1: number | null
  distinct2: number | null
  distinct3: number | null
  repeatedOpeningRate: number | null
  lengthAccuracy: number | null
  lengthRatio: number | null
  truncatedRate: number | null
  languageAdherence: number | null
  templateLeakRate: number | null
  refusalRate: number | null
  grounding: number | null
  ttftMsMedian: number | null
  tokensPerSecondMedian: number | null
}

export interface EvalReport {
  format: typeof REPORT_FORMAT
  createdAt: string
  server: {
    baseURL: string
    profile: string
    models: Record<string, string>
  }
  settings: {
    presets: Record<string, PresetSampling>
    prompts: string[]
    seed: number
    concurrency: number
    /** The --max-tokens cap on both stages, when one was given. */
    maxTokens: number | null
  }
  summary: PresetSummary[]
  outputs: EvalOutput[]
}
