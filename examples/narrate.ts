// Writes from an instruction (and, optionally, a scene description) with the writer model.
//
//   npx tsx examples/narrate.ts [--instruction TEXT] [--context TEXT] [--base-url URL]
import { parseArgs } from 'node:util'
import { createClient } from 'pictale/node'
import { DEFAULT_BASE_URL, printUsage, stats } from './lib/cli'
import { explainError } from './lib/explain-error'
import { dim, heading, printable } from './lib/terminal'

const { values } = parseArgs({
  options: {
    instruction: { type: 'string', default: 'Write the opening of a story set in a lighthouse.' },
    context: { type: 'string' },
    'max-tokens': { type: 'string', default: '200' },
    'base-url': { type: 'string', default: DEFAULT_BASE_URL },
    help: { type: 'boolean', short: 'h', default: false },
  },
})
if (values.help) {
  printUsage(`Usage: npx tsx examples/narrate.ts [options]
  --instruction TEXT   what to write
  --context TEXT       a scene description to write from (e.g. describe.ts's output)
  --max-tokens N       longest answer (default 200)`)
}

const client = createClient({ baseURL: values['base-url'] })
try {
  const run = client.narrate({
    instruction: values.instruction,
    context: values.context,
    maxTokens: Number(values['max-tokens']),
  })
  heading(`narrate: ${values.instruction}`)
  for await (const text of run.textStream) process.stdout.write(printable(text))
  const result = await run
  console.log(`\n${dim(`(${stats(result)}, model ${result.model})`)}`)
} catch (error) {
  console.error(`\n${explainError(error, values['base-url'])}`)
  process.exitCode = 1
}
