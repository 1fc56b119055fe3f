// Every example, run the way the README says (tsx), against the live server.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { createClient } from '../../src/index'
import { ROOT } from '../../scripts/lib/local-server'
import { liveServer } from './support'

interface Finished {
  code: number | null
  stdout: string
  stderr: string
}

function start(example: string, args: string[], env: Record<string, string> = {}): ChildProcess {
  const { key } = liveServer()
  return spawn(process.execPath, ['--import', 'tsx', `examples/${example}`, ...args], {
    cwd: ROOT,
    env: { ...process.env, PICTALE_API_KEY: key, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
}

async function runExample(example: string, args: string[], env: Record<string, string> = {}): Promise<Finished> {
  const child = start(example, args, env)
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk))
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk))
  const [code] = (await once(child, 'exit')) as [number | null]
  return { code, stdout, stderr }
}

/** No ANSI escapes or other control characters but newlines and tabs (the output is piped). */
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/

describe('examples', () => {
  it('pipeline.ts streams both stages under their headings', async () => {
    const { url } = liveServer()
    const result = await runExample('pipeline.ts', ['--base-url', url, '--instruction', 'A short fable.'])
    expect(result.stderr).toBe('')
    expect(result.code).toBe(0)
    const describeAt = result.stdout.indexOf('1 · describe')
    const narrateAt = result.stdout.indexOf('2 · narrate')
    expect(describeAt).toBeGreaterThan(0)
    expect(narrateAt).toBeGreaterThan(describeAt)
    expect(result.stdout).toMatch(/done: \d+ tokens in two stages \(run run_[0-9a-f]{24}\)/)
    expect(result.stdout).not.toMatch(CONTROL)
  })

  it('describe.ts prints a description and its stats', async () => {
    const result = await runExample('describe.ts', ['--base-url', liveServer().url, '--style', 'caption'])
    expect(result.code).toBe(0)
    expect(result.stdout).toContain('describe (caption): examples/assets/sample.png')
    expect(result.stdout).toMatch(/\(\d+ tokens, \d+ tokens\/s, finished: (stop|length), model pictale-dev\/tiny-qwen2\.5-vl\)/)
  })

  it('narrate.ts writes from an instruction, with the base URL from PICTALE_BASE_URL', async () => {
    const result = await runExample('narrate.ts', ['--instruction', 'One line about rain.', '--max-tokens', '8'], {
      PICTALE_BASE_URL: liveServer().url,
    })
    expect(result.code).toBe(0)
    expect(result.stdout).toMatch(/\(\d+ tokens, .*model pictale-dev\/tiny-mistral-nemo\)/)
  })

  it('an example explains a refused key instead of a stack trace', async () => {
    const result = await runExample('narrate.ts', ['--base-url', liveServer().url], { PICTALE_API_KEY: '' })
    expect(result.code).toBe(1)
    expect(result.stderr).toContain('wants an API key: set PICTALE_API_KEY')
  })

  it('proxy-server.ts keeps the key server-side, relays the stream, and aborts upstream when the browser leaves', async () => {
    const proxy = start('proxy-server.ts', ['--port', '0', '--base-url', liveServer().url])
    try {
      let log = ''
      proxy.stdout!.on('data', (chunk: Buffer) => (log += chunk))
      const [line] = (await once(proxy.stdout!, 'data')) as [Buffer]
      const proxyURL = /proxy: (\S+)/.exec(String(line))![1]!

      // The "browser" has no key; the proxy adds it.
      const browser = createClient({ baseURL: proxyURL, maxRetries: 0 })
      const types: string[] = []
      const run = browser.pipeline({ image: readFileSync('examples/assets/sample.png'), instruction: 'A fable.', describe: { maxTokens: 8 }, narrate: { maxTokens: 8 } })
      for await (const event of run) if (types.at(-1) !== event.type) types.push(event.type)
      expect(types.filter((type) => type !== 'status')).toEqual([
        'run', 'stage-start', 'delta', 'stage-end', 'stage-start', 'delta', 'stage-end', 'done',
      ])
      // Runs by id pass too: their state, and their events from a point on (how a stream resumes).
      expect(await browser.runs.get(run.id!)).toMatchObject({ id: run.id, state: 'done' })
      const replayed: string[] = []
      for await (const event of browser.runs.stream(run.id!, { after: 6 })) replayed.push(event.type)
      expect(replayed.at(-1)).toBe('done')
      expect(replayed).not.toContain('run') // event 1: Last-Event-ID reached the server

      // The browser hangs up mid-stream; the proxy aborts its upstream request.
      const long = browser.narrate({ instruction: 'A very long story.', temperature: 0, maxTokens: 4096 })
      for await (const event of long) if (event.type === 'delta') break
      await expect.poll(() => log, { timeout: 10_000 }).toContain('browser left during /v1/narrate: upstream request aborted')
    } finally {
      proxy.kill()
    }
  })
})
