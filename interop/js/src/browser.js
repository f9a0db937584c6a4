// js-libp2p in the browser against tachyon; bundled by esbuild into
// www/bundle.js. run-browser.mjs calls window.runTests(addrs) through
// playwright and also reads window.results.
import { createLibp2p } from 'libp2p'
import { webTransport } from '@libp2p/webtransport'
import { webRTCDirect } from '@libp2p/webrtc'
import { webSockets } from '@libp2p/websockets'
import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { ping } from '@libp2p/ping'
import { identify } from '@libp2p/identify'
import { multiaddr } from '@multiformats/multiaddr'
import { echo, ECHO_SIZE, ping3 } from './checks.js'
import { warmICE } from './warm-ice.js'

window.runTests = async function runTests (addrs) {
  const results = []
  window.results = results
  await warmICE()
  const node = await createLibp2p({
    transports: [
      webTransport(),
      webRTCDirect({ rtcConfiguration: { iceServers: [] } }),
      webSockets()
    ],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionGater: { denyDialMultiaddr: async () => false },
    // js-libp2p allows one outbound ping stream at a time and counts a
    // WebRTC stream until its data channel has closed, which takes a round
    // trip after ping() resolves; the three back-to-back pings below would
    // otherwise trip that local limit now and then ("Too many outbound
    // protocol streams"), whatever the listener does.
    services: { ping: ping({ maxOutboundStreams: 3 }), identify: identify() }
  })
  for (const [transport, addr] of addrs) {
    const r = { transport, addr, ok: false }
    results.push(r)
    const t0 = Date.now()
    let conn
    try {
      for (let attempt = 1; ; attempt++) {
        try {
          conn = await node.dial(multiaddr(addr), { signal: AbortSignal.timeout(15000) })
          break
        } catch (err) {
          r.dialErrors = [...(r.dialErrors ?? []), String(err?.stack ?? err)]
          if (attempt >= 3) throw err
        }
      }
      r.remoteAddr = conn.remoteAddr.toString()
      r.connectMs = Date.now() - t0
      r.connected = true
    } catch (err) {
      r.error = String(err?.stack ?? err)
    }
    if (conn != null) {
      // Each step runs even if an earlier one failed, so the report says
      // exactly which ones work.
      await ping3(node, conn.remotePeer, r)
      try {
        r.echoBytes = await echo(conn)
      } catch (err) {
        r.echoError = String(err?.stack ?? err)
      }
      r.ok = r.pingErrors.length === 0 && r.echoBytes === ECHO_SIZE
    }
    if (conn != null) {
      try { await node.hangUp(conn.remotePeer) } catch {}
    }
  }
  await node.stop()
  return results
}
