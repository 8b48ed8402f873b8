'use strict'
// One side of a bench/transfers.py run, on the JS reference (ilp-plugin-payment-channel-framework
// 1.3.5 as pinned in tests/interop/js): the same roles and JSON-lines protocol as
// bench/transfer_peer.py, so the driver pairs either implementation with either.
//
//   node bench/js/transfer_peer.js listener --fulfillment F --warmup W --total T
//     A stateful listener over an in-memory object store (the reference's usual server). Prints
//     {"port"}; fulfils every incoming prepare; on "stop" (a line on stdin) waits until T are
//     fulfilled (bounded), prints its result line and exits.
//   node bench/js/transfer_peer.js client --port P --condition C --warmup W --total T --in-flight K
//     A stateless client: K workers each send a transfer of 1 and wait for its outgoing_fulfill.
//     Prints {"warm"} when W transfers are fulfilled, its result line when all T are, then waits
//     for "stop".
//
// The CPU and wall windows run from the W-th fulfilled transfer to the T-th; latency is per
// transfer (index >= W), sendTransfer called to outgoing_fulfill. Either side exits when its
// stdin closes, so a dead driver leaves nothing running.

const path = require('path')
const fs = require('fs')
const crypto = require('crypto')
const readline = require('readline')
const { createRequire } = require('module')

const interop = path.join(__dirname, '..', '..', 'tests', 'interop', 'js')
const requireInterop = createRequire(path.join(interop, 'package.json'))
const Plugin = requireInterop('ilp-plugin-payment-channel-framework')
const { startListener } = require(path.join(interop, 'loopback.js'))

const SECRET = 'bench_secret'
const PREFIX = 'bench.'

// Options come as --name=value (a base64url value may start with "-").
function option (name, fallback) {
  const found = process.argv.find((arg) => arg.startsWith('--' + name + '='))
  return found === undefined ? fallback : found.slice(name.length + 3)
}

function send (message) {
  process.stdout.write(JSON.stringify(message) + '\n')
}

function peakRssKib () {
  const match = /VmHWM:\s+(\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))
  return match ? Number(match[1]) : null
}

// Order-independent digest of a set of transfer ids (sum of each id's first 64 bits, mod 2^64),
// compared by the driver between both sides.
function digest (ids) {
  let sum = 0n
  for (const id of ids) sum += BigInt('0x' + id.replace(/-/g, '').slice(0, 16))
  return (sum % (1n << 64n)).toString()
}

// Window marks: CPU (µs, all threads) and wall clock at the warm-up mark and at the end.
class Window {
  constructor () { this.marks = [] }
  mark () { this.marks.push({ cpu: process.cpuUsage(), wall: process.hrtime.bigint() }) }
  result () {
    if (this.marks.length < 2) return { cpu_s: null, wall_s: null }
    const [a, b] = this.marks
    const cpu = (b.cpu.user + b.cpu.system - a.cpu.user - a.cpu.system) / 1e6
    return { cpu_s: cpu, wall_s: Number(b.wall - a.wall) / 1e9 }
  }
}

function stdinLines (onLine) {
  const lines = readline.createInterface({ input: process.stdin })
  lines.on('line', onLine)
  lines.on('close', () => process.exit(3))
}

class ObjectStore {
  constructor () { this.s = {} }
  get (k) { return Promise.resolve(this.s[k]) }
  put (k, v) { this.s[k] = v; return Promise.resolve(null) }
  del (k) { delete this.s[k]; return Promise.resolve(null) }
}

