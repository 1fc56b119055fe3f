// `npm run eval`: runs `pictale eval` from the sources, against a local dev server it starts and
// always stops again, or against the deployment the arguments or environment name.
import { EXIT } from '../../src/cli/exit-codes'
import { runCli, type CliIO } from '../../src/cli/run-cli'
import { createClient } from '../../src/index'
import { startLocalServer, type LocalServer } from './local-server'

const io: CliIO = {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  onInterrupt: (stop) => process.once('SIGINT', stop),
}

export async function evalInRepo(args: string[], { startServer }: { startServer: boolean }): Promise<number> {
  if (!startServer) return runCli(['eval', ...args], io)

  // The server has its own process group, so a Ctrl-C in the terminal does not reach it, and a
  // signal ends Node without its 'exit' event: stop the server here, whenever the signal comes.
  let server: LocalServer | undefined
  let interruptEval: (() => void) | undefined
  const stopServerAndExit = async (code: number) => {
    await server?.stop()
    process.stderr.write('\n› interrupted: stopped the local server\n')
    process.exit(code)
  }
  const onSignal = (signal: NodeJS.Signals) => {
    // The eval's first Ctrl-C cancels its runs on the server; it then returns, and `finally` stops the server.
    if (signal === 'SIGINT' && interruptEval) {
      const stopEval = interruptEval
      interruptEval = undefined
      stopEval()
      return
    }
    void stopServerAndExit(signal === 'SIGINT' ? EXIT.interrupted : 143)
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  const serverIO: CliIO = {
    ...io,
    onInterrupt: (stop) => {
      interruptEval = stop
    },
  }

  try {
    process.stderr.write('› starting a local pictale server (dev profile: tiny random-weight models, so the numbers mean nothing)\n')
    server = await startLocalServer()
    try {
      await createClient({ baseURL: server.url }).waitUntilReady({ timeoutMs: 5 * 60_000, intervalMs: 500 })
    } catch (error) {
      process.stderr.write(`the local server did not start: ${(error as Error).message}\n${server.output()}\n`)
      return EXIT.unavailable
    }
    return await runCli(['eval', ...args, '--url', server.url], serverIO)
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    await server?.stop()
  }
}
