import type {
  LanguageModelV3,
  LanguageModelV3CallOptions,
  LanguageModelV3Content,
  LanguageModelV3GenerateResult,
  LanguageModelV3StreamPart,
  LanguageModelV3StreamResult,
} from '@ai-sdk/provider'
import type { PictaleClient } from '../client'
import type { CallOptions } from '../client-options'
import type { PipelineEvent } from '../schemas/events'
import type { PipelineResult, TextResult } from '../schemas/results'
import type { Run } from '../run/run'
import { toPictaleCall, type PictaleCall } from './convert-prompt'
import { finishReasonOf, metadataOf, usageOf } from './map-result'
import type { PictaleModelId } from './model-ids'
import { StreamParts } from './stream-parts'

type AnyRun = Run<TextResult | PipelineResult, PipelineEvent>

/** One pictale model as an AI SDK language model (specification v3). */
export class PictaleLanguageModel implements LanguageModelV3 {
  readonly specificationVersion = 'v3'
  readonly provider = 'pictale'
  readonly modelId: PictaleModelId
  /** http(s) picture URLs go to the server as they are: it fetches them itself, SSRF-checked. */
  readonly supportedUrls = { 'image/*': [/^https?:\/\//i] }
  readonly #client: PictaleClient

  constructor(modelId: PictaleModelId, client: PictaleClient) {
    this.modelId = modelId
    this.#client = client
  }

  async doGenerate(options: LanguageModelV3CallOptions): Promise<LanguageModelV3GenerateResult> {
    const call = toPictaleCall(this.modelId, options)
    let result: TextResult | PipelineResult
    try {
      result = await this.#start(call, options)
    } catch (error) {
      throw abortReason(options, error)
    }
    const content: LanguageModelV3Content[] = []
    if ('story' in result) {
      content.push({ type: 'reasoning', text: result.description.text }, { type: 'text', text: result.story.text })
      return {
        content,
        finishReason: finishReasonOf(result.story.finishReason),
        usage: usageOf(result.story, result.description),
        providerMetadata: metadataOf(result.id, { describe: result.description, narrate: result.story }),
        response: { id: result.id, modelId: result.story.model },
        warnings: call.warnings,
      }
    }
    content.push({ type: 'text', text: result.text })
    return {
      content,
      finishReason: finishReasonOf(result.finishReason),
      usage: usageOf(result),
      providerMetadata: metadataOf(result.id, { [call.route === 'describe' ? 'describe' : 'narrate']: result }),
      response: { id: result.id, modelId: result.model },
      warnings: call.warnings,
    }
  }

  async doStream(options: LanguageModelV3CallOptions): Promise<LanguageModelV3StreamResult> {
    const call = toPictaleCall(this.modelId, options)
    const run = this.#start(call, options)
    const events = run[Symbol.asyncIterator]()
    const parts = new StreamParts(call.route, options.includeRawChunks === true)
    // The first event (`run`) comes as soon as the server takes the request, so waiting for it
    // makes every refusal of the request itself (auth, limits, a bad image, a full queue)
    // reject doStream, which the AI SDK reports through onError and its UI streams.
    let first: IteratorResult<PipelineEvent>
    try {
      first = await events.next()
    } catch (error) {
      throw abortReason(options, error)
    }
    const stream = new ReadableStream<LanguageModelV3StreamPart>({
      start: (controller) => {
        controller.enqueue(parts.start(call.warnings))
        if (first.done) controller.close()
        else for (const part of parts.of(first.value)) controller.enqueue(part)
      },
      pull: async (controller) => {
        try {
          const next = await events.next()
          if (next.done) return controller.close()
          for (const part of parts.of(next.value)) controller.enqueue(part)
        } catch (error) {
          if (options.abortSignal?.aborted) return controller.error(options.abortSignal.reason)
          // An error the server sent mid-stream is a stream part, as the AI SDK's providers do.
          controller.enqueue({ type: 'error', error })
          controller.close()
        }
      },
      // The consumer stopped reading: leaving the iteration cancels the job on the server.
      cancel: async () => {
        await events.return?.()
      },
    })
    return { stream }
  }

  #start(call: PictaleCall, options: LanguageModelV3CallOptions): AnyRun {
    // The AI SDK adds `user-agent: ai/…`; a page that sends it needs a CORS preflight for a
    // header the server does not allow.
    const headers = Object.fromEntries(
      Object.entries(options.headers ?? {}).filter(
        (entry): entry is [string, string] => entry[1] !== undefined && entry[0].toLowerCase() !== 'user-agent',
      ),
    )
    const callOptions: CallOptions = { signal: options.abortSignal, headers }
    switch (call.route) {
      case 'narrate':
        return this.#client.narrate(call.request, callOptions) as unknown as AnyRun
      case 'describe':
        return this.#client.describe(call.request, callOptions) as unknown as AnyRun
      case 'pipeline':
        return this.#client.pipeline(call.request, callOptions) as unknown as AnyRun
    }
  }
}

/**
 * The AI SDK recognises a cancelled call by its signal's reason (an `AbortError`); pictale's
 * own `UserAbortError` would read as a failure. Other errors pass through as pictale's typed
 * errors.
 */
function abortReason(options: LanguageModelV3CallOptions, error: unknown): unknown {
  return options.abortSignal?.aborted ? options.abortSignal.reason : error
}
