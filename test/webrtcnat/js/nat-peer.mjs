// The js-libp2p reference endpoint of test/webrtcnat: interop/js's
// b2b-node.mjs (same line protocol and dial checks, from b2b-endpoint.mjs
// and b2b-peer.js) with a STUN server for ICE, which b2b-peer.js's
// createPeer leaves out (its peers share a host).
//
//   node --experimental-websocket nat-peer.mjs <interop/js/src> <stun:host:port> <relay maddr>
//
// It must sit in a directory whose node_modules is interop/js's (the test
// links it there), so that libp2p resolves to the same modules as
// b2b-peer.js's.
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'

const [src, stun, ...rest] = process.argv.slice(2)
const load = file => import(pathToFileURL(join(src, file)).href)

await load('polyfill.mjs') // before libp2p
const { RTCPeerConnection } = await import('node-datachannel/polyfill')
const { createLibp2p } = await import('libp2p')
const { webSockets } = await import('@libp2p/websockets')
const { circuitRelayTransport } = await import('@libp2p/circuit-relay-v2')
const { webRTC } = await import('@libp2p/webrtc')
const { noise } = await import('@libp2p/noise')
const { yamux } = await import('@libp2p/yamux')
const { ping } = await import('@libp2p/ping')
const { identify } = await import('@libp2p/identify')
const { dial, listen, listenerReport, trackPeerConnections } = await load('b2b-peer.js')
const { run } = await load('b2b-endpoint.mjs')
const { echoServer, ECHO } = await load('checks.js')

const pcs = trackPeerConnections(RTCPeerConnection)

// createPeer is b2b-peer.js's, with the STUN server.
async function createPeer (relay) {
  const served = []
  const node = await createLibp2p({
    addresses: { listen: [`${relay}/p2p-circuit`, '/webrtc'] },
    transports: [webSockets(), circuitRelayTransport(), webRTC({ rtcConfiguration: { iceServers: [{ urls: stun }] } })],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionGater: { denyDialMultiaddr: async () => false },
    services: { identify: identify(), ping: ping({ maxOutboundStreams: 3 }) }
  })
  await node.handle(ECHO, echoServer(served).handler)
  const opened = []
  node.addEventListener('connection:open', e => opened.push({ at: performance.now(), conn: e.detail }))
  return { node, served, opened }
}

let peer
await run({
  start: async relay => { peer = await createPeer(relay) },
  ready: () => listen(peer),
  report: () => listenerReport(peer, pcs),
  dial: target => dial(peer, target, pcs),
  stop: async () => { await peer?.node.stop() }
}, rest)
