// Runs the @libp2p/interop daemon suite. The 'go' slot is `tachyon daemon`
// (the binary named by TACHYON_BIN); the 'js' slot is a js-libp2p node
// served by @libp2p/daemon-server in this process.
//
// Run it inside a private network namespace, so that nothing leaves
// loopback:
//
//   TACHYON_BIN=/path/to/tachyon unshare -n sh -c 'ip link set lo up && npx mocha'
import { spawn } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { circuitRelayServer, circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { privateKeyFromProtobuf } from '@libp2p/crypto/keys'
import { createClient } from '@libp2p/daemon-client'
import { createServer } from '@libp2p/daemon-server'
import { floodsub } from '@libp2p/floodsub'
import { gossipsub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import { interopTests } from '@libp2p/interop'
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import { mplex } from '@libp2p/mplex'
import { ping } from '@libp2p/ping'
import { plaintext } from '@libp2p/plaintext'
import { tcp } from '@libp2p/tcp'
import { tls } from '@libp2p/tls'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'

const startTimeout = 15_000
const stopTimeout = 10_000

// The suite skips (instead of failing) a connect test whose spawn throws an
// error with this name.
class UnsupportedError extends Error {
  constructor (message) {
    super(message)
    this.name = 'UnsupportedError'
  }
}

// spawnTachyon starts `tachyon daemon` with p2pd flags, a control socket on
// port 0, and waits for the address it prints.
async function spawnTachyon (options) {
  const bin = process.env.TACHYON_BIN
  if (bin == null || bin === '') {
    throw new Error('TACHYON_BIN must name the tachyon binary')
  }
  if (options.transport != null && options.transport !== 'tcp') {
    throw new UnsupportedError(`tachyon daemon: transport ${options.transport} is not supported`)
  }
  const args = ['daemon', '-listen=/ip4/127.0.0.1/tcp/0']
  if (options.noListen === true) {
    args.push('-noListenAddrs')
  } else {
    args.push('-hostAddrs=/ip4/127.0.0.1/tcp/0')
  }
  args.push(`-${options.encryption ?? 'noise'}=true`)
  if (options.muxer != null) args.push(`-muxer=${options.muxer}`)
  if (options.key != null) args.push(`-id=${options.key}`)
  if (options.dht === true) args.push('-dhtServer')
  if (options.pubsub === true) args.push('-pubsub', `-pubsubRouter=${options.pubsubRouter ?? 'gossipsub'}`)
  if (options.relay === true) args.push('-relay')

  const proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  proc.stderr.on('data', (b) => { stderr += b })
  const exited = new Promise((resolve) => {
    proc.on('exit', (code, signal) => resolve({ code, signal }))
  })

  const addr = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL')
      reject(new Error(`tachyon daemon ${args.join(' ')} printed no control socket in ${startTimeout} ms; stderr: ${stderr}`))
    }, startTimeout)
    proc.stdout.on('data', (b) => {
      stdout += b
      const m = /^Control socket: (\S+)$/m.exec(stdout)
      if (m != null) {
        clearTimeout(timer)
        resolve(m[1])
      }
    })
    exited.then(({ code, signal }) => {
      clearTimeout(timer)
      reject(new Error(`tachyon daemon ${args.join(' ')} exited (code ${code}, signal ${signal}): ${stderr.trim()}`))
    })
    proc.on('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
  })

  return {
    client: createClient(multiaddr(addr)),
    async stop () {
      proc.kill('SIGTERM')
      let timer
      const res = await Promise.race([
        exited,
        new Promise((resolve) => { timer = setTimeout(() => resolve(null), stopTimeout) })
      ])
      clearTimeout(timer)
      if (res == null) {
        proc.kill('SIGKILL')
        throw new Error(`tachyon daemon did not stop within ${stopTimeout} ms of SIGTERM`)
      }
      if (res.code !== 0) {
        throw new Error(`tachyon daemon stopped with code ${res.code}, signal ${res.signal}: ${stderr.trim()}`)
      }
    }
  }
}

// spawnJs builds a js-libp2p node and serves it with @libp2p/daemon-server.
async function spawnJs (options) {
  if (options.transport != null && options.transport !== 'tcp') {
    throw new UnsupportedError(`js daemon: transport ${options.transport} is not configured in this runner`)
  }
  const opts = {
    addresses: {
      listen: options.noListen === true ? [] : ['/ip4/127.0.0.1/tcp/0']
    },
    transports: [tcp(), circuitRelayTransport()],
    connectionEncrypters: [],
    streamMuxers: [],
    services: {
      identify: identify(),
      ping: ping()
    }
  }
  if (options.key != null) {
    opts.privateKey = privateKeyFromProtobuf(await readFile(options.key))
  }
  switch (options.encryption ?? 'noise') {
    case 'noise': opts.connectionEncrypters.push(noise()); break
    case 'tls': opts.connectionEncrypters.push(tls()); break
    case 'plaintext': opts.connectionEncrypters.push(plaintext()); break
    default: throw new Error(`unknown encryption ${options.encryption}`)
  }
  switch (options.muxer ?? 'yamux') {
    case 'yamux': opts.streamMuxers.push(yamux()); break
    case 'mplex': opts.streamMuxers.push(mplex()); break
    default: throw new Error(`unknown muxer ${options.muxer}`)
  }
  if (options.dht === true) {
    opts.services.dht = kadDHT({
      protocol: '/ipfs/kad/1.0.0',
      peerInfoMapper: passthroughMapper,
      clientMode: false
    })
  }
  if (options.pubsub === true) {
    opts.services.pubsub = options.pubsubRouter === 'floodsub' ? floodsub() : gossipsub()
  }
  if (options.relay === true) {
    opts.services.relay = circuitRelayServer({
      reservations: { maxReservations: Infinity }
    })
  }
  const node = await createLibp2p(opts)
  const server = createServer(multiaddr('/ip4/127.0.0.1/tcp/0'), node)
  await server.start()
  return {
    client: createClient(server.getMultiaddr()),
    async stop () {
      await server.stop()
    }
  }
}

const factory = {
  async spawn (options) {
    return options.type === 'go' ? spawnTachyon(options) : spawnJs(options)
  }
}

interopTests(factory)
