// The js-libp2p side of the transport-interop matrix: one test-plans
// transport-interop peer (environment configuration, Redis "listenerAddr",
// one JSON line from the dialer) for every js-libp2p line. Each line's
// folder (v2/, v3/) holds its npm project and a main.mjs that imports that
// line's modules and hands them to run(), so this file resolves no package
// itself.
import net from 'node:net'

const log = (...a) => console.error('[js]', ...a)

// Minimal RESP client: PING, RPUSH and BLPOP are all the contract needs.
export function redis (addr) {
  const [host, port] = [addr.slice(0, addr.lastIndexOf(':')), Number(addr.slice(addr.lastIndexOf(':') + 1))]
  const sock = net.connect({ host, port })
  let buf = Buffer.alloc(0)
  let waiting = null
  const parse = (b, i) => { // returns [value, next index] or null if incomplete
    const eol = b.indexOf('\r\n', i)
    if (eol < 0) return null
    const line = b.toString('utf8', i + 1, eol)
    switch (String.fromCharCode(b[i])) {
      case '+': case ':': return [line, eol + 2]
      case '-': return [new Error('redis: ' + line), eol + 2]
      case '$': {
        const n = Number(line)
        if (n < 0) return [null, eol + 2]
        if (b.length < eol + 2 + n + 2) return null
        return [b.toString('utf8', eol + 2, eol + 2 + n), eol + 4 + n]
      }
      case '*': {
        const n = Number(line)
        if (n < 0) return [null, eol + 2]
        const out = []
        let j = eol + 2
        for (let k = 0; k < n; k++) {
          const r = parse(b, j)
          if (r == null) return null
          out.push(r[0]); j = r[1]
        }
        return [out, j]
      }
      default: return [new Error('redis: bad reply ' + line), b.length]
    }
  }
  sock.on('data', d => {
    buf = Buffer.concat([buf, d])
    const r = parse(buf, 0)
    if (r == null || waiting == null) return
    buf = buf.subarray(r[1])
    const w = waiting; waiting = null
    r[0] instanceof Error ? w.reject(r[0]) : w.resolve(r[0])
  })
  const ready = new Promise((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject) })
  return {
    ready,
    do (...args) {
      return new Promise((resolve, reject) => {
        waiting = { resolve, reject }
        sock.write(`*${args.length}\r\n` + args.map(a => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join(''))
      })
    },
    close () { sock.destroy() }
  }
}

export async function run (m) {
  const env = (k, d) => process.env[k] || d
  const transport = env('transport', '')
  const isDialer = env('is_dialer', '') === 'true'
  const ip = env('ip', '0.0.0.0')
  const timeoutS = Number(env('test_timeout_seconds', '180'))
  const listen = {
    tcp: `/ip4/${ip}/tcp/0`,
    ws: `/ip4/${ip}/tcp/0/ws`,
    'webrtc-direct': `/ip4/${ip}/udp/0/webrtc-direct`
  }[transport]
  if (listen == null) throw new Error(`unsupported transport ${transport}`)
  const t = { tcp: m.tcp(), ws: m.webSockets(), 'webrtc-direct': m.webRTCDirect({ rtcConfiguration: { iceServers: [] } }) }[transport]
  if (transport !== 'webrtc-direct') {
    if (env('security', '') !== 'noise') throw new Error(`unsupported security ${env('security', '')}`)
    if (env('muxer', '') !== 'yamux') throw new Error(`unsupported muxer ${env('muxer', '')}`)
  }
  const node = await m.createLibp2p({
    addresses: { listen: isDialer ? [] : [listen] },
    transports: [t],
    connectionEncrypters: [m.noise()],
    connectionEncryption: [m.noise()], // the 1.x spelling; later lines ignore it
    streamMuxers: [m.yamux()],
    connectionGater: { denyDialMultiaddr: async () => false },
    services: { ping: m.ping(), identify: m.identify() }
  })
  const r = redis(env('redis_addr', 'redis:6379'))
  await r.ready
  await r.do('PING')
  if (!isDialer) {
    const addr = node.getMultiaddrs().map(String).find(a => a.includes(`/ip4/${ip}/`)) ?? node.getMultiaddrs().map(String)[0]
    await r.do('RPUSH', 'listenerAddr', addr)
    log('listening on', addr)
    await new Promise(resolve => setTimeout(resolve, timeoutS * 1000))
    throw new Error('listener: test timeout')
  }
  const reply = await r.do('BLPOP', 'listenerAddr', String(timeoutS))
  if (reply == null) throw new Error('no listener address before the timeout')
  const start = performance.now()
  const conn = await node.dial(m.multiaddr(reply[1]), { signal: AbortSignal.timeout(timeoutS * 1000) })
  const rtt = await node.services.ping.ping(conn.remotePeer, { signal: AbortSignal.timeout(timeoutS * 1000) })
  const total = performance.now() - start
  process.stdout.write(JSON.stringify({ handshakePlusOneRTTMillis: total, pingRTTMilllis: rtt }) + '\n')
  r.close()
  await node.stop()
}
