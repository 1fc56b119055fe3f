import { EvalUsageError } from '../eval/eval-usage-error'

/** The options only `pictale eval` takes (node:util parseArgs form). */
export const EVAL_OPTIONS = {
  presets: { type: 'string' },
  'presets-file': { type: 'string' },
  prompts: { type: 'string' },
  limit: { type: 'string' },
  concurrency: { type: 'string' },
  'max-tokens': { type: 'string' },
  seed: { type: 'string' },
  out: { type: 'string' },
} as const

type EvalOptionValues = { [K in keyof typeof EVAL_OPTIONS]?: string | undefined }

/** What `pictale eval` was asked to do. */
export interface EvalSettings {
  /** Preset names; undefined: the bundled ones and every one of the presets file. */
  presets?: string[]
  presetsFile?: string
  /** Prompt ids; undefined: the whole set. */
  prompts?: string[]
  limit?: number
  concurrency: number
  /** A cap on both stages' max_tokens. */
  maxTokens?: number
  seed: number
  /** Where report.json and report.html go. */
  outDir: string
}

export const DEFAULT_CONCURRENCY = 4
export const DEFAULT_SEED = 1

/** The eval-only options given on a command line, as `--name`. */
export function givenEvalOptions(values: EvalOptionValues): string[] {
  return Object.keys(EVAL_OPTIONS).filter((name) => values[name as keyof EvalOptionValues] !== undefined).map((name) => `--${name}`)
}

/** Checks and converts the eval options; throws {@link EvalUsageError} for a bad value. */
export function evalSettings(values: EvalOptionValues, now = new Date()): EvalSettings {
  const list = (value: string | undefined) =>
    value === undefined ? undefined : value.split(',').map((item) => item.trim()).filter(Boolean)
  const settings: EvalSettings = {
    concurrency: integer('--concurrency', values.concurrency, 1, 64) ?? DEFAULT_CONCURRENCY,
    seed: integer('--seed', values.seed, 0, Number.MAX_SAFE_INTEGER) ?? DEFAULT_SEED,
    outDir: values.out ?? `pictale-eval/${now.toISOString().replace(/:/g, '-').replace(/\.\d+Z$/, 'Z')}`,
  }
  const presets = list(values.presets)
  if (presets) {
    if (!presets.length) throw new EvalUsageError('--presets names at least one preset')
    settings.presets = presets
  }
  const prompts = list(values.prompts)
  if (prompts) {
    if (!prompts.length) throw new EvalUsageError('--prompts names at least one prompt')
    settings.prompts = prompts
  }
  if (values['presets-file'] !== undefined) settings.presetsFile = values['presets-file']
  const limit = integer('--limit', values.limit, 1, 10_000)
  if (limit !== undefined) settings.limit = limit
  const maxTokens = integer('--max-tokens', values['max-tokens'], 1, 4096)
  if (maxTokens !== undefined) settings.maxTokens = maxTokens
  return settings
}

function integer(name: string, value: string | undefined, min: number, max: number): number | undefined {
  if (value === undefined) return undefined
  const number = Number(value)
  if (!/^\d+$/.test(value.trim()) || number < min || number > max) {
    throw new EvalUsageError(`${name} takes a whole number from ${min} to ${max}, not ${JSON.stringify(value)}`)
  }
  return number
}
