// Picture → story: describes an image with the vision model, then writes a story from that
// description with the writer model, streaming both stages as they are written.
//
//   npx tsx examples/pipeline.ts [--image PATH|URL] [--instruction TEXT] [--base-url URL]
import { parseArgs } from 'node:util'
import { createClient } from 'pictale/node'
import { DEFAULT_BASE_URL, SAMPLE_IMAGE, printUsage, stats } from './lib/cli'
import { explainError } from './lib/explain-error'
import { dim, heading, printable, spinner } from './lib/terminal'

const { values } = parseArgs({
  options: {
    image: { type: 'string', default: SAMPLE_IMAGE },
    instruction: { type: 'string', default: 'Write a short, gentle story about this place.' },
    'base-url': { type: 'string', default: DEFAULT_BASE_URL },
    help: { type: 'boolean', short: 'h', default: false },
  },
})
if (values.help) {
  printUsage(`Usage: npx tsx examples/pipeline.ts [options]
  --image PATH|URL     picture to start from (default: the bundled sample)
  --instruction TEXT   what the writer should write`)
}

const STAGES = {
  describe: '1 · describe: the vision model looks at the picture',
  narrate: '2 · narrate: the writer model turns the description into a story',
} as const

const client = createClient({ baseURL: values['base-url'] })
const waiting = spinner()
const run = client.pipeline({
  image: values.image,
  instruction: values.instruction,
  narrate: { maxTokens: 200 },
})

console.log(`image: ${values.image}\nserver: ${values['base-url']}`)
try {
  waiting.update('sending the picture…')
  for await (const event of run) {
    switch (event.type) {
      case 'status':
        if (event.state === 'queued') waiting.update(`waiting in the server's queue (position ${event.position ?? '?'})…`)
        if (event.state === 'loading') waiting.update('waiting for the server to load its models…')
        break
      case 'stage-start':
        waiting.stop()
        heading(STAGES[event.stage])
        break
      case 'delta':
        process.stdout.write(printable(event.text))
        break
      case 'stage-end':
        process.stdout.write(`\n${dim(`(${stats(event)})`)}\n`)
        if (event.stage === 'describe') waiting.update('checking the picture, then handing the description to the writer…')
        break
    }
  }
  const { description, story } = await run
  console.log(`\ndone: ${description.usage.outputTokens + story.usage.outputTokens} tokens in two stages (run ${run.id})`)
} catch (error) {
  waiting.stop()
  console.error(`\n${explainError(error, values['base-url'])}`)
  process.exitCode = 1
}
