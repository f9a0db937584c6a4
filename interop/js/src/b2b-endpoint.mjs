// The line protocol of a browser-to-browser endpoint process, shared by
// b2b-node.mjs and b2b-chromium.mjs:
//   <program> <relay maddr>
// starts a node that reserves on the relay and prints
// {"event":"ready","peer":...,"webrtc":...,"addrs":[...]}; then each line on
// stdin is a command, answered by one line:
//   {"cmd":"dial","target":<maddr>}  -> {"event":"result",...}
//   {"cmd":"report"}                 -> {"event":"report",...}
// A failure prints {"event":"error","error":...}. When stdin closes, the
// node stops and the process exits. Logs go to stderr.
import readline from 'node:readline'

function emit (event, body) {
  process.stdout.write(JSON.stringify({ event, ...body }) + '\n')
}

// run drives one endpoint: ops has start(relay), ready(), dial(target),
// report() and stop().
export async function run (ops, argv) {
  let code = 0
  try {
    if (argv.length !== 1) throw new Error(`usage: <relay maddr>; got ${JSON.stringify(argv)}`)
    await ops.start(argv[0])
    emit('ready', await ops.ready())
    for await (const line of readline.createInterface({ input: process.stdin })) {
      const cmd = JSON.parse(line)
      try {
        if (cmd.cmd === 'dial') emit('result', await ops.dial(cmd.target))
        else if (cmd.cmd === 'report') emit('report', await ops.report())
        else throw new Error(`unknown command ${line}`)
      } catch (err) {
        emit('error', { error: String(err?.stack ?? err) })
      }
    }
  } catch (err) {
    emit('error', { error: String(err?.stack ?? err) })
    code = 1
  }
  await Promise.race([ops.stop().catch(() => {}), new Promise(resolve => setTimeout(resolve, 5000))])
  process.exit(code)
}
