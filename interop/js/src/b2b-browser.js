// The browser-to-browser endpoint in Chromium; bundled by esbuild into
// www/b2b.js and driven by b2b-chromium.mjs through window.b2b.
import { createPeer, dial, listen, listenerReport, trackPeerConnections } from './b2b-peer.js'
import { warmICE } from './warm-ice.js'

const pcs = trackPeerConnections(globalThis.RTCPeerConnection)
let peer

window.b2b = {
  async start (relay) {
    // Both sides need a host candidate: a gathering that finds none makes
    // the dial time out.
    const warm = await warmICE({ untilCandidate: true })
    console.log(`warm-up ICE gathering: ${warm.ms} ms, candidates ${JSON.stringify(warm.candidates)}`)
    if (warm.candidates.length === 0) throw new Error(`no ICE candidate gathered in ${warm.ms} ms`)
    peer = await createPeer(relay)
  },
  listen: () => listen(peer),
  report: () => listenerReport(peer, pcs),
  dial: target => dial(peer, target, pcs),
  stop: () => peer?.node.stop()
}
