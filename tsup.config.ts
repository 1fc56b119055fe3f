import { defineConfig } from 'tsup'

export default defineConfig([
  {
    entry: {
      index: 'src/index.ts',
      node: 'src/node/index.ts',
      testing: 'src/testing/index.ts',
      webhooks: 'src/webhooks/index.ts',
      schemas: 'src/schemas/index.ts',
      ai: 'src/ai/index.ts',
    },
    format: ['esm', 'cjs'],
    dts: true,
    clean: true,
    sourcemap: true,
    target: 'es2022',
    // Each entry keeps its own copy of shared code in CJS; error classes are branded with
    // Symbol.for so checks still work across copies.
    splitting: true,
    treeshake: true,
    external: ['msw', '@ai-sdk/provider'],
    // Bundled: Node resolves and evaluates zod's ~60 files in ~100 ms at import; the used
    // parts, in our own chunk, load in a few ms. zod stays a dependency for the types.
    noExternal: ['zod', 'eventsource-parser'],
    // Keep `node:` specifiers in pictale/node: Deno and bundlers resolve them unambiguously.
    removeNodeProtocol: false,
    // The CommonJS output requires the schemas instead of importing them on the first call
    // (src/schemas/load-schemas.ts); the other branch is dropped from each output.
    esbuildOptions(options, { format }) {
      options.define = { ...options.define, __PICTALE_CJS__: format === 'cjs' ? 'true' : 'false' }
    },
  },
  {
    // `npx pictale`: ESM with its shebang, no types (nothing imports it). `pictale eval` loads its
    // own chunk (the harness, franc-min, compromise) only when it runs.
    entry: { cli: 'src/cli/index.ts' },
    format: ['esm'],
    dts: false,
    clean: false,
    sourcemap: false,
    target: 'es2022',
    platform: 'node',
    external: ['msw'],
    noExternal: ['zod', 'eventsource-parser'],
    removeNodeProtocol: false,
  },
])
