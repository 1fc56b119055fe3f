// `pictale eval` refuses bad input before it sends anything, with a message and the documented
// exit code (src/cli/exit-codes.ts); the runs themselves are tests/integration/eval.test.ts.
import { describe, expect, it } from 'vitest'
import { planJobs } from '../../src/cli/eval-command'
import { DEFAULT_CONCURRENCY } from '../../src/cli/eval-options'
import { EXIT, describeFailure } from '../../src/cli/exit-codes'
import { runCli } from '../../src/cli/run-cli'
import { StreamError } from '../../src/index'

async function pictale(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = ''
  let stderr = ''
  const code = await runCli(argv, {
    stdout: { write: (text: string) => (stdout += text) },
    stderr: { write: (text: string) => (stderr += text) },
    env: {},
    onInterrupt: () => {},
  })
  return { code, stdout, stderr }
}

// Nothing listens on port 9 (discard): a connection there fails at once.
const NOWHERE = ['--url', 'http://127.0.0.1:9']

describe('pictale eval, bad input', () => {
  it('an unknown preset: exit 2, naming it and the available ones', async () => {
    const { code, stderr } = await pictale('eval', '--presets', 'plain,nope', ...NOWHERE)
    expect(code).toBe(EXIT.usage)
    expect(stderr).toMatch(/unknown preset "nope"; available: plain, dry, dry\+xtc, banned-phrases/)
  })

  it('an unreadable presets file: exit 2, naming the file', async () => {
    const { code, stderr } = await pictale('eval', '--presets-file', '/nonexistent/presets.json', ...NOWHERE)
    expect(code).toBe(EXIT.usage)
    expect(stderr).toMatch(/cannot read the presets file \/nonexistent\/presets\.json/)
  })

  it('an empty list of prompts or presets: exit 2, before anything is sent', async () => {
    const prompts = await pictale('eval', '--prompts', ',', ...NOWHERE)
    expect(prompts.code).toBe(EXIT.usage)
    expect(prompts.stderr).toMatch(/--prompts names at least one prompt/)
    expect(prompts.stderr).not.toMatch(/NaN/)
    expect((await pictale('eval', '--presets', ' , ', ...NOWHERE)).stderr).toMatch(/--presets names at least one preset/)
  })

  it('an unknown prompt, a bad number, or a stray argument: exit 2', async () => {
    expect((await pictale('eval', '--prompts', 'en-nothing', ...NOWHERE)).stderr).toMatch(/unknown prompt "en-nothing"; the bundled ones are en-bedtime-cottage/)
    expect((await pictale('eval', '--limit', '0', ...NOWHERE)).stderr).toMatch(/--limit takes a whole number from 1 to 10000, not "0"/)
    expect((await pictale('eval', '--concurrency', 'many', ...NOWHERE)).code).toBe(EXIT.usage)
    expect((await pictale('eval', 'extra', ...NOWHERE)).stderr).toMatch(/eval takes options only/)
  })

  it('eval options on another command: exit 2', async () => {
    const { code, stderr } = await pictale('health', '--presets', 'dry', ...NOWHERE)
    expect(code).toBe(EXIT.usage)
    expect(stderr).toMatch(/--presets: only for eval/)
  })

  it('a server URL that is not one: exit 2, for eval and every other command', async () => {
    for (const command of ['eval', 'health']) {
      const { code, stderr } = await pictale(command, '--url', 'notaurl')
      expect(code).toBe(EXIT.usage)
      expect(stderr).toMatch(/the server URL "notaurl" \(--url or PICTALE_BASE_URL\): baseURL must be an http\(s\):\/\/ URL/)
    }
  })

  it('a server nobody answers at: exit 3', async () => {
    const { code, stderr } = await pictale('eval', '--limit', '1', '--presets', 'plain', ...NOWHERE)
    expect(code).toBe(EXIT.unavailable)
    expect(stderr).toMatch(/could not reach http:\/\/127\.0\.0\.1:9/)
  })
})

describe('models that fail to load', () => {
  const failedToLoad = () =>
    new StreamError('not_ready', 'The models failed to load', { retryable: false, state: 'failed', reason: 'out_of_memory' })

  it('mid-stream (a not_ready error event, state failed): exit 3, as for a 503', () => {
    expect(describeFailure(failedToLoad())).toEqual({ code: EXIT.unavailable, message: 'The models failed to load (out_of_memory)' })
  })

  it('recognised by its brand, as an error of another copy of the package is', () => {
    const fromAnotherCopy = Object.assign(new Error('The models failed to load'), { state: 'failed' })
    Object.defineProperty(fromAnotherCopy, Symbol.for('pictale.error.kinds'), { value: ['StreamError', 'PictaleError'] })
    expect(describeFailure(fromAnotherCopy).code).toBe(EXIT.unavailable)
  })

  it('other stream errors stay exit 5', () => {
    expect(describeFailure(new StreamError('internal_error', 'boom', { retryable: false })).code).toBe(EXIT.failed)
  })
})

describe('seeds', () => {
  const settings = { presets: ['plain', 'dry'], concurrency: DEFAULT_CONCURRENCY, seed: 40, outDir: 'unused' }
  const seedsOf = async (prompts?: string[]) =>
    Object.fromEntries((await planJobs({ ...settings, ...(prompts ? { prompts } : {}) })).map((job) => [job.prompt.id, job.seed]))

  it('a prompt has the same seed in a run of a few prompts as in a run of all', async () => {
    const all = await seedsOf()
    expect(all['en-bedtime-cottage']).toBe(40)
    expect(all['pt-infantil-cottage']).toBe(49)
    expect(await seedsOf(['pt-infantil-cottage', 'pt-fabula-park'])).toEqual({
      'pt-fabula-park': all['pt-fabula-park'],
      'pt-infantil-cottage': all['pt-infantil-cottage'],
    })
  })

  it('one seed per prompt under every preset', async () => {
    const jobs = await planJobs({ ...settings, prompts: ['pt-misterio-harbour'] })
    expect(jobs.map((job) => [job.preset.name, job.seed])).toEqual([['plain', 43], ['dry', 43]])
  })
})
