// `npm run eval` stops the local server it started whenever a signal ends it: a signal ends Node
// without its 'exit' event, and the server, in its own process group, never sees the Ctrl-C.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { EXIT } from '../../src/cli/exit-codes'

const server = {
  url: 'http://127.0.0.1:9',
  output: () => '',
  exited: new Promise<number | null>(() => {}),
  stop: vi.fn(async () => {}),
}
let serverReady: { resolve(): void; reject(error: Error): void } | undefined
let evalStarted = false

vi.mock('../../scripts/lib/local-server', () => ({ startLocalServer: vi.fn(async () => server) }))
vi.mock('../../src/index', async (importOriginal) => ({
  ...(await importOriginal<typeof import('../../src/index')>()),
  createClient: () => ({
    waitUntilReady: () => new Promise<void>((resolve, reject) => (serverReady = { resolve, reject })),
  }),
}))
// The eval runs until interrupted, then returns 130 as `pictale eval` does.
vi.mock('../../src/cli/run-cli', () => ({
  runCli: (_argv: string[], io: { onInterrupt(stop: () => void): void }) =>
    new Promise<number>((resolve) => {
      evalStarted = true
      io.onInterrupt(() => resolve(EXIT.interrupted))
    }),
}))

const { evalInRepo } = await import('../../scripts/lib/eval-in-repo')

/** The signal listeners evalInRepo added, for `signal`. */
function addedListeners(signal: NodeJS.Signals, before: Set<unknown>): ((signal: NodeJS.Signals) => void)[] {
  return process.listeners(signal).filter((listener) => !before.has(listener)) as ((signal: NodeJS.Signals) => void)[]
}

describe('npm run eval with a local server', () => {
  let exit: ReturnType<typeof vi.spyOn>
  let before: Record<'SIGINT' | 'SIGTERM', Set<unknown>>

  beforeEach(() => {
    server.stop.mockClear()
    serverReady = undefined
    evalStarted = false
    exit = vi.spyOn(process, 'exit').mockImplementation((() => undefined) as never)
    vi.spyOn(process.stderr, 'write').mockImplementation(() => true)
    before = { SIGINT: new Set(process.listeners('SIGINT')), SIGTERM: new Set(process.listeners('SIGTERM')) }
  })

  afterEach(() => {
    vi.restoreAllMocks()
  })

  it('Ctrl-C while the server starts: stops it and exits 130', async () => {
    const running = evalInRepo([], { startServer: true })
    await vi.waitFor(() => expect(serverReady).toBeDefined())
    const [onSigint] = addedListeners('SIGINT', before.SIGINT)
    expect(onSigint).toBeDefined()
    onSigint!('SIGINT')
    await vi.waitFor(() => expect(exit).toHaveBeenCalledWith(EXIT.interrupted))
    expect(server.stop).toHaveBeenCalled()

    serverReady!.reject(new Error('stopped'))
    expect(await running).toBe(EXIT.unavailable)
    expect(addedListeners('SIGINT', before.SIGINT)).toEqual([])
    expect(addedListeners('SIGTERM', before.SIGTERM)).toEqual([])
  })

  it('SIGTERM: stops the server and exits 143', async () => {
    const running = evalInRepo([], { startServer: true })
    await vi.waitFor(() => expect(serverReady).toBeDefined())
    addedListeners('SIGTERM', before.SIGTERM)[0]!('SIGTERM')
    await vi.waitFor(() => expect(exit).toHaveBeenCalledWith(143))
    expect(server.stop).toHaveBeenCalled()
    serverReady!.reject(new Error('stopped'))
    await running
  })

  it('Ctrl-C while the eval runs: the eval cancels its runs and returns, then the server stops', async () => {
    const running = evalInRepo([], { startServer: true })
    await vi.waitFor(() => expect(serverReady).toBeDefined())
    serverReady!.resolve()
    await vi.waitFor(() => expect(evalStarted).toBe(true))
    addedListeners('SIGINT', before.SIGINT)[0]!('SIGINT')
    expect(await running).toBe(EXIT.interrupted)
    expect(exit).not.toHaveBeenCalled()
    expect(server.stop).toHaveBeenCalled()
  })
})
