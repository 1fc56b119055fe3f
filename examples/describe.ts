// Describes a picture with the vision model, printing the text as it arrives.
//
//   npx tsx examples/describe.ts [--image PATH|URL] [--style caption|detailed|scene] [--base-url URL]
import { parseArgs } from 'node:util'
import { createClient, type DescribeStyle } from 'pictale/node'
import { DEFAULT_BASE_URL, SAMPLE_IMAGE, printUsage, stats } from './lib/cli'
import { explainError } from './lib/explain-error'
import { dim, heading, printable } from './lib/terminal'

const { values } = parseArgs({
  options: {
    image: { type: 'string', default: SAMPLE_IMAGE },
    style: { type: 'string', default: 'detailed' },
    'base-url': { type: 'string', default: DEFAULT_BASE_URL },
    help: { type: 'boolean', short: 'h', default: false },
  },
})
if (values.help) {
  printUsage(`Usage: npx tsx examples/describe.ts [options]
  --image PATH|URL     picture to describe (default: the bundled sample)
  --style STYLE        caption (short), detailed, or scene (what the writer works from)`)
}

const client = createClient({ baseURL: values['base-url'] })
try {
  const run = client.describe({ image: values.image, style: values.style as DescribeStyle }) // the server checks it
  heading(`describe (${values.style}): ${values.image}`)
  for await (const text of run.textStream) process.stdout.write(printable(text))
  const result = await run // the same request: no second call
  console.log(`\n${dim(`(${stats(result)}, model ${result.model})`)}`)
} catch (error) {
  console.error(`\n${explainError(error, values['base-url'])}`)
  process.exitCode = 1
}
