'use strict'
// JS baseline for bench/plugin.py: fulfilled transfers per second between two reference plugins
// (ilp-plugin-payment-channel-framework 1.3.5) in one Node process over loopback WebSockets.
//
// A stateful listener (in-memory object store, the reference's usual server) and a stateless
// client; the client pays, the listener fulfils every prepare as it arrives. `--in-flight` transfers
// are outstanding at any time; a transfer counts when the client sees its outgoing_fulfill.
// Reports wall-clock rate and rate per CPU second of this process (the machine is shared).
//
// Uses the pinned reference installed in tests/interop/js (run `npm ci` there first, or let the
// interop tests install it). Prints one human line and one JSON line.
//
// node bench/js/plugin_bench.js [--transfers 20000] [--in-flight 100] [--warmup 1000] [--two-processes]
//
// --two-processes forks the listener into a child Node process (each plugin gets a core); the CPU
// rate is then the client process's alone, as in bench/plugin.py's "2 processes" rows.

const path = require('path')
const crypto = require('crypto')
const { createRequire } = require('module')

const interop = path.join(__dirname, '..', '..', 'tests', 'interop', 'js')
const requireInterop = createRequire(path.join(interop, 'package.json'))
const Plugin = requireInterop('ilp-plugin-payment-channel-framework')
const { startListener } = require(path.join(interop, 'loopback.js'))

function option (name, fallback) {
  const i = process.argv.indexOf('--' + name)
  return i >= 0 ? Number(process.argv[i + 1]) : fallback
}

const TRANSFERS = option('transfers', 20000)
const IN_FLIGHT = option('in-flight', 100)
const WARMUP = option('warmup', 1000)
const TWO_PROCESSES = process.argv.includes('--two-processes')
const ROLE_SERVER = process.argv.includes('--role-server')
const PREFIX = 'bench.js.'

class ObjectStore {
  constructor () { this.s = {} }
  get (k) { return Promise.resolve(this.s[k]) }
  put (k, v) { this.s[k] = v; return Promise.resolve(null) }
  del (k) { delete this.s[k]; return Promise.resolve(null) }
}

const b64url = (buf) => buf.toString('base64').replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_')

async function startServer (fulfillmentText) {
  const { plugin: server, port } = await startListener((p) => new Plugin({
    listener: { port: p },
    incomingSecret: 'bench_secret',
    maxBalance: '1000000000000000',
    prefix: PREFIX,
    info: { prefix: PREFIX, currencyCode: 'USD', currencyScale: 9, connectors: [] },
    _store: new ObjectStore()
  }))
  const failures = { count: 0 }
  server.on('incoming_prepare', (transfer) => {
    server.fulfillCondition(transfer.id, fulfillmentText).catch(() => { failures.count++ })
  })
  await server.connect()
  return { server, port, failures }
}

// The listener half in its own process: reports its port, fulfils until told to stop, then
// reports its balance and failures and exits.
async function serverProcess () {
  const fulfillmentText = process.argv[process.argv.indexOf('--role-server') + 1]
  const { server, port, failures } = await startServer(fulfillmentText)
  process.on('message', async () => {
    const balance = await server.getBalance()
    await server.disconnect()
    process.send({ balance, failures: failures.count }, () => process.exit(0))
  })
  process.send({ port })
}

// A stand-in with the server's interface for the parent, when the listener is the child process.
async function forkServer (fulfillmentText) {
  const { fork } = require('child_process')
  const child = fork(__filename, ['--role-server', fulfillmentText])
  const port = await new Promise((resolve, reject) => {
    child.once('message', (m) => resolve(m.port))
    child.once('exit', (code) => reject(new Error('server process exited with ' + code)))
  })
  let final = null
  const stop = () => final || (final = new Promise((resolve) => {
    child.once('message', resolve)
    child.send('stop')
  }))
  return {
    port,
    failures: { get count () { return 0 } },
    server: {
      getBalance: async () => (await stop()).balance,
      disconnect: async () => { await stop() }
    },
    childFailures: async () => (await stop()).failures
  }
}

async function main () {
  const fulfillment = crypto.randomBytes(32)
  const condition = b64url(crypto.createHash('sha256').update(fulfillment).digest())
  const fulfillmentText = b64url(fulfillment)

  const started = TWO_PROCESSES ? await forkServer(fulfillmentText) : await startServer(fulfillmentText)
  const { server, port } = started
  const client = new Plugin({ server: 'btp+ws://:bench_secret@127.0.0.1:' + port })
  const waiting = new Map()
  client.on('outgoing_fulfill', (transfer) => {
    const done = waiting.get(transfer.id)
    if (done) {
      waiting.delete(transfer.id)
      done()
    }
  })

  await client.connect()

  const payOne = () => {
    const id = crypto.randomUUID()
    const fulfilled = new Promise((resolve) => waiting.set(id, resolve))
    return client.sendTransfer({
      id,
      amount: '1',
      to: PREFIX + 'server',
      executionCondition: condition,
      expiresAt: new Date(Date.now() + 30000).toISOString()
    }).then(() => fulfilled)
  }

  const run = async (count) => {
    let next = 0
    const worker = async () => {
      while (next < count) {
        next++
        await payOne()
      }
    }
    const started = process.hrtime.bigint()
    const cpuStart = process.cpuUsage()
    await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, count) }, worker))
    const cpu = process.cpuUsage(cpuStart)
    return {
      wall: Number(process.hrtime.bigint() - started) / 1e9,
      cpu: (cpu.user + cpu.system) / 1e6
    }
  }

  await run(WARMUP)
  const { wall: seconds, cpu: cpuSeconds } = await run(TRANSFERS)
  const clientBalance = await client.getBalance() // a stateless client asks the server
  const serverBalance = await server.getBalance()
  await client.disconnect()
  await server.disconnect()
  const fulfilFailures = started.childFailures ? await started.childFailures() : started.failures.count

  const rate = TRANSFERS / seconds
  const result = {
    implementation: 'js-reference-1.3.5',
    node: process.version,
    transfers: TRANSFERS,
    in_flight: IN_FLIGHT,
    processes: TWO_PROCESSES ? 2 : 1,
    seconds: Number(seconds.toFixed(3)),
    cpu_seconds: Number(cpuSeconds.toFixed(3)),
    transfers_per_second: Math.round(rate),
    transfers_per_cpu_second: Math.round(TRANSFERS / cpuSeconds),
    server_balance: serverBalance,
    client_balance: clientBalance,
    fulfil_failures: fulfilFailures
  }
  console.log(`JS reference: ${TRANSFERS} fulfilled transfers, ${IN_FLIGHT} in flight, ` +
    `${seconds.toFixed(2)} s, ${Math.round(rate)} transfers/s, ` +
    `${Math.round(TRANSFERS / cpuSeconds)} per CPU second (balances ${serverBalance} / ${clientBalance})`)
  console.log(JSON.stringify(result))
  process.exit(0)
}

(ROLE_SERVER ? serverProcess : main)().catch((err) => {
  console.error(err)
  process.exit(1)
})
