// The browser-to-browser endpoint in Node (node-datachannel, as
// @libp2p/webrtc uses there). Run with node --experimental-websocket (Node
// 20 has no global WebSocket); the protocol is in b2b-endpoint.mjs.
import './polyfill.mjs'
import { RTCPeerConnection } from 'node-datachannel/polyfill'
import { createPeer, dial, listen, listenerReport, trackPeerConnections } from './b2b-peer.js'
import { run } from './b2b-endpoint.mjs'

const pcs = trackPeerConnections(RTCPeerConnection)
let peer

await run({
  start: async relay => { peer = await createPeer(relay) },
  ready: () => listen(peer),
  report: () => listenerReport(peer, pcs),
  dial: target => dial(peer, target, pcs),
  stop: async () => { await peer?.node.stop() }
}, process.argv.slice(2))
