// `pictale eval` refuses bad input before it sends anything, with a message and the documented
// exit code (src/cli/exit-codes.ts); the runs themselves are tests/integration/eval.test.ts.
import { describe, expect, it } from 'vitest'
import { EXIT } from '../../src/cli/exit-codes'
import { runCli } from '../../src/cli/run-cli'

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
