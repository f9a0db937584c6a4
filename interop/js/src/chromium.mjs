// Headless Debian Chromium through playwright-core, serving www/ on
// 127.0.0.1 (a secure context, which WebTransport needs). Shared by
// run-browser.mjs and b2b-chromium.mjs.
import http from 'node:http'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'

const www = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'www')
const types = { '.html': 'text/html', '.js': 'text/javascript' }

// serveWWW serves www/ on an ephemeral 127.0.0.1 port and returns the
// server and its base URL.
export async function serveWWW () {
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
  return { server, base: `http://127.0.0.1:${server.address().port}` }
}

// launchChromium starts Chromium with a fresh profile (the browser recipe's
// flags) and returns its context and a close function that also removes
// the profile.
export async function launchChromium () {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'tachyon-chromium-'))
  let context
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
      headless: true,
      args: [
        '--no-sandbox', '--disable-gpu', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
        '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1',
        // Real host candidates, not mDNS names nobody can resolve here.
        '--disable-features=WebRtcHideLocalIpsWithMdns'
      ]
    })
  } catch (err) {
    fs.rmSync(profile, { recursive: true, force: true })
    throw err
  }
  const close = async () => {
    await context.close().catch(() => {})
    fs.rmSync(profile, { recursive: true, force: true })
  }
  return { context, close }
}

// openPage opens url in context, collecting console lines into lines.
export async function openPage (context, url, lines) {
  const page = context.pages()[0] ?? await context.newPage()
  // DEBUG (the debug module's namespaces, as in Node) turns on libp2p logs.
  if (process.env.DEBUG) await page.addInitScript(d => { localStorage.debug = d }, process.env.DEBUG)
  page.on('console', m => lines.push(`${m.type()}: ${m.text()}`))
  page.on('pageerror', e => lines.push(`pageerror: ${e.message}`))
  await page.goto(url)
  return page
}
