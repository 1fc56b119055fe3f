import type { LanguageModelV3FinishReason, LanguageModelV3Usage, SharedV3ProviderMetadata } from '@ai-sdk/provider'
import type { FinishReason, StageResult } from '../schemas/results'

export function finishReasonOf(reason: FinishReason): LanguageModelV3FinishReason {
  return { unified: reason === 'cancelled' ? 'other' : reason, raw: reason }
}

/** Token counts of the stages a call ran; a pipeline's description counts as reasoning. */
export function usageOf(story: StageResult, description?: StageResult): LanguageModelV3Usage {
  const input = story.usage.inputTokens + (description?.usage.inputTokens ?? 0)
  const reasoning = description?.usage.outputTokens ?? 0
  return {
    inputTokens: { total: input, noCache: input, cacheRead: undefined, cacheWrite: undefined },
    outputTokens: { total: story.usage.outputTokens + reasoning, text: story.usage.outputTokens, reasoning: description ? reasoning : undefined },
  }
}

/** `providerMetadata.pictale`: the run id, and each stage's model and server timings. */
export function metadataOf(runId: string, stages: Partial<Record<'describe' | 'narrate', StageResult>>): SharedV3ProviderMetadata {
  const perStage = Object.fromEntries(
    Object.entries(stages).map(([stage, result]) => [stage, { model: result.model, timings: { ...result.timings } }]),
  )
  return { pictale: { runId, ...perStage } }
}
