import type { StageResult } from '../schemas/results'
import { scoreGrounding, type GroundingScore } from './metrics/grounding'
import { scoreLanguage, type LanguageScore } from './metrics/language'
import { scoreLength, type LengthScore } from './metrics/length'
import { isTextRefusal } from './metrics/refusal'
import { scoreRepetition, type RepetitionScore } from './metrics/repetition'
import { scoreSlop, type SlopScore } from './metrics/slop'
import { scoreTemplateLeaks, type TemplateLeakScore } from './metrics/template-leaks'

/** What the writer was asked for. */
export interface StoryRequest {
  language: string
  targetWords: number
}

/** Every metric of one story. */
export interface StoryMetrics {
  slop: SlopScore
  repetition: RepetitionScore
  length: LengthScore
  language: LanguageScore
  templateLeaks: TemplateLeakScore
  /** The model wrote a refusal instead of a story. */
  refusal: boolean
  grounding: GroundingScore
  speed: {
    /** The story's time to first token, from its job's start on the writer (server side). */
    ttftMs: number
    /** The story's decode rate after its first token. */
    tokensPerSecond: number
    /** How long the story waited for the writer. */
    queuedMs: number
    /** The same for the description, on the vision model. */
    describeTtftMs: number
    describeTokensPerSecond: number
  }
}

/** Scores one pipeline result: its story against the request, and against its own description. */
export function scoreStory(request: StoryRequest, description: StageResult, story: StageResult): StoryMetrics {
  return {
    slop: scoreSlop(story.text),
    repetition: scoreRepetition(story.text),
    length: scoreLength(story.text, request.targetWords),
    language: scoreLanguage(story.text, request.language),
    templateLeaks: scoreTemplateLeaks(story.text),
    refusal: isTextRefusal(story.text),
    grounding: scoreGrounding(description.text, story.text, request.language),
    speed: {
      ttftMs: story.timings.firstTokenMs,
      tokensPerSecond: story.timings.tokensPerSecond,
      queuedMs: story.timings.queuedMs,
      describeTtftMs: description.timings.firstTokenMs,
      describeTokensPerSecond: description.timings.tokensPerSecond,
    },
  }
}
