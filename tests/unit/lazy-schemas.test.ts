import { build, type Metafile } from 'esbuild'
import { describe, expect, it } from 'vitest'

/** Every input the entry's output loads before its code runs: static imports, followed. */
function staticInputs(metafile: Metafile, entryPoint: string): string[] {
  const outputs = metafile.outputs
  const entry = Object.keys(outputs).find((name) => outputs[name]!.entryPoint === entryPoint)!
  const seen = new Set<string>()
  const pending = [entry]
  while (pending.length > 0) {
    const name = pending.pop()!
    if (seen.has(name)) continue
    seen.add(name)
    for (const imported of outputs[name]!.imports) {
      if (imported.kind === 'import-statement' && !imported.external) pending.push(imported.path)
    }
  }
  return [...seen].flatMap((name) => Object.keys(outputs[name]!.inputs))
}

describe('importing pictale', () => {
  it('builds no schema: zod and the schemas load on the first call, by a dynamic import', async () => {
    const { metafile } = await build({
      entryPoints: ['src/index.ts'],
      bundle: true,
      splitting: true,
      format: 'esm',
      outdir: 'out',
      write: false,
      metafile: true,
      logLevel: 'silent',
      define: { __PICTALE_CJS__: 'false' }, // as tsup.config.ts sets it for the ESM output
    })
    const atImport = staticInputs(metafile, 'src/index.ts')
    expect(atImport).toContain('src/client.ts')
    expect(atImport.filter((input) => input.includes('node_modules/zod/'))).toEqual([])
    expect(atImport.filter((input) => input.startsWith('src/schemas/') && !input.endsWith('load-schemas.ts'))).toEqual([])
    const everything = Object.values(metafile.outputs).flatMap((output) => Object.keys(output.inputs))
    expect(everything).toContain('src/schemas/requests.ts')
  })
})
