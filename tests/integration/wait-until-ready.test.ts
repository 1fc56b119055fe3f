// waitUntilReady() against a server that is still loading: a second server process with an
// empty model cache, so it has to build its dev models first.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { expect, it } from 'vitest'
import { createClient } from '../../src/index'
import { startLocalServer } from '../../scripts/lib/local-server'

it('waitUntilReady() sees the server come up, load its models, then be ready', async () => {
  const cacheDir = mkdtempSync(join(tmpdir(), 'pictale-cold-'))
  const server = await startLocalServer({ cacheDir })
  try {
    const seen: string[] = []
    const health = await createClient({ baseURL: server.url }).waitUntilReady({
      timeoutMs: 150_000,
      intervalMs: 50,
      onStatus: ({ health: status, error }) => {
        const step = status?.status ?? error?.code ?? '?'
        if (seen.at(-1) !== step) seen.push(step)
      },
    })
    expect(health.status).toBe('ok')
    expect(health.models.vision.loaded && health.models.writer.loaded).toBe(true)
    // Connection errors while the process starts, then loading, then ok.
    expect(seen.filter((step) => step !== 'connection_error')).toEqual(['loading', 'ok'])
  } finally {
    await server.stop()
    rmSync(cacheDir, { recursive: true, force: true })
  }
})
