import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { pathToFileURL } from 'node:url'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { createClient, InvalidImageError, InvalidInputError, readImageSource } from '../../src/node'
import { tokenStream } from '../../src/testing'
import { BASE_URL, PNG_BASE64, PNG_BYTES, rejectionOf, useMockServer } from './support/mock-server'

const { mock } = useMockServer()
const dir = mkdtempSync(join(tmpdir(), 'pictale-node-'))
const pngPath = join(dir, 'dot.png')
writeFileSync(pngPath, PNG_BYTES)

describe('pictale/node', () => {
  afterEach(() => vi.unstubAllEnvs())

  it('reads connection settings from the environment', async () => {
    vi.stubEnv('PICTALE_BASE_URL', BASE_URL)
    vi.stubEnv('PICTALE_API_KEY', 'sk-env')
    vi.stubEnv('MODAL_KEY', 'mk')
    vi.stubEnv('MODAL_SECRET', 'ms')
    const server = mock({ narrate: tokenStream({ route: 'narrate' }) })
    await createClient({ maxRetries: 0 }).narrate({ instruction: 'x' })
    expect(server.requests[0]!.headers).toMatchObject({ 'x-api-key': 'sk-env', 'modal-key': 'mk', 'modal-secret': 'ms' })
  })

  it('lets options win over the environment', async () => {
    vi.stubEnv('PICTALE_BASE_URL', 'http://elsewhere.test')
    vi.stubEnv('PICTALE_API_KEY', 'sk-env')
    const server = mock({ narrate: tokenStream({ route: 'narrate' }) })
    await createClient({ baseURL: BASE_URL, apiKey: 'sk-opt' }).narrate({ instruction: 'x' })
    expect(server.requests[0]!.headers.authorization).toBe('Bearer sk-opt')
  })

  it('says which variable to set when no server is known', () => {
    vi.stubEnv('PICTALE_BASE_URL', undefined)
    expect(() => createClient()).toThrow(InvalidInputError)
    expect(() => createClient()).toThrow(/PICTALE_BASE_URL/)
  })

  it('accepts file paths, file URLs, Buffers and streams as images', async () => {
    const server = mock({ describe: tokenStream({ route: 'describe' }) })
    const client = createClient({ baseURL: BASE_URL })
    const inputs = [pngPath, pathToFileURL(pngPath), pathToFileURL(pngPath).href, Buffer.from(PNG_BYTES), Readable.from([PNG_BYTES.subarray(0, 5), PNG_BYTES.subarray(5)])]
    for (const image of inputs) await client.describe({ image })
    expect(server.requests.map((r) => (r.body as { image: unknown }).image)).toEqual(
      inputs.map(() => ({ data: PNG_BASE64, media_type: 'image/png' })),
    )
  })

  it('still passes URLs through and refuses what is not an image', async () => {
    expect(await readImageSource('https://example.com/a.png', 100)).toBe('https://example.com/a.png')
    const textPath = join(dir, 'note.txt')
    writeFileSync(textPath, 'not an image')
    mock({ describe: tokenStream({ route: 'describe' }) })
    const client = createClient({ baseURL: BASE_URL })
    expect(await rejectionOf(client.describe({ image: textPath }))).toMatchObject({ code: 'unsupported_media_type' })
    const missing = await rejectionOf(client.describe({ image: join(dir, 'missing.png') }))
    expect(missing).toBeInstanceOf(InvalidImageError)
    expect((missing as Error).message).toMatch(/ENOENT/)
    expect(await rejectionOf(client.describe({ image: dir }))).toMatchObject({ code: 'invalid_image' })
  })

  it('stops reading a file or stream once it passes maxImageBytes', async () => {
    expect(await rejectionOf(readImageSource(pngPath, 10))).toMatchObject({ code: 'image_too_large' })
    let pulled = 0
    const endless = new Readable({
      read() {
        pulled++
        this.push(Buffer.alloc(1024))
      },
    })
    expect(await rejectionOf(readImageSource(endless, 4096))).toMatchObject({ code: 'image_too_large' })
    expect(pulled).toBeLessThan(10)
    endless.destroy()
  })
})
