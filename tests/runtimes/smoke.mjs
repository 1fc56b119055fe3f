// The SDK smoke test that every runtime runs unchanged: Node (ESM and CommonJS), Bun, Deno and
// Chromium. Plain JavaScript with no imports and no runtime globals beyond fetch-era web APIs;
// each host loads the installed `pictale` package its own way and hands the module in.
// Throws on the first failed check; resolves with the names of the checks that passed.

/** A 64×64 PNG, sent as bytes (a Uint8Array), not as a path or URL. */
const PNG = Uint8Array.from(
  atob(
    'iVBORw0KGgoAAAANSUhEUgAAAEAAAABACAIAAAAlC+aJAAAAWUlEQVR42u3PQQ0AIAwEsCmZEoQhERGIQcNI7tekBlpnr6gOKwEBAQEBAQEBAQEBAQEBAQEBAQEBAQGBj8CN6jABAQEBAQEBAQEBAQEBAQEBAQEBAQEBgbEHSZdxWkksh+8AAAAASUVORK5CYII=',
  ),
  (char) => char.charCodeAt(0),
)

/** Runs that finish: a few tokens each, which keeps the suite quick on a CPU. */
const SHORT = 8
/**
 * Runs that are stopped after their first delta: seconds of generation on the dev models, so
 * the run is still going when the cancel lands, however slowly a runtime reads its stream.
 */
const LONG = 2_048
/** How soon after abort() (or `break`) the run must end with its abort error. */
const PROMPT_MS = 1_000
/**
 * How long the server may take to show a stopped run as cancelled. Only the SDK's cancel
 * request does it this fast: a dropped stream alone is kept going 10 s for a reconnect.
 */
const CANCEL_SEEN_MS = 3_000

const CONTEXT = 'A small harbour at dusk, fishing boats tied up, gulls on the posts.'
const INSTRUCTION = 'Begin a short story set here.'

/**
 * @param pictale the `pictale` module object, however the host loaded it
 * @param config.baseURL, config.apiKey the client under test
 * @param config.inspect `{ baseURL, apiKey }` that may read runs by id (`GET /v1/runs/{id}`),
 *   to see the server's side of a cancel; defaults to the client's own.
 * @param config.log progress lines
 */
