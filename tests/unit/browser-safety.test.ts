import { build } from 'esbuild'
import { describe, expect, it } from 'vitest'

describe('the default and webhooks entries are browser-safe', () => {
  it.each(['src/index.ts', 'src/webhooks/index.ts'])('%s bundles for the browser with its dependencies, without node: imports or process.env', async (entry) => {
    const result = await build({
      entryPoints: [entry],
      bundle: true,
      platform: 'browser',
      format: 'esm',
      write: false,
      metafile: true,
      logLevel: 'silent',
    })
    const inputs = Object.keys(result.metafile.inputs)
    expect(inputs.some((path) => path.includes('src/node/'))).toBe(false)
    expect(inputs.some((path) => path.includes('src/testing/'))).toBe(false)
    const code = result.outputFiles[0]!.text
    expect(code).not.toMatch(/["']node:/)
    expect(code).not.toMatch(/process\.env/)
    expect(code).not.toMatch(/\bBuffer\./)
  })
})
