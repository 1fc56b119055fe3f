import type {
  LanguageModelV3CallOptions,
  LanguageModelV3FilePart,
  LanguageModelV3Message,
  SharedV3Warning,
} from '@ai-sdk/provider'
import { InvalidInputError } from '../errors/client-errors'
import type { ImageInput } from '../images/image-input'
import type { DescribeRequest, HistoryTurn, NarrateRequest, PipelineRequest, Sampling } from '../schemas/requests'
import type { PictaleModelId } from './model-ids'

/** One pictale call that answers an AI SDK call, and what of the call it could not honour. */
export type PictaleCall =
  | { route: 'narrate'; request: NarrateRequest; warnings: SharedV3Warning[] }
  | { route: 'describe'; request: DescribeRequest; warnings: SharedV3Warning[] }
  | { route: 'pipeline'; request: PipelineRequest; warnings: SharedV3Warning[] }

/**
 * Turns an AI SDK call into a pictale request. System messages become `system`; earlier turns
 * become `history`; the last message, a user's, holds the instruction (and the picture for
 * `vision` and `pipeline`). `providerOptions.pictale` adds pictale's own fields (DRY, XTC,
 * banned phrases, `context`, a pipeline's `describe` stage…), checked like any request.
 *
 * A conversation goes on after a picture: earlier pictures are not sent again (a warning says
 * so); the latest description in the conversation (a pipeline's reasoning) becomes the
 * writer's `context`, and a `pipeline` turn without a new picture is written from it.
 * Anything pictale cannot carry is an {@link InvalidInputError}, never dropped in silence.
 */
export function toPictaleCall(modelId: PictaleModelId, options: LanguageModelV3CallOptions): PictaleCall {
  const warnings = unsupportedSettings(options)
  const system = options.prompt.filter((message) => message.role === 'system').map((message) => message.content)
  const turns = options.prompt.filter((message) => message.role !== 'system')
  const last = turns.at(-1)
  if (last?.role !== 'user') {
    throw new InvalidInputError('invalid_request', 'the prompt must end with a user message: pictale answers the last user turn', 'prompt')
  }
  const { text, images } = userContent(last.content)
  const earlier = turns.slice(0, -1)
  const extra = pictaleOptions(options)
  const sampling = samplingOf(options)
  const systemText = system.length > 0 ? system.join('\n\n') : undefined

  if (modelId === 'vision') {
    if (earlier.length > 0) {
      throw new InvalidInputError('invalid_request', 'the vision model answers one user message (a picture and an optional question), not a conversation', 'prompt')
    }
    const request = { image: onePicture(images, modelId), prompt: text || undefined, system: systemText, ...sampling, ...extra }
    return { route: 'describe', request: request as DescribeRequest, warnings }
  }
  const instruction = requireInstruction(text)
  const conversation = conversationOf(earlier)
  if (conversation.earlierPictures > 0) {
    warnings.push({
      type: 'other',
      message: `${conversation.earlierPictures} picture(s) in earlier turns were not sent again: only the last user message's picture is read; the latest description in the conversation is the writer's context`,
    })
  }
  const narrate = (fields: Record<string, unknown>): PictaleCall => {
    const context = conversation.description === undefined ? {} : { context: conversation.description }
    const request = { instruction, system: systemText, history: conversation.history, ...context, ...sampling, ...fields }
    return { route: 'narrate', request: request as NarrateRequest, warnings }
  }
  if (modelId === 'writer') {
    if (images.length > 0) {
      throw new InvalidInputError('invalid_request', "the writer model reads text only; use pictale('pipeline') to write from a picture", 'prompt')
    }
    return narrate(extra)
  }
  // The standard settings and pictale's own samplers shape the story, so they go to the
  // narrate stage; `describe` and `webhook` keep their place.
  const { describe, webhook, narrate: narrateStage, ...storyFields } = extra
  if (images.length === 0 && conversation.description !== undefined) {
    // A pipeline turn with no new picture is only the story; describe options wait for one.
    return narrate({ ...(webhook === undefined ? {} : { webhook }), ...storyFields, ...(narrateStage as object | undefined) })
  }
  const request = {
    image: onePicture(images, modelId),
    instruction,
    ...(describe === undefined ? {} : { describe }),
    ...(webhook === undefined ? {} : { webhook }),
    narrate: { system: systemText, history: conversation.history, ...sampling, ...storyFields, ...(narrateStage as object | undefined) },
  }
  return { route: 'pipeline', request: request as PipelineRequest, warnings }
}

