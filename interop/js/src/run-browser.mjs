// Drives headless Debian Chromium through playwright-core:
//   node src/run-browser.mjs <transport>=<maddr>...
// It bundles nothing itself (esbuild writes www/bundle.js first), serves www/
// on 127.0.0.1, opens the page, calls window.runTests and prints one JSON
// line {"results":[...],"console":[...]}.
import { launchChromium, openPage, serveWWW } from './chromium.mjs'

const addrs = process.argv.slice(2).map(a => {
  const i = a.indexOf('=')
  return [a.slice(0, i), a.slice(i + 1)]
})

const { server, base } = await serveWWW()
const consoleLines = []
let browser
let out
try {
  browser = await launchChromium()
  const page = await openPage(browser.context, `${base}/index.html`, consoleLines)
  await page.waitForFunction(() => typeof window.runTests === 'function', null, { timeout: 20000 })
  let results
  try {
    results = await page.evaluate(a => window.runTests(a), addrs)
  } catch (err) {
    // Whatever finished before the failure is still on the page.
    results = await page.evaluate(() => window.results ?? []).catch(() => [])
    consoleLines.push(`evaluate: ${err.message}`)
  }
  out = { results, console: consoleLines }
} catch (err) {
  out = { error: String(err?.stack ?? err), console: consoleLines }
} finally {
  if (browser) await browser.close()
  server.close()
}
process.stdout.write(JSON.stringify(out) + '\n')
process.exit(0)
