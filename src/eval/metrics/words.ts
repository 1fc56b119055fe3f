// Words and sentences as every metric counts them, for any language written with spaces.

const WORD = /[\p{L}\p{N}]+(?:['’-][\p{L}\p{N}]+)*/gu
// A sentence ends at . ! ? … (with any closing quotes or brackets) before whitespace, or at a line break.
const SENTENCE_END = /(?<=[.!?…]+["'”’»)\]]*)\s+|\n+/u

/** The words of a text, lowercased, apostrophes unified (’ → '). */
export function words(text: string): string[] {
  return (text.normalize('NFC').match(WORD) ?? []).map((word) => word.toLowerCase().replaceAll('’', "'"))
}

/** The text split into sentences, each trimmed; empty ones dropped. */
export function sentences(text: string): string[] {
  return text
    .split(SENTENCE_END)
    .map((sentence) => sentence.trim())
    .filter((sentence) => words(sentence).length > 0)
}

/** Lowercase with accents removed, for matching word lists across spellings ("sóis" = "sois"). */
export function foldCase(text: string): string {
  return text.normalize('NFD').replace(/\p{Mn}/gu, '').toLowerCase().replaceAll('’', "'")
}