async function listener () {
  const fulfillment = option('fulfillment')
  const warmup = Number(option('warmup', 0))
  const total = Number(option('total'))
  const { plugin: server, port } = await startListener((p) => new Plugin({
    listener: { port: p },
    incomingSecret: SECRET,
    maxBalance: '1000000000000000',
    prefix: PREFIX,
    info: { prefix: PREFIX, currencyCode: 'USD', currencyScale: 9, connectors: [] },
    _store: new ObjectStore()
  }))
  const window = new Window()
  const ids = new Set()
  const errors = []
  let failed = 0
  if (warmup === 0) window.mark()
  server.on('incoming_prepare', (transfer) => {
    server.fulfillCondition(transfer.id, fulfillment).then(() => {
      ids.add(transfer.id)
      if (ids.size === warmup || ids.size === total) window.mark()
    }, (err) => {
      failed++
      if (errors.length < 5) errors.push(String(err))
    })
  })
  await server.connect()
  send({ port })
  stdinLines(async () => {
    const deadline = Date.now() + 30000
    while (ids.size + failed < total && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    const balance = await server.getBalance()
    await server.disconnect()
    send({
      fulfilled: ids.size,
      failed,
      errors,
      balance,
      digest: digest(ids),
      ...window.result(),
      peak_rss_kib: peakRssKib(),
      commits: null,
      operations: null
    })
    process.exit(0)
  })
}

async function client () {
  const port = Number(option('port'))
  const condition = option('condition')
  const warmup = Number(option('warmup', 0))
  const total = Number(option('total'))
  const inFlight = Number(option('in-flight', 1))
  const plugin = new Plugin({ server: `btp+ws://:${SECRET}@127.0.0.1:${port}` })
  const waiting = new Map()
  const latencies = []
  const window = new Window()
  const ids = new Set()
  const errors = []
  let failed = 0
  let done = 0
  const settle = (transfer, error) => {
    const entry = waiting.get(transfer.id)
    if (!entry) return
    waiting.delete(transfer.id)
    if (error) {
      entry.resolve(error)
      return
    }
    if (entry.index >= warmup) latencies.push(Number(process.hrtime.bigint() - entry.started) / 1e6)
    ids.add(transfer.id)
    done++
    if (done === warmup || done === total) window.mark()
    if (done === warmup) send({ warm: true })
    entry.resolve(null)
  }
  plugin.on('outgoing_fulfill', (transfer) => settle(transfer, null))
  plugin.on('outgoing_reject', (transfer) => settle(transfer, 'rejected'))
  plugin.on('outgoing_cancel', (transfer) => settle(transfer, 'cancelled'))
  await plugin.connect()
  const to = plugin.getPeerAccount()
  if (warmup === 0) window.mark()

  let next = 0
  const worker = async () => {
    while (next < total) {
      const index = next++
      const id = crypto.randomUUID()
      const started = process.hrtime.bigint()
      const outcome = new Promise((resolve) => waiting.set(id, { index, started, resolve }))
      let error
      try {
        await plugin.sendTransfer({
          id,
          amount: '1',
          to,
          executionCondition: condition,
          expiresAt: new Date(Date.now() + 30000).toISOString()
        })
        error = await outcome
      } catch (err) {
        waiting.delete(id)
        error = String(err)
      }
      if (error) {
        failed++
        if (errors.length < 5) errors.push(error)
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(inFlight, total) }, worker))
  const balance = await plugin.getBalance()
  latencies.sort((a, b) => a - b)
  send({
    fulfilled: done,
    failed,
    errors,
    balance,
    digest: digest(ids),
    ...window.result(),
    latencies_ms: percentiles(latencies),
    peak_rss_kib: peakRssKib(),
    commits: null,
    operations: null
  })
  stdinLines(async () => {
    await plugin.disconnect()
    process.exit(0)
  })
}

function percentiles (sorted) {
  if (sorted.length === 0) return null
  const rank = (q) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]
  return { p50: rank(0.5), p99: rank(0.99), max: sorted[sorted.length - 1], count: sorted.length }
}

const role = process.argv[2]
const roles = { listener, client }
if (!roles[role]) {
  console.error('usage: transfer_peer.js listener|client [options]')
  process.exit(2)
}
roles[role]().catch((err) => {
  console.error(err)
  process.exit(1)
})
