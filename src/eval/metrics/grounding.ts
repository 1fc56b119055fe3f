import nlp from 'compromise/two'
import glossaryFile from '../assets/noun-glossary-pt.json'
import { wholePhrasePattern } from './phrase-pattern'
import { foldCase } from './words'

/** How many of the description's nouns are checked: the most frequent ones. */
export const SALIENT_NOUN_COUNT = 10

// The scene style's headings ("Setting:", "Notable objects:") are the template, not the picture.
const HEADING = /^[ \t]*[\p{L} ]{1,30}:/gmu
// Nouns that describe the picture or the description itself rather than what is in it.
const GENERIC_NOUNS = new Set([
  'none', 'picture', 'image', 'photo', 'photograph', 'illustration', 'drawing', 'scene', 'setting', 'mood',
  'lighting', 'character', 'object', 'detail', 'part', 'side', 'left', 'right', 'top', 'bottom', 'middle',
  'center', 'centre', 'background', 'foreground', 'front', 'back', 'corner', 'area', 'shape', 'color',
  'colour', 'tone', 'atmosphere', 'sense', 'feeling', 'way', 'thing', 'something', 'kind', 'sort', 'type',
  'lot', 'bit', 'view', 'edge', 'position', 'time', 'story', 'storyteller',
])
const PORTUGUESE = new Map<string, string[]>(Object.entries(glossaryFile.glossary))

interface Term {
  normal: string
  /** The dictionary form compromise computes (singular nouns, infinitive verbs), when it has one. */
  root?: string
  tags: string[]
}

function termsOf(text: string): Term[] {
  const doc = nlp(text)
  doc.compute('root')
  return (doc.json() as { terms: Term[] }[]).flatMap((sentence) => sentence.terms)
}

const lemmaOf = (term: Term) => term.root ?? term.normal

/** The description's most frequent nouns (singular, lowercase), most frequent first; English only. */
export function salientNouns(description: string, limit = SALIENT_NOUN_COUNT): string[] {
  const counts = new Map<string, { count: number; first: number }>()
  termsOf(description.replace(HEADING, ' ')).forEach((term, index) => {
    if (!term.tags.includes('Noun') || term.tags.includes('Pronoun')) return
    const lemma = lemmaOf(term)
    if (lemma.length < 3 || !/^\p{L}+$/u.test(lemma) || GENERIC_NOUNS.has(lemma)) return
    const seen = counts.get(lemma)
    if (seen) seen.count++
    else counts.set(lemma, { count: 1, first: index })
  })
  return [...counts]
    .sort(([, a], [, b]) => b.count - a.count || a.first - b.first)
    .slice(0, limit)
    .map(([lemma]) => lemma)
}

export interface GroundingScore {
  /** The description's nouns that were checked. */
  nouns: string[]
  /** Those the story uses. */
  used: string[]
  /** used / nouns; null when no noun could be checked (an empty description, or no glossary entry). */
  score: number | null
}

/** How many of the description's salient nouns the story uses (English, or Portuguese through a glossary). */
export function scoreGrounding(description: string, story: string, language: string): GroundingScore {
  const salient = salientNouns(description)
  let nouns: string[]
  let used: string[]
  if (language === 'en') {
    const storyWords = new Set(termsOf(story).flatMap((term) => [term.normal, lemmaOf(term)]))
    nouns = salient
    used = nouns.filter((noun) => storyWords.has(noun))
  } else if (language === 'pt') {
    const folded = foldCase(story)
    nouns = salient.filter((noun) => PORTUGUESE.has(noun))
    used = nouns.filter((noun) => wholePhrasePattern(PORTUGUESE.get(noun)!.map(foldCase)).test(folded))
  } else {
    nouns = []
    used = []
  }
  return { nouns, used, score: nouns.length ? used.length / nouns.length : null }
}
