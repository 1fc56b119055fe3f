// The smoke test through `import` (Node, Bun, Deno).
import * as pictale from 'pictale'
import { runHost } from './host.mjs'

await runHost(pictale, import.meta.resolve('pictale'), 'esm')
