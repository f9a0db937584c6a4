// js-libp2p 3.x in Chromium, the dialer of the transport-interop matrix;
// bundled by esbuild into www/bundle.js. browser.mjs (Node) does the Redis
// part of the contract and calls window.dialPing(addr) through playwright.
import { createLibp2p } from 'libp2p'
import { webTransport } from '@libp2p/webtransport'
import { webRTCDirect } from '@libp2p/webrtc'
import { webSockets } from '@libp2p/websockets'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { ping } from '@libp2p/ping'
import { identify } from '@libp2p/identify'
import { multiaddr } from '@multiformats/multiaddr'

// Chromium enumerates networks lazily: one throwaway ICE gathering before
// a WebRTC-direct dial makes the first dial reliable (shared browser recipe).
async function warmICE () {
  const pc = new RTCPeerConnection({ iceServers: [] })
  try {
    pc.createDataChannel('warmup')
    await pc.setLocalDescription(await pc.createOffer())
    await new Promise(resolve => {
      if (pc.iceGatheringState === 'complete') return resolve()
      pc.addEventListener('icegatheringstatechange', () => { if (pc.iceGatheringState === 'complete') resolve() })
      setTimeout(resolve, 5000)
    })
  } finally {
    pc.close()
  }
}

window.dialPing = async function dialPing (addr, timeoutMs) {
  if (addr.includes('/webrtc-direct')) await warmICE()
  const node = await createLibp2p({
    transports: [webTransport(), webRTCDirect({ rtcConfiguration: { iceServers: [] } }), webSockets()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    // The browser's default gater refuses loopback and private addresses.
    connectionGater: { denyDialMultiaddr: async () => false },
    services: { ping: ping(), identify: identify() }
  })
  try {
    const start = performance.now()
    const conn = await node.dial(multiaddr(addr), { signal: AbortSignal.timeout(timeoutMs) })
    const rtt = await node.services.ping.ping(conn.remotePeer, { signal: AbortSignal.timeout(timeoutMs) })
    return { handshakePlusOneRTTMillis: performance.now() - start, pingRTTMilllis: rtt }
  } finally {
    await node.stop()
  }
}
