// The browser-to-browser endpoint in headless Chromium: one browser, one
// page (www/b2b.html, bundle www/b2b.js) driven through window.b2b; the
// protocol is in b2b-endpoint.mjs. Page console lines go to stderr.
import { launchChromium, openPage, serveWWW } from './chromium.mjs'
import { run } from './b2b-endpoint.mjs'

let server, browser, page
const lines = []
const flush = () => { for (const l of lines.splice(0)) process.stderr.write(`[page] ${l}\n`) }
const t0 = performance.now()
const log = msg => process.stderr.write(`[driver +${Math.round(performance.now() - t0)} ms] ${msg}\n`)

await run({
  async start (relay) {
    let base
    ({ server, base } = await serveWWW())
    browser = await launchChromium()
    log('browser launched')
    page = await openPage(browser.context, `${base}/b2b.html`, lines)
    await page.waitForFunction(() => window.b2b != null, null, { timeout: 20000 })
    log('page loaded')
    await page.evaluate(r => window.b2b.start(r), relay).finally(flush)
    log('node started')
  },
  ready: () => page.evaluate(() => window.b2b.listen()).finally(flush),
  report: () => page.evaluate(() => window.b2b.report()).finally(flush),
  dial: target => page.evaluate(t => window.b2b.dial(t), target).finally(flush),
  async stop () {
    if (page) await page.evaluate(() => window.b2b.stop()).catch(() => {})
    flush()
    if (browser) await browser.close()
    server?.close()
  }
}, process.argv.slice(2))
