import slopList from '../assets/slop-phrases.json'
import { wholePhrasePattern } from './phrase-pattern'
import { foldCase, words } from './words'

/** The stock phrases the slop index looks for (every language's at once). */
export const SLOP_PHRASES: readonly string[] = Object.values(slopList.phrases).flat()

export interface SlopScore {
  /** Stock phrases found (each occurrence counts; overlapping entries count once). */
  hits: number
  /** Hits per 1,000 words: EQ-Bench's slop index with every phrase weighted 1; null for a story without words. */
  per1kWords: number | null
  /** Which phrases, most frequent first. */
  found: { phrase: string; count: number }[]
}

const patternFor = (phrases: readonly string[]) => wholePhrasePattern(phrases.map(foldCase))
const defaultPattern = patternFor(SLOP_PHRASES)

/** Counts the stock phrases in a text, case and accents aside. */
export function scoreSlop(text: string, phrases: readonly string[] = SLOP_PHRASES): SlopScore {
  const pattern = phrases === SLOP_PHRASES ? defaultPattern : patternFor(phrases)
  const counts = new Map<string, number>()
  for (const [match] of foldCase(text).matchAll(pattern)) counts.set(match, (counts.get(match) ?? 0) + 1)
  const hits = [...counts.values()].reduce((sum, count) => sum + count, 0)
  const wordCount = words(text).length
  return {
    hits,
    per1kWords: wordCount ? (hits / wordCount) * 1000 : null,
    found: [...counts].map(([phrase, count]) => ({ phrase, count })).sort((a, b) => b.count - a.count),
  }
}
