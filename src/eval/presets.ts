import { readFile } from 'node:fs/promises'
import { SamplingSchema, type Sampling } from '../schemas/requests'
import { EvalUsageError } from './eval-usage-error'
import { SLOP_PHRASES } from './metrics/slop'

/** The writer's sampling settings under comparison; the harness itself sets `maxTokens` and `seed`. */
export type PresetSampling = Omit<Sampling, 'maxTokens' | 'seed'>

/** A named set of sampler settings for the story (narrate) stage. */
export interface Preset {
  name: string
  sampling: PresetSampling
  /** `bundled`, or the presets file it came from. */
  source: string
}

// The values the samplers' authors suggest as a start: DRY in text-generation-webui #5677,
// XTC in #6335 (docs/eval.md).
const DRY: PresetSampling = { dryMultiplier: 0.8, dryBase: 1.75, dryAllowedLength: 2 }
const XTC: PresetSampling = { xtcThreshold: 0.1, xtcProbability: 0.5 }

export const BUNDLED_PRESETS: Readonly<Record<string, PresetSampling>> = {
  plain: {},
  dry: DRY,
  'dry+xtc': { ...DRY, ...XTC },
  'banned-phrases': { bannedPhrases: [...SLOP_PHRASES] },
}

const NAME = /^[A-Za-z0-9][\w+.-]{0,39}$/
const HARNESS_FIELDS = { maxTokens: '--max-tokens', seed: '--seed' } as const

/** Reads a presets file: `{ "name": { camelCase sampling fields }, … }`. */
export async function readPresetsFile(path: string): Promise<Preset[]> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    throw new EvalUsageError(`cannot read the presets file ${path}: ${(error as Error).message}`)
  }
  let data: unknown
  try {
    data = JSON.parse(text)
  } catch (error) {
    throw new EvalUsageError(`the presets file ${path} is not JSON: ${(error as Error).message}`)
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new EvalUsageError(`the presets file ${path} must hold one object: { "preset name": { sampling fields } }`)
  }
  return Object.entries(data).map(([name, sampling]) => ({ name, sampling: checkPreset(path, name, sampling), source: path }))
}

function checkPreset(path: string, name: string, value: unknown): PresetSampling {
  const where = `the presets file ${path}, preset ${JSON.stringify(name)}`
  if (!NAME.test(name)) throw new EvalUsageError(`${where}: a name is 1–40 letters, digits, and _ + . -`)
  if (Object.hasOwn(BUNDLED_PRESETS, name)) throw new EvalUsageError(`${where}: a bundled preset has that name; choose another`)
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new EvalUsageError(`${where}: must be an object of sampling fields (e.g. {"temperature": 0.9})`)
  }
  for (const [field, option] of Object.entries(HARNESS_FIELDS)) {
    if (field in value) throw new EvalUsageError(`${where}: ${field} is set by the harness (${option})`)
  }
  const parsed = SamplingSchema.safeParse(value)
  if (!parsed.success) {
    const problems = parsed.error.issues.map(describeIssue)
    throw new EvalUsageError(`${where}: ${problems.join('; ')} (fields are the SDK's camelCase sampling fields, e.g. dryMultiplier)`)
  }
  return parsed.data as PresetSampling
}

function describeIssue(issue: { code: string; path: PropertyKey[]; message: string; keys?: string[]; expected?: string }): string {
  if (issue.code === 'unrecognized_keys') return `unknown field${issue.keys!.length > 1 ? 's' : ''} ${issue.keys!.join(', ')}`
  const field = issue.path.map(String).join('.')
  if (issue.code === 'invalid_type') return `${field} must be ${issue.expected === 'int' ? 'a whole number' : `a ${issue.expected}`}`
  return `${field}: ${issue.message}`
}

/**
 * The presets to run, in order: the named ones (bundled or from the file), or by default every
 * bundled preset followed by every preset of the file.
 */
export function selectPresets(names: string[] | undefined, fromFile: Preset[]): Preset[] {
  const available = new Map<string, Preset>(
    Object.entries(BUNDLED_PRESETS).map(([name, sampling]) => [name, { name, sampling, source: 'bundled' }]),
  )
  for (const preset of fromFile) available.set(preset.name, preset)
  if (!names) return [...available.values()]
  const unknown = names.filter((name) => !available.has(name))
  if (unknown.length) {
    throw new EvalUsageError(
      `unknown preset${unknown.length > 1 ? 's' : ''} ${unknown.map((name) => JSON.stringify(name)).join(', ')}; ` +
        `available: ${[...available.keys()].join(', ')}`,
    )
  }
  return [...new Set(names)].map((name) => available.get(name)!)
}
