import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import promptSet from './assets/prompts.json'
import { EvalUsageError } from './eval-usage-error'

/** One bundled prompt: a picture, an instruction in some language, its genre and requested length. */
export interface EvalPrompt {
  id: string
  /** A file in the pictures folder. */
  picture: string
  /** The instruction's language (BCP 47): the story should be in it. */
  language: string
  genre: string
  /** The length the instruction asks for, in words. */
  targetWords: number
  instruction: string
}

export const PROMPTS: readonly EvalPrompt[] = promptSet.prompts

// The pictures ship beside the code: next to this file in the sources, under src/ in the package
// (dist/ holds the bundled CLI).
const PICTURE_FOLDERS = ['./assets/pictures/', '../src/eval/assets/pictures/']

/** The folder of the bundled pictures. */
export function picturesFolder(): string {
  for (const folder of PICTURE_FOLDERS) {
    const path = fileURLToPath(new URL(folder, import.meta.url))
    if (existsSync(`${path}${PROMPTS[0]!.picture}`)) return path
  }
  throw new Error(`the bundled pictures are missing (looked in ${PICTURE_FOLDERS.join(' and ')} from ${import.meta.url})`)
}

/** The prompts to run: those named (in the set's order), else all; then the first `limit`. */
export function selectPrompts(ids?: string[], limit?: number): EvalPrompt[] {
  const unknown = (ids ?? []).filter((id) => !PROMPTS.some((prompt) => prompt.id === id))
  if (unknown.length) {
    throw new EvalUsageError(
      `unknown prompt${unknown.length > 1 ? 's' : ''} ${unknown.map((id) => JSON.stringify(id)).join(', ')}; ` +
        `the bundled ones are ${PROMPTS.map((prompt) => prompt.id).join(', ')}`,
    )
  }
  const chosen = ids ? PROMPTS.filter((prompt) => ids.includes(prompt.id)) : [...PROMPTS]
  return chosen.slice(0, limit)
}

/** The story's token budget: room for the requested words in any of the set's languages. */
export function storyMaxTokens(prompt: EvalPrompt): number {
  // Generous (English prose is ~1.3 tokens a word, other languages more) so that the length metric
  // sees where the model chose to stop, not where the budget cut it.
  return Math.min(4096, Math.ceil(prompt.targetWords * 2.5))
}
