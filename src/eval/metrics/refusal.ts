import refusals from '../assets/refusal-openings.json'
import { escapeRegExp } from './phrase-pattern'
import { foldCase, sentences, words } from './words'

const OPENINGS = Object.values(refusals.openings).flat()
const CUES = Object.values(refusals.cues)

/** Phrases as one RegExp alternation, folded, any whitespace between their words. */
const alternation = (phrases: readonly string[]) =>
  phrases.map((phrase) => escapeRegExp(foldCase(phrase)).replaceAll(' ', '\\s+')).join('|')

// Leading whitespace and markdown (`*`, `#`, `>`, `_`) aside; a quote before it makes it dialogue.
const OPENING = new RegExp(`^[\\s*#>_]*(?:${alternation(OPENINGS)})(?![\\p{L}\\p{N}])`, 'u')
const CUE = new RegExp(
  `(?<![\\p{L}\\p{N}])(?:${CUES.map(
    ({ phrases, refusing, tasks }) => `${alternation(phrases)}|(?:${alternation(refusing)})\\s+(?:${alternation(tasks)})`,
  ).join('|')})(?![\\p{L}\\p{N}])`,
  'u',
)
const BARE_OPENINGS = new Set(OPENINGS.map((opening) => words(foldCase(opening)).join(' ')))

/** The sentence the refusal's reason would be in: the first, and the second after a bare "I'm sorry.". */
function leadingText(text: string): string {
  const [first = '', second = ''] = sentences(text)
  return BARE_OPENINGS.has(words(foldCase(first)).join(' ')) ? `${first} ${second}` : first
}

/**
 * Whether a story is a refusal written by the model ("I'm sorry, but I can't…"): it opens with a
 * refusal formula and its first sentence says what it will not do. An opening alone is not enough:
 * "I can't remember…" and "Não consigo dormir…" begin stories.
 */
export function isTextRefusal(text: string): boolean {
  return OPENING.test(foldCase(text)) && CUE.test(foldCase(leadingText(text)))
}
