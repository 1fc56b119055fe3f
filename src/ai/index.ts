/**
 * `pictale/ai`: pictale's models for the Vercel AI SDK (`generateText`, `streamText`, image
 * parts, abort signals, usage). Language models of specification v3: the `ai` package 6
 * takes them as they are, and 7 adapts them.
 *
 * @example
 * import { createPictale } from 'pictale/ai'
 * import { streamText } from 'ai'
 * const pictale = createPictale({ baseURL, apiKey })
 * const { textStream } = streamText({ model: pictale('writer'), prompt: 'A ghost story.' })
 * @packageDocumentation
 */
import type { ProviderV3 } from '@ai-sdk/provider'
import { createClient, type PictaleClient } from '../client'
import type { ClientOptions } from '../client-options'
import { InvalidInputError } from '../errors/client-errors'
import { MODEL_IDS, type PictaleModelId } from './model-ids'
import { PictaleLanguageModel } from './pictale-language-model'

export type { PictaleModelId } from './model-ids'
export { PictaleLanguageModel } from './pictale-language-model'

/** A pictale provider: call it with a model id (`writer`, `vision` or `pipeline`). */
export interface PictaleProvider extends ProviderV3 {
  (modelId: PictaleModelId): PictaleLanguageModel
  languageModel(modelId: PictaleModelId): PictaleLanguageModel
}

/** Client options for a new client, or `{ client }` to share one (say, `pictale/node`'s). */
export type PictaleProviderSettings = ClientOptions | { client: PictaleClient }

export function createPictale(settings: PictaleProviderSettings): PictaleProvider {
  const client = 'client' in settings ? settings.client : createClient(settings)
  const languageModel = (modelId: PictaleModelId): PictaleLanguageModel => {
    if (!MODEL_IDS.includes(modelId)) {
      throw new InvalidInputError('no_such_model', `pictale has no model "${String(modelId)}": use ${MODEL_IDS.join(', ')}`, 'modelId')
    }
    return new PictaleLanguageModel(modelId, client)
  }
  const noSuchModel = (kind: string) => (modelId: string) => {
    throw new InvalidInputError('no_such_model', `pictale serves language models only, not ${kind} models ("${modelId}")`, 'modelId')
  }
  return Object.assign(languageModel, {
    specificationVersion: 'v3' as const,
    languageModel,
    embeddingModel: noSuchModel('embedding'),
    imageModel: noSuchModel('image'),
  })
}
