import { describe, expect, expectTypeOf, it } from 'vitest'
import type * as z from 'zod/mini'
import {
  DeltaEventDataSchema,
  RunEventDataSchema,
  StageEndEventDataSchema,
  StageStartEventDataSchema,
  StatusEventDataSchema,
} from '../../src/schemas/index'
import type {
  DeltaEvent,
  DoneEvent,
  PipelineEvent,
  PipelineResult,
  ProgressEvent,
  RunEvent,
  Stage,
  StageEndEvent,
  StageResult,
  StageStartEvent,
  StatusEvent,
  TextResult,
  TextRunEvent,
} from '../../src/index'
import { tokenStream } from '../../src/testing'
import { testClient, useMockServer } from './support/mock-server'

// These checks run in `tsc --noEmit` (tests are type-checked); the runtime test below keeps the
// file a test and checks that parsed events really have the shapes the types promise.

type Data<E> = Omit<E, 'type'>

const { mock } = useMockServer()

describe('event types', () => {
  it('are the schemas\' outputs beside `type`, so types and parsing cannot drift apart', () => {
    expectTypeOf<Data<RunEvent>>().toEqualTypeOf<z.output<typeof RunEventDataSchema>>()
    expectTypeOf<Data<StatusEvent>>().toEqualTypeOf<z.output<typeof StatusEventDataSchema>>()
    expectTypeOf<Data<StageStartEvent>>().toEqualTypeOf<z.output<typeof StageStartEventDataSchema>>()
    expectTypeOf<Data<DeltaEvent>>().toEqualTypeOf<z.output<typeof DeltaEventDataSchema>>()
    expectTypeOf<Data<StageEndEvent>>().toEqualTypeOf<z.output<typeof StageEndEventDataSchema>>()
  })

  it('keep the public shapes users compiled against', () => {
    expectTypeOf<RunEvent>().toEqualTypeOf<{ type: 'run'; id: string }>()
    expectTypeOf<StatusEvent>().toEqualTypeOf<{
      type: 'status'
      state: 'queued' | 'loading' | 'running'
      position?: number | undefined
    }>()
    expectTypeOf<StageStartEvent>().toEqualTypeOf<{ type: 'stage-start'; stage: Stage }>()
    expectTypeOf<DeltaEvent>().toEqualTypeOf<{ type: 'delta'; stage: Stage; text: string }>()
    expectTypeOf<StageEndEvent>().branded.toEqualTypeOf<{ type: 'stage-end'; stage: Stage } & StageResult>()
    expectTypeOf<DoneEvent<TextResult>>().toEqualTypeOf<{ type: 'done' } & TextResult>()
    expectTypeOf<TextRunEvent>().toEqualTypeOf<ProgressEvent | DoneEvent<TextResult>>()
    expectTypeOf<PipelineEvent>().toEqualTypeOf<ProgressEvent | DoneEvent<PipelineResult>>()
  })

  it('narrow on `type` in user code, and match what the parser yields', async () => {
    mock({ pipeline: tokenStream({ route: 'pipeline', queuePosition: 3 }) })
    const lines: string[] = []
    for await (const event of testClient().pipeline({ image: 'https://example.com/a.png', instruction: 'Go.' })) {
      switch (event.type) {
        case 'run': lines.push(`run ${event.id}`); break
        case 'status': lines.push(`status ${event.state}${event.position === undefined ? '' : ` ${event.position}`}`); break
        case 'stage-start': lines.push(`start ${event.stage}`); break
        case 'delta': lines.push(`delta ${event.stage} ${event.text.length}`); break
        case 'stage-end': lines.push(`end ${event.stage} ${event.finishReason} ${event.usage.outputTokens}`); break
        case 'done': lines.push(`done ${event.story.finishReason}`); break
        default: expectTypeOf(event).toBeNever()
      }
    }
    expect(lines).toEqual([
      'run run_000000000000000000000001',
      'status queued 3',
      'status running',
      'start describe',
      'delta describe 12',
      'delta describe 17',
      'end describe stop 2',
      'start narrate',
      'delta narrate 16',
      'delta narrate 23',
      'end narrate stop 2',
      'done stop',
    ])
  })
})
