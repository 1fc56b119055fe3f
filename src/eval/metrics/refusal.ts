import refusals from '../assets/refusal-openings.json'
import { escapeRegExp } from './phrase-pattern'
import { foldCase } from './words'

const OPENINGS = Object.values(refusals.openings)
  .flat()
  .map((opening) => escapeRegExp(foldCase(opening)))
// Leading whitespace and markdown (`*`, `#`, `>`, `_`) aside; a quote before it makes it dialogue.
const REFUSAL = new RegExp(`^[\\s*#>_]*(?:${OPENINGS.join('|')})(?![\\p{L}\\p{N}])`, 'u')

/** Whether a story is a refusal written by the model ("I'm sorry, but I can't…"). */
export function isTextRefusal(text: string): boolean {
  return REFUSAL.test(foldCase(text))
}
