import { gzipSync } from 'node:zlib'
import { build } from 'esbuild'

/** The default entry bundled with its dependencies for a browser, minified, then gzipped. */
export async function defaultEntrySize(): Promise<{ minifiedBytes: number; gzipBytes: number }> {
  const result = await build({
    entryPoints: ['src/index.ts'],
    bundle: true,
    minify: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    write: false,
    logLevel: 'silent',
    define: { __PICTALE_CJS__: 'false' }, // as tsup.config.ts sets it for the ESM output
  })
  const code = result.outputFiles[0]!.contents
  return { minifiedBytes: code.length, gzipBytes: gzipSync(code, { level: 9 }).length }
}
