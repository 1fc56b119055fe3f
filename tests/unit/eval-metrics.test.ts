// Each story metric of `pictale eval` on fixed texts whose answers are known (docs/eval.md).
import { describe, expect, it } from 'vitest'
import { salientNouns, scoreGrounding } from '../../src/eval/metrics/grounding'
import { detectLanguage, scoreLanguage } from '../../src/eval/metrics/language'
import { scoreLength } from '../../src/eval/metrics/length'
import { isTextRefusal } from '../../src/eval/metrics/refusal'
import { distinctN, repeatedOpeningRate, scoreRepetition } from '../../src/eval/metrics/repetition'
import { SLOP_PHRASES, scoreSlop } from '../../src/eval/metrics/slop'
import { scoreTemplateLeaks } from '../../src/eval/metrics/template-leaks'
import { sentences, words } from '../../src/eval/metrics/words'

describe('words and sentences', () => {
  it('counts words across languages, apostrophes and hyphens included', () => {
    expect(words('Não pôde — it’s a well-known café, 42 times!')).toEqual(['não', 'pôde', "it's", 'a', 'well-known', 'café', '42', 'times'])
  })

  it('splits sentences at end punctuation (closing quotes included) and line breaks', () => {
    expect(sentences('“Run!” she said. He ran… Then nothing?\nThe end')).toEqual(['“Run!”', 'she said.', 'He ran…', 'Then nothing?', 'The end'])
  })
})

describe('slop index', () => {
  it('a text with three planted stock phrases scores three', () => {
    const text =
      'Her voice was barely above a whisper. The old lighthouse was a testament to the harbour’s stubbornness, ' +
      'and the wind sent shivers down his spine as the boat turned for home.'
    const slop = scoreSlop(text)
    expect(slop.hits).toBe(3)
    expect(slop.found.map((hit) => hit.phrase).sort()).toEqual(['a testament to', 'barely above a whisper', 'shivers down'])
    expect(slop.per1kWords).toBeCloseTo((3 / words(text).length) * 1000)
  })

  it('matches whole words, case and accents aside, and counts every occurrence', () => {
    expect(scoreSlop('A TAPESTRY of stars; another tapestry.').hits).toBe(2)
    expect(scoreSlop('The tapestryweaver and the delved tunnel.').hits).toBe(0) // not whole words
    expect(scoreSlop('Ela não pôde deixar de rir; ELA NAO PODE DEIXAR DE RIR.').hits).toBe(2)
  })

  it('counts overlapping list entries once (the longest)', () => {
    // "a shiver ran down" and "shiver down" both describe this one cliché; "sent a shiver" is another.
    expect(scoreSlop('A shiver ran down her back.').hits).toBe(1)
  })

  it('a clean text scores zero; a text without words has no score, so it does not pull a mean down', () => {
    expect(scoreSlop('The boat came home at dusk with a hold full of mackerel.')).toEqual({ hits: 0, per1kWords: 0, found: [] })
    expect(scoreSlop('')).toEqual({ hits: 0, per1kWords: null, found: [] })
    expect(scoreSlop(' … ').per1kWords).toBeNull()
  })

  it('bans nothing the bundled pictures show, nor innocent text that contains an entry (the server bans by substring)', () => {
    const innocent = [
      'Um farol de pedra branca guardava o porto, e uma onda de espuma bateu no cais.',
      'O animal sabia o caminho; os animais sabiam esperar.',
      'A wave of cold water hit the boat, and the lighthouse was a beacon of light.',
    ]
    for (const text of innocent) {
      expect(scoreSlop(text).hits, text).toBe(0)
      expect(SLOP_PHRASES.filter((phrase) => text.toLowerCase().includes(phrase.toLowerCase())), text).toEqual([])
    }
    expect(scoreSlop('Mal sabia ela que uma onda de alívio a esperava.').hits).toBe(2)
  })

  it('keeps the list within the server’s banned_phrases limits (the banned-phrases preset sends it)', () => {
    expect(SLOP_PHRASES.length).toBeLessThanOrEqual(256)
    for (const phrase of SLOP_PHRASES) expect(phrase.trim().length).toBeGreaterThan(0)
    expect(new Set(SLOP_PHRASES).size).toBe(SLOP_PHRASES.length)
  })
})

