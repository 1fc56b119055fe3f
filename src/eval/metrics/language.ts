import { franc } from 'franc-min'

/** The prompt set's languages (BCP 47) and the ISO 639-3 codes franc answers with. */
const ISO_639_3: Record<string, string> = { en: 'eng', pt: 'por' }

export interface LanguageScore {
  /** The language the instruction asked in (BCP 47, e.g. `pt`). */
  expected: string
  /** What franc detected (ISO 639-3, e.g. `por`); `und` when the text is too short to tell. */
  detected: string
  /** The story is in the instruction's language. */
  adherent: boolean
}

/** Detects a text's language (ISO 639-3) with franc-min, or `und`. */
export function detectLanguage(text: string): string {
  return franc(text)
}

export function scoreLanguage(text: string, expected: string): LanguageScore {
  const detected = detectLanguage(text)
  return { expected, detected, adherent: detected === (ISO_639_3[expected] ?? expected) }
}
