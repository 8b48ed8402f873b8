'use strict'
// ilp-plugin-btp 1.5.0 (BTP 2.0, as pinned in tests/interop/js_connector) send_data round trips,
// for comparing with our BtpPlugin in the same run.
//
//   node bench/js/btp_v2_peer.js pair --count=N --in-flight=K --warmup=W
//     Two plugins in this process: a listener that fulfils every Prepare and a client that sends
//     N Prepares (after W warm-up ones) with K outstanding. Prints {"warm": true} after the
//     warm-up, then {count, inFlight, seconds, rate, failed, cpu_s} (cpu_s: this process's CPU
//     over the measured part).
//   node bench/js/btp_v2_peer.js listener [--secret=S]
//     A listener that fulfils every Prepare; prints {"port"} once bound; exits when stdin closes.
//     Pair it with any client (ours or the one below).
//   node bench/js/btp_v2_peer.js client --url=btp+ws://:S@127.0.0.1:P --count=N --in-flight=K --warmup=W
//     A client against any listener that fulfils with sha256(data) (ours or the one above);
//     prints the same result line.
//
// Each Prepare carries distinct data and the condition sha256(sha256(data)), the scheme of the
// interop harness; a Prepare not fulfilled counts as a failure in the result.
//
// Needs the pinned packages installed: `npm ci` in tests/interop/js_connector (the interop tests
// run it on first use).

const path = require('path')
const crypto = require('crypto')
const { createRequire } = require('module')

const project = path.join(__dirname, '..', '..', 'tests', 'interop', 'js_connector')
const requireProject = createRequire(path.join(project, 'package.json'))
const BtpPlugin = requireProject('ilp-plugin-btp')
const IlpPacket = requireProject('ilp-packet')

function option (name, fallback) {
  const found = process.argv.find((arg) => arg.startsWith('--' + name + '='))
  return found === undefined ? fallback : found.slice(name.length + 3)
}

function sha256 (buf) {
  return crypto.createHash('sha256').update(buf).digest()
}

function fulfiller (plugin) {
  plugin.registerDataHandler(async (data) => {
    const prepare = IlpPacket.deserializeIlpPrepare(data)
    return IlpPacket.serializeIlpFulfill({ fulfillment: sha256(prepare.data), data: Buffer.alloc(0) })
  })
}

function listener (secret) {
  const plugin = new BtpPlugin({ listener: { port: 0, secret, wsOpts: { host: '127.0.0.1', port: 0 } } })
  fulfiller(plugin)
  const connected = plugin.connect()
  return { plugin, connected }
}

async function boundPort (plugin) {
  for (let i = 0; i < 1000; i++) {
    const address = plugin._wss && plugin._wss.address()
    if (address && typeof address === 'object') return address.port
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
  throw new Error('listener did not bind')
}

async function run (client, { count, inFlight, warmup }) {
  const expiry = 30000
  let seq = 0
  const one = async () => {
    const data = Buffer.from('bench-' + (seq++))
    const reply = await client.sendData(IlpPacket.serializeIlpPrepare({
      amount: '1',
      executionCondition: sha256(sha256(data)),
      expiresAt: new Date(Date.now() + expiry),
      destination: 'test.bench.peer',
      data
    }))
    return reply[0] === IlpPacket.Type.TYPE_ILP_FULFILL
  }
  const batch = async (total) => {
    let started = 0
    let failed = 0
    const worker = async () => {
      while (started < total) {
        started++
        if (!(await one())) failed++
      }
    }
    await Promise.all(Array.from({ length: Math.min(inFlight, total) }, worker))
    return failed
  }
  await batch(warmup)
  console.log(JSON.stringify({ warm: true }))
  const cpu0 = process.cpuUsage()
  const t0 = process.hrtime.bigint()
  const failed = await batch(count)
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9
  const cpu = process.cpuUsage(cpu0)
  const cpuSeconds = (cpu.user + cpu.system) / 1e6
  return { impl: 'ilp-plugin-btp 1.5.0', count, inFlight, seconds, rate: count / seconds, failed, cpu_s: cpuSeconds }
}

function params () {
  return {
    count: Number(option('count', '10000')),
    inFlight: Number(option('in-flight', '100')),
    warmup: Number(option('warmup', '1000'))
  }
}

async function main () {
  const mode = process.argv[2]
  if (mode === 'pair') {
    const secret = 'bench'
    const server = listener(secret)
    const port = await boundPort(server.plugin)
    const client = new BtpPlugin({ server: 'btp+ws://:' + secret + '@127.0.0.1:' + port })
    fulfiller(client)
    await Promise.all([client.connect(), server.connected])
    const result = await run(client, params())
    console.log(JSON.stringify(Object.assign({ mode: 'pair' }, result)))
    await client.disconnect()
    await server.plugin.disconnect()
    process.exit(0)
  } else if (mode === 'listener') {
    const server = listener(option('secret', 'bench'))
    console.log(JSON.stringify({ port: await boundPort(server.plugin) }))
    process.stdin.resume()
    process.stdin.on('end', () => process.exit(0))
  } else if (mode === 'client') {
    const client = new BtpPlugin({ server: option('url') })
    fulfiller(client)
    await client.connect()
    const result = await run(client, params())
    console.log(JSON.stringify(Object.assign({ mode: 'client' }, result)))
    await client.disconnect()
    process.exit(0)
  } else {
    console.error('usage: btp_v2_peer.js pair|listener|client [--count=N --in-flight=K --warmup=W --url=U]')
    process.exit(2)
  }
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : err)
  process.exit(1)
})
