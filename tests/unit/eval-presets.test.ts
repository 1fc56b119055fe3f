// Sampler presets of `pictale eval`: the bundled ones, a presets file, and the errors for bad ones.
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { EvalUsageError } from '../../src/eval/eval-usage-error'
import { SLOP_PHRASES } from '../../src/eval/metrics/slop'
import { BUNDLED_PRESETS, readPresetsFile, selectPresets } from '../../src/eval/presets'

const folder = mkdtempSync(join(tmpdir(), 'pictale-presets-'))
function presetsFile(content: string): string {
  const path = join(folder, `presets-${Math.random().toString(36).slice(2)}.json`)
  writeFileSync(path, content)
  return path
}

async function rejection(promise: Promise<unknown>): Promise<EvalUsageError> {
  const error = await promise.then(
    () => undefined,
    (reason: unknown) => reason,
  )
  expect(error).toBeInstanceOf(EvalUsageError)
  return error as EvalUsageError
}

describe('bundled presets', () => {
  it('plain, dry, dry+xtc and banned-phrases, with the samplers’ suggested values', () => {
    expect(Object.keys(BUNDLED_PRESETS)).toEqual(['plain', 'dry', 'dry+xtc', 'banned-phrases'])
    expect(BUNDLED_PRESETS.plain).toEqual({})
    expect(BUNDLED_PRESETS.dry).toEqual({ dryMultiplier: 0.8, dryBase: 1.75, dryAllowedLength: 2 })
    expect(BUNDLED_PRESETS['dry+xtc']).toEqual({ ...BUNDLED_PRESETS.dry, xtcThreshold: 0.1, xtcProbability: 0.5 })
    expect(BUNDLED_PRESETS['banned-phrases']).toEqual({ bannedPhrases: SLOP_PHRASES })
  })

  it('selected by name, in the order given; all of them by default', () => {
    expect(selectPresets(['dry', 'plain'], []).map((preset) => preset.name)).toEqual(['dry', 'plain'])
    expect(selectPresets(undefined, []).map((preset) => preset.name)).toEqual(Object.keys(BUNDLED_PRESETS))
  })

  it('an unknown name is an error that lists the available ones', () => {
    expect(() => selectPresets(['dry', 'dyr'], [])).toThrow(EvalUsageError)
    expect(() => selectPresets(['dyr'], [])).toThrow('unknown preset "dyr"; available: plain, dry, dry+xtc, banned-phrases')
  })
})

describe('a presets file', () => {
  it('adds its presets after the bundled ones, and they can be chosen by name', async () => {
    const path = presetsFile(JSON.stringify({ warm: { temperature: 1.1, minP: 0.1 }, 'no-rep': { repetitionPenalty: 1 } }))
    const fromFile = await readPresetsFile(path)
    expect(fromFile).toEqual([
      { name: 'warm', sampling: { temperature: 1.1, minP: 0.1 }, source: path },
      { name: 'no-rep', sampling: { repetitionPenalty: 1 }, source: path },
    ])
    expect(selectPresets(undefined, fromFile).map((preset) => preset.name)).toEqual([...Object.keys(BUNDLED_PRESETS), 'warm', 'no-rep'])
    expect(selectPresets(['warm', 'plain'], fromFile).map((preset) => preset.name)).toEqual(['warm', 'plain'])
  })

  it('unreadable, not JSON, or not an object: a clear error naming the file', async () => {
    const missing = join(folder, 'missing.json')
    expect((await rejection(readPresetsFile(missing))).message).toMatch(/^cannot read the presets file .*missing\.json: ENOENT/)
    expect((await rejection(readPresetsFile(presetsFile('{ warm: ')))).message).toMatch(/is not JSON/)
    expect((await rejection(readPresetsFile(presetsFile('[1, 2]')))).message).toMatch(/must hold one object/)
  })

  it('a misspelt field, a wrong type, or a field the harness sets: an error naming preset and field', async () => {
    const misspelt = await rejection(readPresetsFile(presetsFile(JSON.stringify({ warm: { temprature: 1.1 } }))))
    expect(misspelt.message).toMatch(/preset "warm": unknown field temprature/)
    const wrongType = await rejection(readPresetsFile(presetsFile(JSON.stringify({ warm: { temperature: 'hot' } }))))
    expect(wrongType.message).toMatch(/preset "warm": temperature must be a number/)
    const harness = await rejection(readPresetsFile(presetsFile(JSON.stringify({ long: { maxTokens: 2000 } }))))
    expect(harness.message).toMatch(/maxTokens is set by the harness \(--max-tokens\)/)
    const notObject = await rejection(readPresetsFile(presetsFile(JSON.stringify({ warm: 1.1 }))))
    expect(notObject.message).toMatch(/must be an object of sampling fields/)
  })

  it('a name that is also a name of Object.prototype is an ordinary name', async () => {
    const path = presetsFile(JSON.stringify({ constructor: { temperature: 0.7 }, toString: {} }))
    expect((await readPresetsFile(path)).map((preset) => preset.name)).toEqual(['constructor', 'toString'])
  })

  it('a bundled preset’s name or an odd name is refused', async () => {
    expect((await rejection(readPresetsFile(presetsFile(JSON.stringify({ dry: {} }))))).message).toMatch(/a bundled preset has that name/)
    expect((await rejection(readPresetsFile(presetsFile(JSON.stringify({ 'a b': {} }))))).message).toMatch(/a name is 1–40 letters/)
  })
})
