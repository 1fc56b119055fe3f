import tokens from '../assets/template-tokens.json'
import { escapeRegExp } from './phrase-pattern'

const LEAK = new RegExp([...tokens.literals.map(escapeRegExp), ...tokens.patterns].join('|'), 'g')

export interface TemplateLeakScore {
  /** Template or special tokens found in the text. */
  count: number
  /** Which ones, in order of appearance (repeats kept). */
  tokens: string[]
}

/** Finds chat-template tokens (`[INST]`, `<|im_start|>`, `</s>`, …) in a story. */
export function scoreTemplateLeaks(text: string): TemplateLeakScore {
  const found = [...text.matchAll(LEAK)].map(([token]) => token)
  return { count: found.length, tokens: found }
}
