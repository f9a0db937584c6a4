// The Chromium dialer of the transport-interop matrix: it does the Redis
// side of the contract (BLPOP listenerAddr), serves www/ on 127.0.0.1 (a
// secure context, which WebTransport needs), opens the page in headless
// Debian Chromium through playwright-core and prints the page's JSON line,
// as the test-plans browser images do with their Redis proxy. Dial only.
import './../polyfill.mjs'
import http from 'node:http'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'
import { redis } from '../peer.mjs'

const env = (k, d) => process.env[k] || d
const timeoutS = Number(env('test_timeout_seconds', '180'))
const www = path.join(path.dirname(fileURLToPath(import.meta.url)), 'www')

let server, context, profile, r
try {
  if (env('is_dialer', '') !== 'true') throw new Error('the browser only dials')
  r = redis(env('redis_addr', 'redis:6379'))
  await r.ready
  const reply = await r.do('BLPOP', 'listenerAddr', String(timeoutS))
  if (reply == null) throw new Error('no listener address before the timeout')
  server = http.createServer((req, res) => {
    const name = { '/': 'index.html', '/index.html': 'index.html', '/bundle.js': 'bundle.js' }[new URL(req.url, 'http://x').pathname]
    if (name == null) return res.writeHead(404).end()
    res.writeHead(200, { 'content-type': name.endsWith('.js') ? 'text/javascript' : 'text/html' })
    fs.createReadStream(path.join(www, name)).pipe(res)
  })
  await new Promise(resolve => server.listen(0, '127.0.0.1', resolve))
  profile = fs.mkdtempSync(path.join(os.tmpdir(), 'matrix-chromium-'))
  context = await chromium.launchPersistentContext(profile, {
    executablePath: env('CHROMIUM', '/usr/bin/chromium'),
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync',
      '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1',
      '--disable-features=WebRtcHideLocalIpsWithMdns']
  })
  const page = context.pages()[0] ?? await context.newPage()
  page.on('console', m => console.error('[page]', m.text()))
  await page.goto(`http://127.0.0.1:${server.address().port}/`)
  await page.waitForFunction(() => typeof window.dialPing === 'function', null, { timeout: 20000 })
  const res = await page.evaluate(([a, t]) => window.dialPing(a, t), [reply[1], timeoutS * 1000])
  process.stdout.write(JSON.stringify(res) + '\n')
} catch (err) {
  console.error('[chromium]', err?.stack ?? err)
  process.exitCode = 1
} finally {
  r?.close()
  await context?.close().catch(() => {})
  server?.close()
  if (profile) fs.rmSync(profile, { recursive: true, force: true })
}
process.exit(process.exitCode ?? 0)
