// `npm run eval`: runs `pictale eval` from the sources, against a local dev server it starts and
// always stops again, or against the deployment the arguments or environment name.
import { EXIT } from '../../src/cli/exit-codes'
import { runCli, type CliIO } from '../../src/cli/run-cli'
import { createClient } from '../../src/index'
import { startLocalServer } from './local-server'

const io: CliIO = {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  onInterrupt: (stop) => process.once('SIGINT', stop),
}

export async function evalInRepo(args: string[], { startServer }: { startServer: boolean }): Promise<number> {
  if (!startServer) return runCli(['eval', ...args], io)
  process.stderr.write('› starting a local pictale server (dev profile: tiny random-weight models, so the numbers mean nothing)\n')
  const server = await startLocalServer()
  try {
    try {
      await createClient({ baseURL: server.url }).waitUntilReady({ timeoutMs: 5 * 60_000, intervalMs: 500 })
    } catch (error) {
      process.stderr.write(`the local server did not start: ${(error as Error).message}\n${server.output()}\n`)
      return EXIT.unavailable
    }
    return await runCli(['eval', ...args, '--url', server.url], io)
  } finally {
    await server.stop()
  }
}
