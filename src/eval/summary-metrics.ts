import type { PresetSummary } from './report'

type NumericKey = { [K in keyof PresetSummary]: PresetSummary[K] extends number | null ? K : never }[keyof PresetSummary]

/** How a summary metric is shown: label, which way is better, unit. Shared by the table and the HTML report. */
export interface SummaryMetric {
  key: NumericKey
  label: string
  better: 'higher' | 'lower' | 'none'
  unit: 'share' | 'ratio' | 'per1k' | 'ms' | 'tokps' | 'count'
}

export const SUMMARY_METRICS: readonly SummaryMetric[] = [
  { key: 'slopPer1kWords', label: 'Slop index (stock phrases / 1,000 words)', better: 'lower', unit: 'per1k' },
  { key: 'repeated4gramRate', label: 'Repeated 4-grams', better: 'lower', unit: 'share' },
  { key: 'distinct1', label: 'Distinct-1', better: 'higher', unit: 'ratio' },
  { key: 'distinct2', label: 'Distinct-2', better: 'higher', unit: 'ratio' },
  { key: 'distinct3', label: 'Distinct-3', better: 'higher', unit: 'ratio' },
  { key: 'repeatedOpeningRate', label: 'Repeated sentence openings', better: 'lower', unit: 'share' },
  { key: 'lengthAccuracy', label: 'Length accuracy', better: 'higher', unit: 'share' },
  { key: 'lengthRatio', label: 'Length / requested', better: 'none', unit: 'ratio' },
  { key: 'truncatedRate', label: 'Cut off at max tokens', better: 'lower', unit: 'share' },
  { key: 'languageAdherence', label: 'In the requested language', better: 'higher', unit: 'share' },
  { key: 'templateLeakRate', label: 'Template-token leaks', better: 'lower', unit: 'share' },
  { key: 'refusalRate', label: 'Refusals (benign prompts)', better: 'lower', unit: 'share' },
  { key: 'grounding', label: 'Grounding (description nouns used)', better: 'higher', unit: 'share' },
  { key: 'ttftMsMedian', label: 'Time to first token (median)', better: 'lower', unit: 'ms' },
  { key: 'tokensPerSecondMedian', label: 'Decode speed (median)', better: 'higher', unit: 'tokps' },
]

/** Run counts, shown above the metrics. */
export const RUN_COUNTS: readonly SummaryMetric[] = [
  { key: 'runs', label: 'Runs', better: 'none', unit: 'count' },
  { key: 'completed', label: 'Stories written', better: 'none', unit: 'count' },
  { key: 'refused', label: 'Refused by the server', better: 'lower', unit: 'count' },
  { key: 'failed', label: 'Failed', better: 'lower', unit: 'count' },
]

/** A metric's value as text: `–` when there is none. */
export function formatMetric(value: number | null, unit: SummaryMetric['unit']): string {
  if (value === null || !Number.isFinite(value)) return '–'
  switch (unit) {
    case 'share':
      return `${(value * 100).toFixed(0)}%`
    case 'ratio':
      return value.toFixed(2)
    case 'per1k':
      return value.toFixed(1)
    case 'ms':
      return `${Math.round(value)} ms`
    case 'tokps':
      return `${value.toFixed(1)} tok/s`
    case 'count':
      return String(value)
  }
}

/** An axis tick: a share as a percentage, anything else as a short number (the unit is in the title). */
export function formatTick(value: number, unit: SummaryMetric['unit']): string {
  if (unit === 'share') return `${Math.round(value * 100)}%`
  return String(Number(value.toPrecision(3)))
}

/** The unit to name in a chart's title, if any. */
export const UNIT_NAMES: Partial<Record<SummaryMetric['unit'], string>> = { per1k: 'per 1,000 words', ms: 'ms', tokps: 'tokens/s' }

/** ↑ when higher is better, ↓ when lower is. */
export const betterArrow = (metric: SummaryMetric) => (metric.better === 'higher' ? '↑' : metric.better === 'lower' ? '↓' : ' ')