describe('repetition', () => {
  const list = words('the cat sat on the mat the cat sat')

  it('distinct-n on a crafted text', () => {
    // 9 words, 5 distinct: the cat sat on mat
    expect(distinctN(list, 1)).toBeCloseTo(5 / 9)
    // bigrams: the cat, cat sat, sat on, on the, the mat, mat the, the cat, cat sat → 6 of 8
    expect(distinctN(list, 2)).toBeCloseTo(6 / 8)
    // trigrams: the cat sat, cat sat on, sat on the, on the mat, the mat the, mat the cat, the cat sat → 6 of 7
    expect(distinctN(list, 3)).toBeCloseTo(6 / 7)
    expect(distinctN(['one', 'two'], 3)).toBeNull()
  })

  it('the repeated 4-gram rate is the share of 4-grams seen before', () => {
    // 4-grams: the cat sat on, cat sat on the, sat on the mat, on the mat the, the mat the cat, mat the cat sat: all distinct
    expect(scoreRepetition('the cat sat on the mat the cat sat').repeated4gramRate).toBe(0)
    // a b c d a b c d: a b c d, b c d a, c d a b, d a b c, a b c d → 1 repeat of 5
    expect(scoreRepetition('a b c d a b c d').repeated4gramRate).toBeCloseTo(1 / 5)
  })

  it('repeated sentence openings: two-word openings used by an earlier sentence', () => {
    const text = 'She walked to the sea. She walked back. The sea was calm. She stopped. The sea roared.'
    // openings: she walked, she walked (repeat), the sea, she stopped, the sea (repeat) → 2 of 4
    expect(repeatedOpeningRate(text)).toBe(0.5)
    expect(repeatedOpeningRate('Only one sentence here.')).toBeNull()
  })
})

describe('length accuracy', () => {
  it('is 1 at the requested length and falls with the distance', () => {
    const hundred = Array.from({ length: 100 }, () => 'word').join(' ')
    expect(scoreLength(hundred, 100)).toEqual({ targetWords: 100, words: 100, ratio: 1, accuracy: 1 })
    expect(scoreLength(hundred, 200)).toMatchObject({ ratio: 0.5, accuracy: 0.5 })
    expect(scoreLength(hundred, 80)).toMatchObject({ ratio: 1.25, accuracy: 0.75 })
    expect(scoreLength(hundred, 40).accuracy).toBe(0) // off by more than the target
  })
})

describe('language adherence', () => {
  const portuguese =
    'A menina caminhava devagar pela praia enquanto o sol se punha atrás das montanhas. ' +
    'O vento trazia o cheiro do mar, e ela pensava na avó, que lhe contava histórias de pescadores.'
  const english = 'The little girl walked slowly along the beach while the sun set behind the hills, thinking of her grandmother.'

  it('a Portuguese paragraph is identified as Portuguese', () => {
    expect(detectLanguage(portuguese)).toBe('por')
    expect(scoreLanguage(portuguese, 'pt')).toEqual({ expected: 'pt', detected: 'por', adherent: true })
  })

  it('an English answer to a Portuguese instruction does not adhere', () => {
    expect(scoreLanguage(english, 'pt')).toEqual({ expected: 'pt', detected: 'eng', adherent: false })
    expect(scoreLanguage(english, 'en').adherent).toBe(true)
  })

  it('a text too short to tell is undetermined, and does not adhere', () => {
    expect(scoreLanguage('Olá', 'pt')).toEqual({ expected: 'pt', detected: 'und', adherent: false })
  })
})

describe('template-token leaks', () => {
  it('finds chat-template and special tokens, every one', () => {
    const leaks = scoreTemplateLeaks('The end.</s>[INST] Continue [/INST] <|im_start|>assistant and <|eot_id|>')
    expect(leaks).toEqual({ count: 5, tokens: ['</s>', '[INST]', '[/INST]', '<|im_start|>', '<|eot_id|>'] })
  })

  it('leaves ordinary brackets and angle brackets alone', () => {
    expect(scoreTemplateLeaks('He wrote <3 on the [torn] page; a < b, s > t.').count).toBe(0)
  })
})

