// Checks shared by the page bundles and the Node scripts: 3 pings, and 1 MiB
// of a fixed pattern echoed over /tachyon-test/echo/1.0.0, compared byte
// for byte.
export const ECHO = '/tachyon-test/echo/1.0.0'
export const ECHO_SIZE = 1 << 20

export async function echo (conn) {
  const stream = await conn.newStream(ECHO, { signal: AbortSignal.timeout(10000) })
  const data = new Uint8Array(ECHO_SIZE)
  for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 10)) & 0xff
  const writer = (async () => {
    for (let off = 0; off < data.length; off += 16384) {
      if (!stream.send(data.subarray(off, off + 16384))) {
        await stream.onDrain({ signal: AbortSignal.timeout(20000) })
      }
    }
    await stream.close({ signal: AbortSignal.timeout(20000) })
  })()
  const got = new Uint8Array(ECHO_SIZE + 65536)
  let n = 0
  for await (const chunk of stream) {
    const b = chunk.subarray()
    if (n + b.length > got.length) throw new Error(`echo: more than ${got.length} bytes came back`)
    got.set(b, n)
    n += b.length
  }
  await writer
  if (n !== ECHO_SIZE) throw new Error(`echo: ${n} bytes came back, sent ${ECHO_SIZE}`)
  for (let i = 0; i < ECHO_SIZE; i++) {
    if (got[i] !== data[i]) throw new Error(`echo: byte ${i} differs`)
  }
  return n
}

// echoServer answers ECHO streams; served gets one entry per stream: the
// bytes sent back and the error that ended it, if any.
export function echoServer (served = []) {
  const handler = async (stream) => {
    const s = { bytes: 0 }
    served.push(s)
    try {
      for await (const chunk of stream) {
        s.bytes += chunk.byteLength
        if (!stream.send(chunk)) await stream.onDrain({ signal: AbortSignal.timeout(20000) })
      }
      await stream.close({ signal: AbortSignal.timeout(20000) })
    } catch (err) {
      s.error = String(err?.stack ?? err)
      stream.abort(err)
    }
  }
  return { handler, served }
}

// ping3 pings peer 3 times and sets r.pingMs and r.pingErrors; each ping
// runs even if an earlier one failed.
export async function ping3 (node, peer, r) {
  r.pingMs = []
  r.pingErrors = []
  for (let i = 0; i < 3; i++) {
    try {
      r.pingMs.push(await node.services.ping.ping(peer, { signal: AbortSignal.timeout(5000) }))
    } catch (err) {
      r.pingErrors.push(`ping ${i + 1}: ${err?.stack ?? err}`)
    }
  }
}
