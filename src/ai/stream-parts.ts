import type { LanguageModelV3StreamPart, SharedV3Warning } from '@ai-sdk/provider'
import type { PipelineEvent } from '../schemas/events'
import type { PipelineResult, StageResult, TextResult } from '../schemas/results'
import { finishReasonOf, metadataOf, usageOf } from './map-result'

/**
 * Turns a run's events into the AI SDK's stream parts, one event at a time. A pipeline's
 * describe stage streams as reasoning (the picture's description), its narrate stage as text.
 */
export class StreamParts {
  readonly #asReasoning: boolean
  readonly #includeRaw: boolean
  readonly #stages: Partial<Record<'describe' | 'narrate', StageResult>> = {}

  constructor(route: 'narrate' | 'describe' | 'pipeline', includeRaw: boolean) {
    this.#asReasoning = route === 'pipeline'
    this.#includeRaw = includeRaw
  }

  start(warnings: SharedV3Warning[]): LanguageModelV3StreamPart {
    return { type: 'stream-start', warnings }
  }

  of(event: PipelineEvent): LanguageModelV3StreamPart[] {
    const parts: LanguageModelV3StreamPart[] = this.#includeRaw ? [{ type: 'raw', rawValue: event }] : []
    switch (event.type) {
      case 'run':
        parts.push({ type: 'response-metadata', id: event.id })
        break
      case 'stage-start':
        parts.push({ type: this.#reasoning(event.stage) ? 'reasoning-start' : 'text-start', id: event.stage })
        break
      case 'delta':
        parts.push({ type: this.#reasoning(event.stage) ? 'reasoning-delta' : 'text-delta', id: event.stage, delta: event.text })
        break
      case 'stage-end': {
        const { stage, type: _type, ...result } = event
        this.#stages[stage] = result
        parts.push({ type: this.#reasoning(stage) ? 'reasoning-end' : 'text-end', id: stage })
        // The model that wrote the text, as generateText reports it.
        if (!this.#reasoning(stage)) parts.push({ type: 'response-metadata', modelId: result.model })
        break
      }
      case 'done': {
        const result = event as unknown as TextResult | PipelineResult
        const story = 'story' in result ? result.story : result
        const description = 'story' in result ? result.description : undefined
        parts.push({
          type: 'finish',
          finishReason: finishReasonOf(story.finishReason),
          usage: usageOf(story, description),
          providerMetadata: metadataOf(result.id, this.#stages),
        })
        break
      }
      default:
        break // status: queued, loading or running; only `raw` carries it
    }
    return parts
  }

  #reasoning(stage: 'describe' | 'narrate'): boolean {
    return this.#asReasoning && stage === 'describe'
  }
}