describe('refusals', () => {
  it('a story that opens with a refusal is one, in English or Portuguese', () => {
    expect(isTextRefusal("I'm sorry, but I can't write that story.")).toBe(true)
    expect(isTextRefusal('  **As an AI**, I cannot…')).toBe(true)
    expect(isTextRefusal('Desculpe, mas não posso escrever essa história.')).toBe(true)
    expect(isTextRefusal('Não posso ajudar com isso.')).toBe(true)
  })

  it('an apology followed by the refusal in the next sentence is one', () => {
    expect(isTextRefusal("I'm sorry. I can't help with that request.")).toBe(true)
    expect(isTextRefusal('Desculpe. Não posso criar essa história.')).toBe(true)
  })

  it('first-person openings of stories are not refusals', () => {
    expect(isTextRefusal("I can't remember the last time the harbour was so quiet.")).toBe(false)
    expect(isTextRefusal('Não consigo dormir, disse o menino.')).toBe(false)
    expect(isTextRefusal("I'm sorry it took me so long to write. The kitchen is just as you left it.")).toBe(false)
    expect(isTextRefusal("I can't help but smile when the boats come in.")).toBe(false)
    expect(isTextRefusal('I cannot forget that night. I cannot write about it without shaking.')).toBe(false) // the cue is not in the first sentence
  })

  it('dialogue and later apologies are not refusals', () => {
    expect(isTextRefusal('“I’m sorry,” she said, and closed the door.')).toBe(false)
    expect(isTextRefusal('The captain said he was sorry. I cannot forget it.')).toBe(false)
    expect(isTextRefusal('Icarus flew too close to the sun.')).toBe(false) // "I" must be the whole word
  })
})

describe('grounding', () => {
  const description = [
    'Setting: a small cottage with a red roof on green grass, on a sunny afternoon.',
    'Characters: none',
    'Mood: calm.',
    'Notable objects: a tree to the right of the cottage, a blue ball on the grass, a yellow sun in the sky, a door.',
  ].join('\n')

  it('takes the description’s most frequent nouns, singular, without headings or generic words', () => {
    const nouns = salientNouns(description)
    expect(nouns.slice(0, 2)).toEqual(['cottage', 'grass']) // twice each
    expect(new Set(nouns)).toEqual(new Set(['cottage', 'grass', 'roof', 'afternoon', 'tree', 'ball', 'sun', 'sky', 'door']))
  })

  it('an English story: the share of those nouns it uses, plurals included', () => {
    const story = 'The cottage stood alone. Two balls lay on the grass, and the sun was warm on the door.'
    const grounding = scoreGrounding(description, story, 'en')
    expect(grounding.used).toEqual(['cottage', 'grass', 'ball', 'sun', 'door'])
    expect(grounding.score).toBeCloseTo(5 / 9)
  })

  it('a Portuguese story: through the glossary, accents aside', () => {
    const story = 'A casa ficava sob o sol. Uma bola rolou pela grama ate a arvore, e a porta abriu-se.'
    const grounding = scoreGrounding(description, story, 'pt')
    expect(grounding.nouns).toHaveLength(9) // every one has a glossary entry
    expect(grounding.used).toEqual(['cottage', 'grass', 'tree', 'ball', 'sun', 'door'])
    expect(grounding.score).toBeCloseTo(6 / 9)
  })

  it('a Portuguese story: nouns without a glossary entry are not counted', () => {
    const grounding = scoreGrounding('A zeppelin over a cottage. The zeppelin is grey.', 'Um dirigível sobre a casa.', 'pt')
    expect(salientNouns('A zeppelin over a cottage. The zeppelin is grey.')).toEqual(['zeppelin', 'cottage'])
    expect(grounding).toEqual({ nouns: ['cottage'], used: ['cottage'], score: 1 })
  })

  it('a noun that is also a name of Object.prototype is just a noun without a glossary entry', () => {
    const description = 'A constructor beside the cottage. The constructor is tall.'
    expect(salientNouns(description)).toEqual(['constructor', 'cottage'])
    const grounding = scoreGrounding(description, 'O construtor ficou junto à casa.', 'pt')
    expect(grounding).toEqual({ nouns: ['cottage'], used: ['cottage'], score: 1 })
  })

  it('is null when nothing can be checked', () => {
    expect(scoreGrounding('', 'A story.', 'en').score).toBeNull()
    expect(scoreGrounding(description, 'Une histoire.', 'fr').score).toBeNull()
  })
})