export async function smoke(pictale, { baseURL, apiKey, inspect = { baseURL, apiKey }, log = () => {} }) {
  const client = pictale.createClient({ baseURL, apiKey, maxRetries: 0 })
  const inspector = pictale.createClient({ ...inspect, maxRetries: 0 })
  const passed = []

  async function check(name, body) {
    const started = Date.now()
    try {
      await body()
    } catch (error) {
      throw new Error(`${name}: ${error instanceof Error ? error.message : String(error)}`, { cause: error })
    }
    passed.push(name)
    log(`ok: ${name} (${Date.now() - started} ms)`)
  }

  function isAbortError(error) {
    return error instanceof pictale.UserAbortError && pictale.UserAbortError.is(error)
  }

  /**
   * Starts a long run, lets `stop(run)` stop it and check the client's side, then waits for the
   * server to show it cancelled. A dev-model run sometimes ends on its own (its random weights
   * pick a stop token) before the cancel lands, which says nothing about the SDK: such a run is
   * tried again, at most 3 times.
   */
  async function stopAndCancel(stop) {
    for (let attempt = 1; attempt <= 3; attempt++) {
      const run = client.narrate({ context: CONTEXT, instruction: INSTRUCTION, maxTokens: LONG })
      await stop(run)
      assert(typeof run.id === 'string', 'the run has no id')
      const status = await endOnServer(run.id)
      if (status.state === 'cancelled') return
      const ending = status.result ? ` (${status.result.finishReason} after ${status.result.usage.outputTokens} tokens)` : ''
      const endedByItself = status.state === 'done' && status.result?.finishReason === 'stop'
      if (!endedByItself) throw new Error(`the server shows run ${run.id} as ${status.state}${ending}, not cancelled`)
      log(`run ${run.id} ended on its own${ending} before its cancel landed: once more`)
    }
    throw new Error('3 runs in a row ended on their own before their cancel landed')
  }

  /** The run's status once it ended, or after CANCEL_SEEN_MS. */
  async function endOnServer(runId) {
    const deadline = Date.now() + CANCEL_SEEN_MS
    for (;;) {
      const status = await inspector.runs.get(runId)
      if (['cancelled', 'done', 'error'].includes(status.state) || Date.now() > deadline) return status
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }

  await check('await a result', async () => {
    const result = await client.narrate({ context: CONTEXT, instruction: INSTRUCTION, maxTokens: SHORT })
    assertStageResult(result)
    assert(/^run_[0-9a-f]{24}$/.test(result.id), `result id ${result.id}`)
  })

  await check('image as bytes', async () => {
    const result = await client.describe({ image: PNG, style: 'caption', maxTokens: SHORT })
    assertStageResult(result)
  })

  await check('stream events', async () => {
    const seen = []
    let story = ''
    let done
    const run = client.pipeline({
      image: PNG,
      instruction: INSTRUCTION,
      describe: { maxTokens: SHORT },
      narrate: { maxTokens: SHORT },
    })
    for await (const event of run) {
      seen.push(event.type)
      if (event.type === 'stage-start' || event.type === 'stage-end') seen.push(`${event.type}:${event.stage}`)
      if (event.type === 'delta' && event.stage === 'narrate') story += event.text
      if (event.type === 'done') done = event
    }
    assert(seen[0] === 'run', `first event ${seen[0]}, not run`)
    assert(seen.at(-1) === 'done', `last event ${seen.at(-1)}, not done`)
    const stages = seen.filter((type) => type.includes(':')).join(' ')
    const expected = 'stage-start:describe stage-end:describe stage-start:narrate stage-end:narrate'
    assert(stages === expected, `stages went ${stages}`)
    assert(seen.includes('delta'), 'no delta events')
    assertStageResult(done.description)
    assertStageResult(done.story)
    assert(done.story.text === story, 'the narrate deltas do not add up to the story')
    assert((await run).story.text === story, 'the awaited result differs from the done event')
  })

  await check('abort()', () =>
    stopAndCancel(async (run) => {
      let abortedAt
      let late = 0
      let ended
      try {
        for await (const event of run) {
          if (abortedAt !== undefined) late++
          else if (event.type === 'delta') {
            run.abort()
            abortedAt = Date.now()
          }
        }
        ended = 'the loop ended without an error'
      } catch (error) {
        ended = error
      }
      // A story that ends by itself before its first delta: stopAndCancel sees it done and retries.
      if (abortedAt === undefined && ended === 'the loop ended without an error') return
      assert(abortedAt !== undefined, `the run ended before its first delta: ${describeError(ended)}`)
      const waited = Date.now() - abortedAt
      assert(isAbortError(ended), `the loop ended with ${describeError(ended)}, not a UserAbortError`)
      assert(late === 0, `the loop received ${late} event(s) after abort() returned`)
      assert(waited < PROMPT_MS, `the loop threw ${waited} ms after abort()`)
      const result = await run.then(() => 'a result', (error) => error)
      assert(isAbortError(result), `the run settled with ${describeError(result)}, not a UserAbortError`)
    }),
  )

  await check('break out of for await', () =>
    stopAndCancel(async (run) => {
      for await (const event of run) if (event.type === 'delta') break
      const leftAt = Date.now()
      const result = await run.then((value) => value, (error) => error)
      const waited = Date.now() - leftAt
      // A story that ended by itself at once, its `done` read with its first delta, settled
      // before the loop was left: stopAndCancel sees it done and retries.
      if (result?.finishReason === 'stop') return
      const settled = result?.finishReason ? `a result (${result.finishReason})` : describeError(result)
      assert(isAbortError(result), `the run settled with ${settled}, not a UserAbortError`)
      assert(waited < PROMPT_MS, `the run settled ${waited} ms after the loop was left`)
    }),
  )

  return passed
}

function assert(condition, message) {
  if (!condition) throw new Error(message)
}

function assertStageResult(result) {
  assert(typeof result?.text === 'string', `result text is ${typeof result?.text}`)
  assert(['stop', 'length'].includes(result.finishReason), `finishReason ${result.finishReason}`)
  const tokens = result.usage?.outputTokens
  assert(Number.isInteger(tokens) && tokens <= SHORT, `${tokens} output tokens for max_tokens ${SHORT}`)
}

function describeError(error) {
  if (typeof error === 'string') return error
  return error instanceof Error ? `${error.name} (${error.message})` : String(error)
}
