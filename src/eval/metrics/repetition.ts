import { sentences, words } from './words'

export interface RepetitionScore {
  /** Share of 4-gram occurrences that repeat an earlier one (seq-rep-4); 0 = none repeat. */
  repeated4gramRate: number | null
  /** Distinct n-grams over all n-grams (distinct-n), for n = 1, 2, 3; 1 = no repeats. */
  distinct1: number | null
  distinct2: number | null
  distinct3: number | null
  /** Share of sentences after the first that open with the same two words as an earlier one. */
  repeatedOpeningRate: number | null
}

/** The n-grams of a word list, each joined by a space. */
export function ngrams(list: readonly string[], n: number): string[] {
  const grams: string[] = []
  for (let i = 0; i + n <= list.length; i++) grams.push(list.slice(i, i + n).join(' '))
  return grams
}

/** Distinct n-grams over all n-grams; null when the text has fewer than n words. */
export function distinctN(list: readonly string[], n: number): number | null {
  const grams = ngrams(list, n)
  return grams.length ? new Set(grams).size / grams.length : null
}

/** Share of sentences (from the second on) whose first two words opened an earlier sentence. */
export function repeatedOpeningRate(text: string): number | null {
  const openings = sentences(text).map((sentence) => words(sentence).slice(0, 2).join(' '))
  if (openings.length < 2) return null
  const seen = new Set([openings[0]])
  let repeats = 0
  for (const opening of openings.slice(1)) {
    if (seen.has(opening)) repeats++
    seen.add(opening)
  }
  return repeats / (openings.length - 1)
}

export function scoreRepetition(text: string): RepetitionScore {
  const list = words(text)
  const distinct4 = distinctN(list, 4)
  return {
    repeated4gramRate: distinct4 === null ? null : 1 - distinct4,
    distinct1: distinctN(list, 1),
    distinct2: distinctN(list, 2),
    distinct3: distinctN(list, 3),
    repeatedOpeningRate: repeatedOpeningRate(text),
  }
}
