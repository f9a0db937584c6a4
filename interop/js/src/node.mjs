// js-libp2p in Node against tachyon. Run with node --experimental-websocket
// (Node 20 has no global WebSocket).
//   node src/node.mjs <transport>=<tachyon maddr>...   (tcp, ws, webrtc-direct)
// It dials tachyon over each address (3 pings, identify), hangs up, then prints
// one JSON line {"listen":[...],"peer":...,"dials":[...]} and keeps its
// TCP and WS listeners up, so tachyon can dial them, until stdin closes.
import './polyfill.mjs'
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { webSockets } from '@libp2p/websockets'
import { webRTCDirect } from '@libp2p/webrtc'
import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { ping } from '@libp2p/ping'
import { identify } from '@libp2p/identify'
import { multiaddr } from '@multiformats/multiaddr'
import { ping3 } from './checks.js'

const log = (...a) => console.error('[node]', ...a)

const node = await createLibp2p({
  addresses: { listen: ['/ip4/127.0.0.1/tcp/0', '/ip4/127.0.0.1/tcp/0/ws'] },
  // No ICE servers: the defaults are public STUN servers.
  transports: [tcp(), webSockets(), webRTCDirect({ rtcConfiguration: { iceServers: [] } })],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  connectionGater: { denyDialMultiaddr: async () => false },
  services: { ping: ping(), identify: identify() }
})

const dials = []
const targets = process.argv.slice(2).map(a => [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)])
for (const [name, addr] of targets) {
  const r = { transport: name, addr, ok: false }
  dials.push(r)
  const t0 = Date.now()
  let conn
  try {
    conn = await node.dial(multiaddr(addr), { signal: AbortSignal.timeout(10000) })
    r.connected = true
    r.remoteAddr = conn.remoteAddr.toString()
    r.connectMs = Date.now() - t0
  } catch (err) {
    r.error = String(err?.stack ?? err)
    log(name, 'dial failed:', r.error)
    continue
  }
  // Each step runs even if an earlier one failed.
  await ping3(node, conn.remotePeer, r)
  try {
    const id = await node.services.identify.identify(conn, { signal: AbortSignal.timeout(5000) })
    r.agentVersion = id.agentVersion
    r.protocols = id.protocols
  } catch (err) {
    r.identifyError = String(err?.stack ?? err)
  }
  r.ok = r.pingErrors.length === 0 && r.identifyError == null
  try { await node.hangUp(conn.remotePeer) } catch {}
}

process.stdout.write(JSON.stringify({
  peer: node.peerId.toString(),
  listen: node.getMultiaddrs().map(String),
  dials
}) + '\n')

// Keep listening until the Go test closes our stdin.
process.stdin.resume()
await new Promise(resolve => process.stdin.on('end', resolve).on('close', resolve))
await node.stop()
process.exit(0)
