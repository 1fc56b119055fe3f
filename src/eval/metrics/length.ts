import { words } from './words'

export interface LengthScore {
  targetWords: number
  words: number
  /** words / target: 1 is exact, 0.5 half as long, 2 twice as long. */
  ratio: number
  /** 1 − |words − target| / target, floored at 0: 1 is exact, 0 is off by the target or more. */
  accuracy: number
}

export function scoreLength(text: string, targetWords: number): LengthScore {
  const count = words(text).length
  return {
    targetWords,
    words: count,
    ratio: count / targetWords,
    accuracy: Math.max(0, 1 - Math.abs(count - targetWords) / targetWords),
  }
}
