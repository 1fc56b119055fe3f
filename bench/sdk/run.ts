// SDK benchmark: events per second the client sustains from a local SSE server, against raw
// eventsource-parser over the same bytes in the same process, and the default entry's size.
// Run: npm run bench:sdk [-- --import-baseline <git ref>]  (the ref whose import cost is the baseline)
import { cpus } from 'node:os'
import { createParser } from 'eventsource-parser'
import { createClient } from '../../src/index'
import { defaultEntrySize } from './bundle-size'
import { importCost } from './import-cost'
import { narrateStreamBody, startSseServer } from './sse-server'

const DELTAS = 200_000
const ROUNDS = 5
const TOKEN = ' word'

async function clientRun(url: string): Promise<number> {
  const client = createClient({ baseURL: url, maxRetries: 0 })
  let deltas = 0
  for await (const event of client.narrate({ instruction: 'bench' })) if (event.type === 'delta') deltas++
  return deltas
}

async function rawParserRun(url: string): Promise<number> {
  const response = await fetch(`${url}/v1/narrate`, { method: 'POST', body: '{}' })
  const reader = response.body!.getReader()
  const decoder = new TextDecoder()
  let deltas = 0
  const parser = createParser({ onEvent: (message) => void (message.event === 'delta' && deltas++) })
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    parser.feed(decoder.decode(value, { stream: true }))
  }
  return deltas
}

/** Events per second of one run. */
async function rate(run: () => Promise<number>): Promise<number> {
  const start = performance.now()
  const deltas = await run()
  const seconds = (performance.now() - start) / 1000
  if (deltas !== DELTAS) throw new Error(`expected ${DELTAS} deltas, got ${deltas}`)
  return deltas / seconds
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!

const { url, server } = await startSseServer(narrateStreamBody(DELTAS, TOKEN))
try {
  await clientRun(url) // warm-up
  await rawParserRun(url)
  // Alternate client and baseline so load from other processes hits both alike.
  const clientRates: number[] = []
  const rawRates: number[] = []
  const ratios: number[] = []
  for (let round = 0; round < ROUNDS; round++) {
    clientRates.push(await rate(() => clientRun(url)))
    rawRates.push(await rate(() => rawParserRun(url)))
    ratios.push(clientRates.at(-1)! / rawRates.at(-1)!)
  }
  const client = median(clientRates)
  const raw = median(rawRates)
  const size = await defaultEntrySize()
  const kib = (bytes: number) => (bytes / 1024).toFixed(1)
  console.log(`machine: ${cpus().length} cores, ${cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.versions.node}`)
  console.log(`stream: ${DELTAS} delta events per run, median of ${ROUNDS} alternating rounds`)
  console.log(`pictale client (parse + validate + camelCase): ${Math.round(client).toLocaleString('en')} events/s`)
  console.log(`baseline, raw eventsource-parser, no validation: ${Math.round(raw).toLocaleString('en')} events/s`)
  console.log(`client / baseline (median of per-round ratios): ${median(ratios).toFixed(2)}`)
  console.log(`default entry, bundled + minified: ${kib(size.minifiedBytes)} KiB; gzipped: ${kib(size.gzipBytes)} KiB`)
  const flag = process.argv.indexOf('--import-baseline')
  const cost = importCost(flag > 0 ? process.argv[flag + 1]! : 'HEAD')
  console.log(`import('pictale') in a fresh process: ${cost.currentMs.toFixed(1)} ms; ${cost.ref}: ${cost.baselineMs.toFixed(1)} ms (medians)`)
} finally {
  server.close()
}
