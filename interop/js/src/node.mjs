// js-libp2p in Node against tachyon. Run with node --experimental-websocket
// (Node 20 has no global WebSocket).
//   node src/node.mjs <tachyon tcp maddr> <tachyon ws maddr>
// It dials tachyon over each address (ping, identify), hangs up, then prints
// one JSON line {"listen":[...],"peer":...,"dials":[...]} and keeps its TCP
// listener up, so tachyon can dial it, until stdin closes.
import './polyfill.mjs'
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { webSockets } from '@libp2p/websockets'
import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { ping } from '@libp2p/ping'
import { identify } from '@libp2p/identify'
import { multiaddr } from '@multiformats/multiaddr'

const log = (...a) => console.error('[node]', ...a)

const node = await createLibp2p({
  addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
  transports: [tcp(), webSockets()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  connectionGater: { denyDialMultiaddr: async () => false },
  services: { ping: ping(), identify: identify() }
})

const dials = []
for (const [name, addr] of [['tcp', process.argv[2]], ['ws', process.argv[3]]]) {
  const r = { transport: name, addr, ok: false }
  dials.push(r)
  const t0 = Date.now()
  try {
    const ma = multiaddr(addr)
    const conn = await node.dial(ma, { signal: AbortSignal.timeout(10000) })
    r.remoteAddr = conn.remoteAddr.toString()
    r.connectMs = Date.now() - t0
    r.pingMs = []
    for (let i = 0; i < 3; i++) {
      r.pingMs.push(await node.services.ping.ping(conn.remotePeer, { signal: AbortSignal.timeout(5000) }))
    }
    const id = await node.services.identify.identify(conn, { signal: AbortSignal.timeout(5000) })
    r.agentVersion = id.agentVersion
    r.protocols = id.protocols
    r.ok = true
    await node.hangUp(conn.remotePeer)
  } catch (err) {
    r.error = String(err?.stack ?? err)
    log(name, 'failed:', r.error)
  }
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
