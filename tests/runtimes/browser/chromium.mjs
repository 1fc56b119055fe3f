// Opens the smoke page in headless Chromium and waits for its outcome; the exit code says
// whether it passed. The page's console, uncaught errors and failed requests are printed, so a
// failure (a blocked CORS request, a module that did not load) says why.
//
//   node tests/runtimes/browser/chromium.mjs <chromium binary> <page URL>
import { chromium } from 'playwright-core'

const [executablePath, url] = process.argv.slice(2)
const TIMEOUT_MS = 60_000

const browser = await chromium.launch({ executablePath })
try {
  console.log(`Chromium ${browser.version()}`)
  const page = await browser.newPage()
  page.on('console', (message) => console.log(`console.${message.type()}: ${message.text()}`))
  page.on('requestfailed', (request) => console.log(`request failed: ${request.method()} ${request.url()}: ${request.failure()?.errorText}`))
  // Any uncaught error fails the run at once (a module that did not load never sets the outcome).
  const crashed = new Promise((_, reject) => page.on('pageerror', reject))
  crashed.catch(() => {}) // an error after the outcome changes nothing
  await page.goto(url)
  await Promise.race([crashed, page.waitForFunction(() => window.smokeOutcome !== undefined, undefined, { timeout: TIMEOUT_MS })])
  const outcome = await Promise.race([crashed, page.evaluate(() => window.smokeOutcome)])
  if (outcome.ok) console.log(`passed ${outcome.passed.length} checks`)
  else {
    console.error(outcome.error)
    process.exitCode = 1
  }
} catch (error) {
  console.error(error)
  process.exitCode = 1
} finally {
  await browser.close()
}