function unsupportedSettings(options: LanguageModelV3CallOptions): SharedV3Warning[] {
  const warnings: SharedV3Warning[] = []
  if (options.tools !== undefined && options.tools.length > 0) {
    warnings.push({ type: 'unsupported', feature: 'tools', details: 'pictale models do not call tools; the tools were not sent' })
  }
  if (options.toolChoice !== undefined && options.toolChoice.type !== 'auto') {
    warnings.push({ type: 'unsupported', feature: 'toolChoice' })
  }
  if (options.responseFormat?.type === 'json') {
    warnings.push({ type: 'unsupported', feature: 'responseFormat', details: 'pictale writes prose; JSON output is not enforced' })
  }
  return warnings
}

/** The AI SDK's standard settings, in pictale's names; absent ones stay absent. */
function samplingOf(options: LanguageModelV3CallOptions): Sampling {
  const sampling: Sampling = {
    maxTokens: options.maxOutputTokens,
    temperature: options.temperature,
    topP: options.topP,
    topK: options.topK,
    stop: options.stopSequences,
    seed: options.seed,
    presencePenalty: options.presencePenalty,
    frequencyPenalty: options.frequencyPenalty,
  }
  return Object.fromEntries(Object.entries(sampling).filter(([, value]) => value !== undefined)) as Sampling
}

/** Request fields the prompt's messages fill in; providerOptions cannot override them. */
const PROMPT_FIELDS = ['instruction', 'system', 'history', 'image', 'prompt']

function pictaleOptions(options: LanguageModelV3CallOptions): Record<string, unknown> {
  const extra = options.providerOptions?.pictale
  if (extra === undefined) return {}
  if (typeof extra !== 'object' || extra === null || Array.isArray(extra)) {
    throw new InvalidInputError('invalid_request', 'providerOptions.pictale must be an object of pictale request fields', 'providerOptions.pictale')
  }
  const owned = Object.keys(extra).find((key) => PROMPT_FIELDS.includes(key))
  if (owned !== undefined) {
    throw new InvalidInputError('invalid_request', `${owned} comes from the prompt (its messages), not from providerOptions.pictale`, owned)
  }
  if ('background' in extra) {
    throw new InvalidInputError(
      'invalid_request',
      'an AI SDK call waits for its answer; start a background run with the client (`background: true`) instead',
      'background',
    )
  }
  return extra as Record<string, unknown>
}

function userContent(content: Extract<LanguageModelV3Message, { role: 'user' }>['content']): { text: string; images: ImageInput[] } {
  const texts: string[] = []
  const images: ImageInput[] = []
  for (const part of content) {
    if (part.type === 'text') texts.push(part.text)
    else images.push(pictureOf(part))
  }
  return { text: texts.join('\n\n').trim(), images }
}

function pictureOf(part: LanguageModelV3FilePart): ImageInput {
  // `image/png`, `image/*`, or a bare `image` (the ai package 7 when it cannot tell the type).
  if (!/^image(\/|$)/.test(part.mediaType)) {
    throw new InvalidInputError('invalid_request', `pictale reads pictures only, not ${part.mediaType}`, 'prompt')
  }
  const { data } = part
  if (data instanceof URL) return data.protocol === 'data:' ? data.href : { url: data.href }
  if (typeof data === 'string') return { data, mediaType: part.mediaType }
  return data
}

function onePicture(images: ImageInput[], modelId: PictaleModelId): ImageInput {
  if (images.length !== 1) {
    throw new InvalidInputError(
      'invalid_request',
      `the ${modelId} model reads exactly one picture, in the last user message (it has ${images.length})`,
      'prompt',
    )
  }
  return images[0]!
}

function requireInstruction(text: string): string {
  if (text === '') throw new InvalidInputError('invalid_request', 'the last user message needs text: the instruction to write from', 'prompt')
  return text
}

interface Conversation {
  history: HistoryTurn[] | undefined
  /** The last reasoning of an assistant turn: a pipeline's description of its picture. */
  description: string | undefined
  earlierPictures: number
}

/** Earlier turns as pictale history (text only), with the latest description in them. */
function conversationOf(turns: LanguageModelV3Message[]): Conversation {
  const history: HistoryTurn[] = []
  let description: string | undefined
  let earlierPictures = 0
  for (const turn of turns) {
    if (turn.role !== 'user' && turn.role !== 'assistant') {
      throw new InvalidInputError('invalid_request', 'pictale models do not call tools: a conversation cannot hold tool results', 'prompt')
    }
    const texts: string[] = []
    for (const part of turn.content) {
      if (part.type === 'text') texts.push(part.text)
      else if (part.type === 'reasoning') description = part.text
      else if (part.type === 'file') earlierPictures += 1
      else {
        throw new InvalidInputError('invalid_request', `pictale models do not call tools: a conversation cannot hold a ${part.type} part`, 'prompt')
      }
    }
    history.push({ role: turn.role, content: texts.join('\n\n') })
  }
  return { history: history.length > 0 ? history : undefined, description, earlierPictures }
}
