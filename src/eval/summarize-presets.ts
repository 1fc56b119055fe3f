import type { EvalOutput, PresetSummary } from './report'

const mean = (values: number[]) => (values.length ? values.reduce((sum, value) => sum + value, 0) / values.length : null)
const share = (flags: boolean[]) => mean(flags.map(Number))

function median(values: number[]): number | null {
  if (!values.length) return null
  const sorted = [...values].sort((a, b) => a - b)
  const middle = sorted.length >> 1
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

const present = <T>(values: (T | null | undefined)[]) => values.filter((value): value is T => value !== null && value !== undefined)

/** One summary per preset, in the order the presets first appear. */
export function summarizePresets(outputs: EvalOutput[]): PresetSummary[] {
  const byPreset = new Map<string, EvalOutput[]>()
  for (const output of outputs) byPreset.set(output.preset, [...(byPreset.get(output.preset) ?? []), output])
  return [...byPreset].map(([preset, runs]) => summarize(preset, runs))
}

function summarize(preset: string, runs: EvalOutput[]): PresetSummary {
  const done = runs.filter((run) => run.status === 'done' && run.metrics && run.result)
  const metrics = done.map((run) => run.metrics!)
  const answered = runs.filter((run) => run.status !== 'failed')
  return {
    preset,
    runs: runs.length,
    completed: done.length,
    refused: runs.filter((run) => run.status === 'refused').length,
    failed: runs.filter((run) => run.status === 'failed').length,
    slopPer1kWords: mean(present(metrics.map((m) => m.slop.per1kWords))),
    slopHits: metrics.reduce((sum, m) => sum + m.slop.hits, 0),
    repeated4gramRate: mean(present(metrics.map((m) => m.repetition.repeated4gramRate))),
    distinct1: mean(present(metrics.map((m) => m.repetition.distinct1))),
    distinct2: mean(present(metrics.map((m) => m.repetition.distinct2))),
    distinct3: mean(present(metrics.map((m) => m.repetition.distinct3))),
    repeatedOpeningRate: mean(present(metrics.map((m) => m.repetition.repeatedOpeningRate))),
    lengthAccuracy: mean(metrics.map((m) => m.length.accuracy)),
    lengthRatio: mean(metrics.map((m) => m.length.ratio)),
    truncatedRate: share(done.map((run) => run.result!.story.finishReason === 'length')),
    languageAdherence: share(metrics.map((m) => m.language.adherent)),
    templateLeakRate: share(metrics.map((m) => m.templateLeaks.count > 0)),
    refusalRate: share(answered.map((run) => run.status === 'refused' || Boolean(run.metrics?.refusal))),
    grounding: mean(present(metrics.map((m) => m.grounding.score))),
    ttftMsMedian: median(metrics.map((m) => m.speed.ttftMs)),
    tokensPerSecondMedian: median(metrics.map((m) => m.speed.tokensPerSecond).filter((rate) => rate > 0)),
  }
}
