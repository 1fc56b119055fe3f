// Runs the smoke test in a terminal runtime (Node, Bun, Deno) against PICTALE_BASE_URL with
// PICTALE_API_KEY, after checking that the module came from the installed package in the
// expected format; the exit code says whether it passed.
import process from 'node:process'
import { smoke } from './smoke.mjs'

/**
 * @param pictale the loaded module
 * @param loadedFrom the file the runtime resolved `pictale` to
 * @param format 'esm' or 'cjs'
 */
export async function runHost(pictale, loadedFrom, format) {
  const file = String(loadedFrom)
  const extension = format === 'cjs' ? '.cjs' : '.js'
  try {
    if (!file.includes('/node_modules/pictale/') || !file.endsWith(extension)) {
      throw new Error(`pictale (${format}) resolved to ${file}, not the installed package's ${extension} build`)
    }
    console.log(`pictale from ${file}`)
    const passed = await smoke(pictale, {
      baseURL: process.env.PICTALE_BASE_URL,
      apiKey: process.env.PICTALE_API_KEY,
      log: (line) => console.log(line),
    })
    console.log(`passed ${passed.length} checks`)
  } catch (error) {
    console.error(error)
    process.exitCode = 1
  }
}
