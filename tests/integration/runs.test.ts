// describe, narrate and pipeline against the live dev-profile server: awaited, streamed, and
// with every event in the order docs/protocol.md gives.
import { describe, expect, it } from 'vitest'
import type { PipelineEvent, TextRunEvent } from '../../src/index'
import { SAMPLE_IMAGE, collect, liveClient } from './support'

/** `type[:stage]` per event, statuses dropped (how many arrive depends on timing). */
function shape(events: (TextRunEvent | PipelineEvent)[]): string[] {
  return events
    .filter((event) => event.type !== 'status')
    .map((event) => ('stage' in event ? `${event.type}:${event.stage}` : event.type))
    .filter((step, index, steps) => !(step.startsWith('delta') && steps[index - 1] === step))
}

function deltaText(events: (TextRunEvent | PipelineEvent)[], stage: string): string {
  return events.map((event) => (event.type === 'delta' && event.stage === stage ? event.text : '')).join('')
}

describe('describe', () => {
  it('awaited: a description of the sample from the vision model', async () => {
    const result = await liveClient().describe({ image: SAMPLE_IMAGE, style: 'caption', maxTokens: 16 })
    expect(result.id).toMatch(/^run_[0-9a-f]{24}$/)
    expect(result.model).toContain('qwen2.5-vl')
    expect(result.usage.outputTokens).toBeGreaterThan(0)
    expect(result.usage.outputTokens).toBeLessThanOrEqual(16)
    expect(['stop', 'length']).toContain(result.finishReason)
  })

  it('streamed: run, stage-start, deltas, stage-end, done, and the deltas are the text', async () => {
    const run = liveClient().describe({ image: SAMPLE_IMAGE, maxTokens: 16, temperature: 0 })
    const events = await collect(run)
    expect(shape(events)).toEqual(['run', 'stage-start:describe', 'delta:describe', 'stage-end:describe', 'done'])
    const result = await run
    expect(events[0]).toEqual({ type: 'run', id: result.id })
    expect(deltaText(events, 'describe')).toBe(result.text)
  })
})

describe('narrate', () => {
  it('awaited and streamed from one request', async () => {
    const run = liveClient().narrate({ instruction: 'Write one line about a lighthouse.', maxTokens: 12, temperature: 0 })
    const texts: string[] = []
    for await (const text of run.textStream) texts.push(text)
    const result = await run
    expect(texts.join('')).toBe(result.text)
    expect(result.model).toContain('mistral-nemo')
    expect(result.usage.outputTokens).toBeLessThanOrEqual(12)
  })

  it('is deterministic for a seed', async () => {
    const request = { instruction: 'Write one line about a harbour.', maxTokens: 12, seed: 7 }
    const [first, second] = [await liveClient().narrate(request), await liveClient().narrate(request)]
    expect(second.text).toBe(first.text)
  })
})

describe('pipeline', () => {
  it('streams the describe stage, then the narrate stage, then done', async () => {
    const run = liveClient().pipeline({
      image: SAMPLE_IMAGE,
      instruction: 'Write a short story about this place.',
      describe: { maxTokens: 16 },
      narrate: { maxTokens: 16 },
    })
    const events = await collect(run)
    expect(shape(events)).toEqual([
      'run',
      'stage-start:describe', 'delta:describe', 'stage-end:describe',
      'stage-start:narrate', 'delta:narrate', 'stage-end:narrate',
      'done',
    ])
    const { description, story } = await run
    expect(deltaText(events, 'describe')).toBe(description.text)
    expect(deltaText(events, 'narrate')).toBe(story.text)
    expect(description.model).toContain('qwen2.5-vl')
    expect(story.model).toContain('mistral-nemo')
  })

  it('awaited: both stage results', async () => {
    const result = await liveClient().pipeline({
      image: SAMPLE_IMAGE,
      instruction: 'A bedtime story.',
      describe: { maxTokens: 8 },
      narrate: { maxTokens: 8 },
    })
    expect(result.description.usage.outputTokens).toBeGreaterThan(0)
    expect(result.story.usage.outputTokens).toBeGreaterThan(0)
    expect(result.story.usage.inputTokens).toBeGreaterThan(result.description.usage.outputTokens)
  })
})
