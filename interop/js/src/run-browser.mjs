// Drives headless Debian Chromium through playwright-core:
//   node src/run-browser.mjs <transport>=<maddr>...
// It bundles nothing itself (esbuild writes www/bundle.js first), serves www/
// on 127.0.0.1, opens the page, calls window.runTests and prints one JSON
// line {"results":[...],"console":[...]}.
import http from 'node:http'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'

const www = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'www')
const addrs = process.argv.slice(2).map(a => {
  const i = a.indexOf('=')
  return [a.slice(0, i), a.slice(i + 1)]
})
const types = { '.html': 'text/html', '.js': 'text/javascript' }

const server = http.createServer((req, res) => {
  const name = new URL(req.url, 'http://x').pathname.replace(/^\/+/, '') || 'index.html'
  const file = path.join(www, path.normalize(name))
  if (!file.startsWith(www + path.sep) || !fs.existsSync(file)) {
    res.writeHead(name === 'favicon.ico' ? 204 : 404).end()
    return
  }
  res.writeHead(200, { 'content-type': types[path.extname(file)] ?? 'application/octet-stream' })
  fs.createReadStream(file).pipe(res)
})
await new Promise(resolve => server.listen(0, '127.0.0.1', resolve))
const url = `http://127.0.0.1:${server.address().port}/index.html`

const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'tachyon-chromium-'))
const consoleLines = []
let context
let out
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1',
      '--disable-features=WebRtcHideLocalIpsWithMdns'
    ]
  })
  const page = context.pages()[0] ?? await context.newPage()
  page.on('console', m => consoleLines.push(`${m.type()}: ${m.text()}`))
  page.on('pageerror', e => consoleLines.push(`pageerror: ${e.message}`))
  await page.goto(url)
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
  if (context) await context.close().catch(() => {})
  server.close()
  fs.rmSync(profile, { recursive: true, force: true })
}
process.stdout.write(JSON.stringify(out) + '\n')
process.exit(0)
