// Entry point of this js-libp2p line's peer: node --experimental-websocket main.mjs
import '../polyfill.mjs'
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { webSockets } from '@libp2p/websockets'
import { webRTCDirect } from '@libp2p/webrtc'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { ping } from '@libp2p/ping'
import { identify } from '@libp2p/identify'
import { multiaddr } from '@multiformats/multiaddr'
import { run } from '../peer.mjs'

try {
  await run({ createLibp2p, tcp, webSockets, webRTCDirect, noise, yamux, ping, identify, multiaddr })
  process.exit(0)
} catch (err) {
  console.error('[js]', err?.stack ?? err)
  process.exit(1)
}
