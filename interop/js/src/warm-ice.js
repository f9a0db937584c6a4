// Browser only (Node has no global RTCPeerConnection).
// Chromium enumerates networks lazily; a throwaway ICE gathering before the
// first WebRTC dial makes that dial reliable (see the browser recipe).
// gatherOnce resolves with the host candidates one gathering found.
async function gatherOnce (timeoutMs) {
  const pc = new RTCPeerConnection({ iceServers: [] })
  const found = []
  try {
    pc.createDataChannel('warmup')
    pc.addEventListener('icecandidate', e => {
      if (e.candidate?.candidate) found.push(e.candidate.candidate)
    })
    await pc.setLocalDescription(await pc.createOffer())
    await new Promise(resolve => {
      if (pc.iceGatheringState === 'complete') return resolve()
      pc.addEventListener('icegatheringstatechange', () => {
        if (pc.iceGatheringState === 'complete') resolve()
      })
      setTimeout(resolve, timeoutMs)
    })
  } finally {
    pc.close()
  }
  return found
}

// warmICE gathers once; with untilCandidate it repeats, for up to
// budgetMs, until a gathering finds a candidate (under load the first
// gatherings can find none) and returns what the last one found.
export async function warmICE ({ untilCandidate = false, budgetMs = 10000 } = {}) {
  const t0 = performance.now()
  let found = await gatherOnce(3000)
  while (untilCandidate && found.length === 0 && performance.now() - t0 < budgetMs) {
    await new Promise(resolve => setTimeout(resolve, 200))
    found = await gatherOnce(3000)
  }
  return { ms: Math.round(performance.now() - t0), candidates: found }
}
