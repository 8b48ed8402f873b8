'use strict'
// The JavaScript side of the interop tests of today's Interledger, in one node process: an
// in-process ilp-connector 23.0.2 with configurable accounts, JS end hosts attached to it (a
// fulfiller/sender on ilp-plugin-btp, an ilp-protocol-stream server with SPSP over HTTP, a STREAM
// client), and stand-alone ilp-plugin-btp peers. Everything binds 127.0.0.1.
//
// Usage: node harness.js '<config json>'
// Protocol: JSON lines. In on stdin: {"id": n, "cmd": name, ...fields}. Out on stdout:
//   {"id": n, "ok": true, "result": {...}} | {"id": n, "ok": false, "error": {name, message, ...}}
//   and unsolicited {"event": name, ...}: first {"event": "ready", ...} (or {"event": "fatal"}).
// stdin closing or {"cmd": "stop"} ends the process. tests/interop/README.md documents the config,
// the commands and the events.

const crypto = require('crypto')
const http = require('http')
const https = require('https')
const readline = require('readline')
const { setListenHost, watchListen, freePort } = require('../js/loopback')

const IlpPacket = require('ilp-packet')
const ILDCP = require('ilp-protocol-ildcp')
const BtpPlugin = require('ilp-plugin-btp')
const { createApp } = require('ilp-connector')
// the connector logs to stdout by default; stdout carries the JSON lines of this harness
require('ilp-connector/dist/common/log').setOutputStream(process.stderr)
const { createServer: createStreamServer, createConnection } = require('ilp-protocol-stream')

const HOST = '127.0.0.1'
const DEFAULT_EXPIRY_MS = 30000

// ---------------------------------------------------------------------------------------------
// wire helpers

let sink = (line) => process.stdout.write(line)

function write (obj) {
  sink(JSON.stringify(obj) + '\n')
}

function errorToWire (err, extra) {
  if (!(err instanceof Error)) return Object.assign({ name: 'NonError', message: String(err) }, extra)
  const out = { name: err.name, message: err.message }
  if (err.code !== undefined) out.code = err.code
  if (err.ilpErrorCode !== undefined) out.ilpErrorCode = err.ilpErrorCode
  return Object.assign(out, extra)
}

function b64 (buf) {
  return Buffer.from(buf || Buffer.alloc(0)).toString('base64')
}

function fromB64 (value, field) {
  if (value === undefined || value === null) return Buffer.alloc(0)
  if (typeof value !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) {
    throw new TypeError(field + ' must be standard base64 text')
  }
  return Buffer.from(value, 'base64')
}

function sha256 (buf) {
  return crypto.createHash('sha256').update(buf).digest()
}

function amountString (value, field) {
  const text = String(value)
  if (!/^(0|[1-9][0-9]*)$/.test(text)) throw new TypeError(field + ' must be a non-negative integer string')
  return text
}

function withTimeout (promise, ms, what) {
  let timer
  const limit = new Promise((resolve, reject) => {
    timer = setTimeout(() => {
      const e = new Error(what + ' did not settle within ' + ms + ' ms')
      e.name = 'HarnessTimeout'
      reject(e)
    }, ms)
  })
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer))
}

async function until (predicate, ms, what) {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    const value = predicate()
    if (value) return value
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
  const e = new Error(what + ' not reached within ' + ms + ' ms')
  e.name = 'HarnessTimeout'
  throw e
}

/** The deterministic scheme every end host of the harness shares: fulfillment = sha256(data). */
function fulfillmentFor (data) {
  return sha256(data)
}

function describeReply (reply) {
  const out = { packet: b64(reply) }
  if (reply.length === 0) return Object.assign(out, { type: 'empty' })
  if (reply[0] === IlpPacket.Type.TYPE_ILP_FULFILL) {
    const f = IlpPacket.deserializeIlpFulfill(reply)
    return Object.assign(out, { type: 'fulfill', fulfillment: b64(f.fulfillment), data: b64(f.data) })
  }
  if (reply[0] === IlpPacket.Type.TYPE_ILP_REJECT) {
    const r = IlpPacket.deserializeIlpReject(reply)
    Object.assign(out, {
      type: 'reject', code: r.code, triggeredBy: r.triggeredBy, message: r.message, data: b64(r.data)
    })
    if (r.code === 'F08' && r.data.length >= 16) {
      out.amountTooLarge = {
        receivedAmount: r.data.readBigUInt64BE(0).toString(),
        maximumAmount: r.data.readBigUInt64BE(8).toString()
      }
    }
    return out
  }
  return Object.assign(out, { type: 'unknown' })
}

class ObjectStore {
  constructor () { this.s = {} }
  get (k) { return Promise.resolve(this.s[k]) }
  put (k, v) { this.s[k] = v; return Promise.resolve(null) }
  del (k) { delete this.s[k]; return Promise.resolve(null) }
}

// ---------------------------------------------------------------------------------------------
// connector accounts

const ACCOUNT_INFO_FIELDS = [
  'maxPacketAmount', 'balance', 'rateLimit', 'throughput', 'deduplicate', 'sendRoutes',
  'receiveRoutes', 'ilpAddressSegment'
]

function accountInfo (id, spec, defaults) {
  const info = {
    relation: spec.relation || 'child',
    assetCode: spec.assetCode || defaults.assetCode,
    assetScale: spec.assetScale === undefined ? defaults.assetScale : spec.assetScale
  }
  for (const field of ACCOUNT_INFO_FIELDS) {
    if (spec[field] !== undefined) info[field] = spec[field]
  }
  if (info.relation !== 'child') {
    // A Python peer speaks no route protocol (CCP): routes to it are configured, not learnt.
    if (info.sendRoutes === undefined) info.sendRoutes = false
    if (info.receiveRoutes === undefined) info.receiveRoutes = false
  }
  const options = JSON.parse(JSON.stringify(spec.options || {}))
  switch (spec.type) {
    case 'btp-server':
      if (typeof spec.secret !== 'string') throw new TypeError('accounts.' + id + '.secret must be a string')
      info.plugin = 'ilp-plugin-btp'
      info.options = Object.assign(options, {
        listener: { port: 0, secret: spec.secret, wsOpts: { host: HOST, port: 0 } }
      })
      break
    case 'btp-client':
      if (typeof spec.server !== 'string') throw new TypeError('accounts.' + id + '.server must be a btp+ws:// URL')
      info.plugin = 'ilp-plugin-btp'
      info.options = Object.assign(options, { server: spec.server })
      break
    case 'mini-accounts':
      info.plugin = 'ilp-plugin-mini-accounts'
      info.options = Object.assign(options, { wsOpts: { host: HOST, port: 0 } })
      break
    case 'lpi1-server':
    case 'lpi1-client':
      info.plugin = 'ilp-plugin-payment-channel-framework'
      info.options = options
      if (spec.type === 'lpi1-client') {
        if (typeof spec.server !== 'string') throw new TypeError('accounts.' + id + '.server must be a btp+ws:// URL')
        info.options.server = spec.server
      } else {
        if (typeof options.incomingSecret !== 'string') {
          throw new TypeError('accounts.' + id + '.options.incomingSecret must be a string')
        }
        info.options.listener = { port: 0 }
      }
      break
    default:
      throw new TypeError('accounts.' + id + '.type must be btp-server, btp-client, mini-accounts, lpi1-server or lpi1-client')
  }
  return info
}

function wssPort (plugin) {
  const wss = plugin && plugin._wss
  const address = wss && wss.address && wss.address()
  return address && typeof address === 'object' ? address.port : null
}

// ---------------------------------------------------------------------------------------------
// end hosts

class PluginHost {
  constructor (name, spec, harness) {
    this.name = name
    this.spec = spec
    this.harness = harness
    this.kind = spec.kind
    this.mode = spec.mode || (spec.kind === 'sender' ? 'reject' : 'fulfil')
    this.rejectCode = spec.code || 'F99'
    this.rejectMessage = spec.message || 'rejected by the harness'
    this.rejectData = fromB64(spec.rejectData, 'hosts.' + name + '.rejectData')
    this.fulfillData = fromB64(spec.fulfillData, 'hosts.' + name + '.fulfillData')
    this.quiet = !!spec.quiet
    this.address = spec.address || null
    this.ildcp = spec.ildcp || null
    this.counts = { prepares: 0, fulfilled: 0, rejected: 0 }
    this.plugin = null
    this.port = null
  }

  makePlugin (server) {
    const options = Object.assign({}, this.spec.pluginOptions || {})
    if (server) options.server = server
    else {
      // a fixed `listener.port` lets a restarted harness come back where its client redials
      const port = this.spec.listener.port || 0
      options.listener = { port, secret: this.spec.listener.secret, wsOpts: { host: HOST, port } }
    }
    const plugin = new BtpPlugin(options)
    plugin.on('connect', () => write({ event: 'connect', host: this.name }))
    plugin.on('disconnect', () => write({ event: 'disconnect', host: this.name }))
    plugin.on('error', (err) => write({ event: 'plugin_error', host: this.name, error: errorToWire(err) }))
    plugin.registerMoneyHandler(async (amount) => write({ event: 'money', host: this.name, amount: String(amount) }))
    return plugin
  }

  async handlePrepare (data) {
    if (data[0] !== IlpPacket.Type.TYPE_ILP_PREPARE) {
      return IlpPacket.serializeIlpReject({
        code: 'F00', triggeredBy: this.address || '', message: 'expected an ILP Prepare', data: Buffer.alloc(0)
      })
    }
    const prepare = IlpPacket.deserializeIlpPrepare(data)
    if (prepare.destination === 'peer.config' && this.ildcp) {
      return ILDCP.serve({
        requestPacket: data,
        handler: async () => ({
          clientAddress: this.ildcp.clientAddress,
          assetScale: this.ildcp.assetScale === undefined ? 9 : this.ildcp.assetScale,
          assetCode: this.ildcp.assetCode || 'XRP'
        }),
        serverAddress: this.address || 'test.harness'
      })
    }
    this.counts.prepares++
    let reply
    let outcome
    if (this.mode === 'hang') {
      outcome = 'hang'
      reply = new Promise(() => {})
    } else if (this.mode === 'fulfil') {
      const fulfillment = fulfillmentFor(prepare.data)
      if (sha256(fulfillment).equals(prepare.executionCondition)) {
        outcome = 'fulfill'
        this.counts.fulfilled++
        reply = IlpPacket.serializeIlpFulfill({ fulfillment, data: this.fulfillData })
      } else {
        outcome = 'reject'
        this.counts.rejected++
        reply = IlpPacket.serializeIlpReject({
          code: 'F05', triggeredBy: this.address || '', message: 'condition is not sha256(sha256(data))', data: Buffer.alloc(0)
        })
      }
    } else {
      outcome = 'reject'
      this.counts.rejected++
      reply = IlpPacket.serializeIlpReject({
        code: this.rejectCode, triggeredBy: this.address || '', message: this.rejectMessage, data: this.rejectData
      })
    }
    if (!this.quiet) {
      write({
        event: 'prepare',
        host: this.name,
        amount: prepare.amount,
        destination: prepare.destination,
        executionCondition: b64(prepare.executionCondition),
        expiresAt: prepare.expiresAt.toISOString(),
        data: b64(prepare.data),
        outcome
      })
    }
    return reply
  }

  async start () {
    if (this.spec.listener) {
      // stand-alone listener: connect() resolves only once a client has authenticated, so it is
      // not awaited here (the client dials after `ready`)
      this.plugin = this.makePlugin(null)
      this.plugin.registerDataHandler((data) => this.handlePrepare(data))
      this.connecting = this.plugin.connect().catch((err) => {
        write({ event: 'plugin_error', host: this.name, error: errorToWire(err) })
      })
      this.port = await until(() => wssPort(this.plugin), 5000, 'listener of host ' + this.name)
      return
    }
    const server = this.spec.server || this.harness.hostAccountUrl(this.name)
    this.plugin = this.makePlugin(server)
    this.plugin.registerDataHandler((data) => this.handlePrepare(data))
    await withTimeout(this.plugin.connect(), this.harness.connectTimeoutMs, 'connect of host ' + this.name)
    if (!this.spec.server) {
      const info = await ILDCP.fetch(this.plugin.sendData.bind(this.plugin))
      this.address = info.clientAddress
    }
  }

  describe () {
    const out = { kind: this.kind, address: this.address }
    if (this.port !== null) out.port = this.port
    return out
  }

  async send ({ destination, amount, data, executionCondition, expiresInMs }) {
    if (typeof destination !== 'string') throw new TypeError('destination must be an ILP address string')
    const payload = fromB64(data, 'data')
    const condition = executionCondition === undefined
      ? sha256(fulfillmentFor(payload))
      : fromB64(executionCondition, 'executionCondition')
    const prepare = IlpPacket.serializeIlpPrepare({
      amount: amountString(amount === undefined ? '0' : amount, 'amount'),
      executionCondition: condition,
      expiresAt: new Date(Date.now() + (expiresInMs || DEFAULT_EXPIRY_MS)),
      destination,
      data: payload
    })
    const started = process.hrtime.bigint()
    const reply = await this.plugin.sendData(prepare)
    const result = describeReply(reply)
    result.ms = Number(process.hrtime.bigint() - started) / 1e6
    return result
  }

  async sendMany ({ destination, amount, count, inFlight, data }) {
    // `count` Prepares with distinct data (the connector deduplicates identical ones), at most
    // `inFlight` outstanding; returns the outcome counts and the elapsed time
    const total = Number(count)
    const window = Math.max(1, Number(inFlight || 1))
    const base = fromB64(data, 'data')
    const outcomes = { fulfill: 0, reject: 0, error: 0, codes: {} }
    let next = 0
    const started = process.hrtime.bigint()
    const worker = async () => {
      while (next < total) {
        const i = next++
        const payload = Buffer.concat([base, Buffer.from(String(i).padStart(10, '0'))])
        try {
          const reply = await this.plugin.sendData(IlpPacket.serializeIlpPrepare({
            amount: amountString(amount === undefined ? '0' : amount, 'amount'),
            executionCondition: sha256(fulfillmentFor(payload)),
            expiresAt: new Date(Date.now() + DEFAULT_EXPIRY_MS),
            destination,
            data: payload
          }))
          if (reply[0] === IlpPacket.Type.TYPE_ILP_FULFILL) outcomes.fulfill++
          else {
            outcomes.reject++
            const code = IlpPacket.deserializeIlpReject(reply).code
            outcomes.codes[code] = (outcomes.codes[code] || 0) + 1
          }
        } catch (err) {
          outcomes.error++
        }
      }
    }
    await Promise.all(Array.from({ length: Math.min(window, total) }, worker))
    const seconds = Number(process.hrtime.bigint() - started) / 1e9
    return Object.assign(outcomes, { count: total, seconds, rate: seconds > 0 ? total / seconds : null })
  }
}

class StreamServerHost {
  constructor (name, spec, harness) {
    this.name = name
    this.spec = spec
    this.harness = harness
    this.kind = 'stream-server'
    this.receiveMax = spec.receiveMax === undefined ? null : amountString(spec.receiveMax, 'receiveMax')
    this.quiet = !!spec.quiet
    this.connections = new Map()
    this.destinations = new Map()
    this.received = 0n
    this.spspPort = null
  }

  async start () {
    this.plugin = new BtpPlugin({ server: this.harness.hostAccountUrl(this.name) })
    this.plugin.on('disconnect', () => write({ event: 'disconnect', host: this.name }))
    this.server = await withTimeout(createStreamServer({
      plugin: this.plugin,
      serverSecret: this.spec.serverSecret ? fromB64(this.spec.serverSecret, 'serverSecret') : undefined
    }), this.harness.connectTimeoutMs, 'stream server ' + this.name)
    this.address = this.server.generateAddressAndSecret().destinationAccount.split('.').slice(0, -1).join('.')
    this.server.on('connection', (connection) => this.onConnection(connection))
    this.http = http.createServer((req, res) => this.onSpsp(req, res))
    await new Promise((resolve, reject) => {
      this.http.once('error', reject)
      this.http.listen(0, HOST, resolve)
    })
    this.spspPort = this.http.address().port
  }

  /** Remember a destination handed out, by ilp-protocol-stream's short connection id for it. */
  issued (destination) {
    const id = destination.split('.').slice(-1)[0].replace(/[-_]/g, '').slice(0, 8)
    this.destinations.set(id, destination)
    return destination
  }

  onConnection (connection) {
    // keyed by the destination address the sender paid (as handed out by generate or SPSP)
    const key = this.destinations.get(connection.connectionId) || this.address + '.' + connection.connectionId
    // ilp-protocol-stream opens a new connection under the same address when a packet comes
    // after it forgot the first (a late closing packet, or the rest of a payment after a failure):
    // each connection keeps its own record (and its own stream_close line), and `totals` adds up
    // every record of an address, so an empty reopening never hides what was paid.
    const record = { total: 0n, data: [], closed: false, tag: connection.connectionTag || null }
    const records = this.connections.get(key)
    if (records === undefined) this.connections.set(key, [record])
    else records.push(record)
    write({ event: 'stream_connection', host: this.name, connection: key, connectionTag: record.tag })
    connection.on('stream', (stream) => {
      stream.setReceiveMax(this.receiveMax === null ? Infinity : this.receiveMax)
      stream.on('money', (amount) => {
        record.total += BigInt(amount)
        this.received += BigInt(amount)
        if (!this.quiet) {
          write({
            event: 'stream_money',
            host: this.name,
            connection: key,
            stream: stream.id,
            amount: String(amount),
            total: record.total.toString()
          })
        }
      })
      stream.on('data', (chunk) => {
        record.data.push(chunk)
        write({ event: 'stream_data', host: this.name, connection: key, stream: stream.id, data: b64(chunk) })
      })
    })
    const closed = () => {
      if (record.closed) return
      record.closed = true
      write({
        event: 'stream_close',
        host: this.name,
        connection: key,
        total: record.total.toString(),
        totalReceived: String(connection.totalReceived)
      })
    }
    connection.once('close', closed)
    connection.once('end', closed)
    connection.on('error', (err) => write({ event: 'stream_error', host: this.name, connection: key, error: errorToWire(err) }))
  }

  onSpsp (req, res) {
    const accept = String(req.headers.accept || '')
    if (req.method !== 'GET') {
      res.writeHead(405, { allow: 'GET' })
      return res.end()
    }
    if (!accept.includes('application/spsp4+json')) {
      res.writeHead(406, { 'content-type': 'text/plain' })
      return res.end('Accept must include application/spsp4+json')
    }
    const { destinationAccount, sharedSecret } = this.server.generateAddressAndSecret()
    this.issued(destinationAccount)
    const body = JSON.stringify({ destination_account: destinationAccount, shared_secret: b64(sharedSecret) })
    res.writeHead(200, { 'content-type': 'application/spsp4+json', 'cache-control': 'no-store' })
    res.end(body)
    write({ event: 'spsp_query', host: this.name, destination: destinationAccount })
  }

  describe () {
    return {
      kind: this.kind,
      address: this.address,
      spsp: 'http://' + HOST + ':' + this.spspPort + '/'
    }
  }

  generate ({ connectionTag }) {
    const { destinationAccount, sharedSecret } = this.server.generateAddressAndSecret(connectionTag)
    this.issued(destinationAccount)
    return { destination: destinationAccount, secret: b64(sharedSecret) }
  }

  totals () {
    const connections = {}
    for (const [key, records] of this.connections) {
      connections[key] = {
        total: records.reduce((sum, record) => sum + record.total, 0n).toString(),
        closed: records.every((record) => record.closed),
        connectionTag: records[0].tag,
        data: b64(Buffer.concat(records.flatMap((record) => record.data)))
      }
    }
    return { total: this.received.toString(), connections }
  }

  async close () {
    if (this.server) await withTimeout(this.server.close(), 2000, 'stream server close').catch(() => {})
    if (this.http) this.http.close()
  }
}

/** A plugin view whose connect/disconnect are no-ops, so one connected plugin serves many payments. */
function lease (plugin, counts, address) {
  return {
    connect: async () => {},
    disconnect: async () => {},
    isConnected: () => plugin.isConnected(),
    sendData: async (data) => {
      counts.prepares++
      let reply
      try {
        reply = await plugin.sendData(data)
      } catch (err) {
        counts.failed++
        throw err
      }
      if (reply[0] === IlpPacket.Type.TYPE_ILP_FULFILL) counts.fulfilled++
      else if (reply[0] === IlpPacket.Type.TYPE_ILP_REJECT) counts.rejected++
      else counts.other++
      return reply
    },
    sendMoney: (amount) => plugin.sendMoney(amount),
    registerDataHandler: (handler) => { plugin.deregisterDataHandler(); plugin.registerDataHandler(handler) },
    deregisterDataHandler: () => {
      // the payment is over: later packets to this host are refused as a closed receiver would
      plugin.deregisterDataHandler()
      plugin.registerDataHandler(async () => IlpPacket.serializeIlpReject({
        code: 'F99', triggeredBy: address, message: 'no STREAM connection open', data: Buffer.alloc(0)
      }))
    },
    registerMoneyHandler: () => {},
    deregisterMoneyHandler: () => {},
    on: () => {},
    once: () => {},
    removeListener: () => {}
  }
}

function spspQuery (url) {
  if (url.startsWith('$')) {
    const rest = url.slice(1)
    url = 'https://' + (rest.includes('/') ? rest : rest + '/.well-known/pay')
  }
  const get = url.startsWith('https:') ? https.get : http.get
  return new Promise((resolve, reject) => {
    const req = get(url, { headers: { accept: 'application/spsp4+json' } }, (res) => {
      const chunks = []
      res.on('data', (c) => chunks.push(c))
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error('SPSP query answered HTTP ' + res.statusCode))
        try {
          const body = JSON.parse(Buffer.concat(chunks).toString('utf8'))
          if (typeof body.destination_account !== 'string' || typeof body.shared_secret !== 'string') {
            return reject(new Error('SPSP answer lacks destination_account or shared_secret'))
          }
          resolve({ destination: body.destination_account, secret: fromB64(body.shared_secret, 'shared_secret') })
        } catch (err) {
          reject(err)
        }
      })
    })
    req.on('error', reject)
    req.setTimeout(10000, () => req.destroy(new Error('SPSP query timed out')))
  })
}

class StreamClientHost {
  constructor (name, spec, harness) {
    this.name = name
    this.spec = spec
    this.harness = harness
    this.kind = 'stream-client'
    this.queue = Promise.resolve()
  }

  async start () {
    this.plugin = new BtpPlugin({ server: this.harness.hostAccountUrl(this.name) })
    await withTimeout(this.plugin.connect(), this.harness.connectTimeoutMs, 'connect of host ' + this.name)
    const info = await ILDCP.fetch(this.plugin.sendData.bind(this.plugin))
    this.address = info.clientAddress
  }

  describe () {
    return { kind: this.kind, address: this.address }
  }

  pay (args) {
    // payments on one host run one after another (one data handler per plugin)
    const run = this.queue.then(() => this.payNow(args))
    this.queue = run.catch(() => {})
    return run
  }

  async payNow ({ destination, secret, spsp, amount, data, dataStreams, timeoutMs, slippage, exchangeRate }) {
    if (spsp !== undefined) {
      const answer = await spspQuery(String(spsp))
      destination = answer.destination
      secret = answer.secret
    } else {
      if (typeof destination !== 'string') throw new TypeError('destination must be an ILP address string')
      secret = fromB64(secret, 'secret')
      if (secret.length !== 32) throw new TypeError('secret must be 32 bytes (base64)')
    }
    const total = amountString(amount === undefined ? '0' : amount, 'amount')
    const counts = { prepares: 0, fulfilled: 0, rejected: 0, failed: 0, other: 0 }
    const opts = { plugin: lease(this.plugin, counts, this.address), destinationAccount: destination, sharedSecret: secret }
    if (slippage !== undefined) opts.slippage = Number(slippage)
    if (exchangeRate !== undefined) opts.exchangeRate = Number(exchangeRate)
    const started = process.hrtime.bigint()
    const connection = await withTimeout(createConnection(opts), timeoutMs || 20000, 'STREAM connect')
    let failure = null
    try {
      const stream = connection.createStream()
      if (data !== undefined) stream.write(fromB64(data, 'data'))
      if (total !== '0') await stream.sendTotal(total, { timeout: timeoutMs || 20000 })
      if (data !== undefined) await withTimeout(new Promise((resolve) => stream.end(resolve)), timeoutMs || 20000, 'STREAM data')
      // dataStreams: the same data again on that many streams in all, one after another
      for (let i = 1; data !== undefined && i < (dataStreams || 1); i++) {
        const next = connection.createStream()
        next.write(fromB64(data, 'data'))
        await withTimeout(new Promise((resolve) => next.end(resolve)), timeoutMs || 20000, 'STREAM data')
      }
    } catch (err) {
      failure = err
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9
    await withTimeout(connection.end(), 5000, 'STREAM close').catch(() => connection.destroy())
    const result = {
      sent: String(connection.totalSent),
      delivered: String(connection.totalDelivered),
      sourceAccount: connection.sourceAccount,
      destination,
      packets: counts,
      seconds
    }
    if (failure) {
      const e = new Error(failure.message)
      e.name = failure.name || 'Error'
      e.partial = result
      throw e
    }
    return result
  }
}

// ---------------------------------------------------------------------------------------------
// the harness

class Harness {
  constructor (config) {
    this.config = config
    this.address = config.address || 'test.conn'
    this.connectTimeoutMs = config.connectTimeoutMs || 10000
    this.defaults = { assetCode: config.assetCode || 'XRP', assetScale: config.assetScale === undefined ? 9 : config.assetScale }
    this.accountSpecs = Object.assign({}, config.accounts || {})
    this.hostSpecs = config.hosts || {}
    this.hosts = new Map()
    this.hostSecrets = new Map()
    this.accountPorts = {}
    this.app = null
  }

  hostAccountUrl (name) {
    const port = this.accountPorts[name]
    return 'btp+ws://:' + encodeURIComponent(this.hostSecrets.get(name)) + '@' + HOST + ':' + port
  }

  makeHost (name, spec) {
    switch (spec.kind) {
      case 'plugin':
      case 'fulfiller':
      case 'sender':
        return new PluginHost(name, spec, this)
      case 'stream-server':
        return new StreamServerHost(name, spec, this)
      case 'stream-client':
        return new StreamClientHost(name, spec, this)
      default:
        throw new TypeError('hosts.' + name + '.kind must be fulfiller, sender, plugin, stream-server or stream-client')
    }
  }

  async start () {
    for (const [name, spec] of Object.entries(this.hostSpecs)) {
      const standalone = spec.listener || spec.server
      if (standalone && !['plugin', 'fulfiller', 'sender'].includes(spec.kind)) {
        throw new TypeError('hosts.' + name + ': only fulfiller/sender/plugin hosts can stand alone')
      }
      if (!standalone) {
        if (this.accountSpecs[name]) throw new TypeError('hosts.' + name + ' clashes with an account of that name')
        const secret = crypto.randomBytes(16).toString('hex')
        this.hostSecrets.set(name, secret)
        this.accountSpecs[name] = Object.assign({ relation: 'child' }, spec.account || {}, { type: 'btp-server', secret })
      }
      this.hosts.set(name, this.makeHost(name, spec))
    }

    const accounts = {}
    const lpi1Listeners = []
    for (const [id, spec] of Object.entries(this.accountSpecs)) {
      accounts[id] = accountInfo(id, spec, this.defaults)
      if (spec.type === 'lpi1-server') lpi1Listeners.push(id)
    }
    const routes = (this.config.routes || []).slice()
    for (const [id, spec] of Object.entries(this.accountSpecs)) {
      for (const prefix of spec.routes || []) routes.push({ targetPrefix: prefix, peerId: id })
    }

    const needsConnector = Object.keys(accounts).length > 0
    if (needsConnector) {
      // the LPI v1 reference binds its listener in its constructor with server.listen(port, cb):
      // choose a free loopback port first and let the loopback shim report the outcome
      const bound = []
      for (const id of lpi1Listeners) {
        accounts[id].options.listener.port = await freePort()
      }
      if (lpi1Listeners.length) {
        watchListen((err, port) => bound.push({ err, port }))
      }
      const opts = Object.assign({
        env: 'test',
        ilpAddress: this.address,
        backend: 'one-to-one',
        spread: 0,
        store: 'memory',
        initialConnectTimeout: 250,
        accounts,
        routes
      }, this.config.connector || {})
      this.app = createApp(opts)
      if (lpi1Listeners.length) {
        await until(() => bound.length >= lpi1Listeners.length, 5000, 'LPI v1 listeners')
        watchListen(null)
        const failed = bound.find((b) => b.err)
        if (failed) throw failed.err
        for (const id of lpi1Listeners) this.accountPorts[id] = accounts[id].options.listener.port
      }
      for (const id of Object.keys(accounts)) {
        const plugin = this.app.getPlugin(id)
        plugin.on('connect', () => write({ event: 'account', account: id, connected: true }))
        plugin.on('disconnect', () => write({ event: 'account', account: id, connected: false }))
      }
      this.listening = this.app.listen()
      for (const [id, spec] of Object.entries(this.accountSpecs)) {
        if (spec.type === 'btp-server' || spec.type === 'mini-accounts') {
          this.accountPorts[id] = await until(() => wssPort(this.app.getPlugin(id)), 10000, 'listener of account ' + id)
        }
      }
    }
    // the end hosts dial their accounts while the connector is still waiting for them
    await Promise.all(Array.from(this.hosts.values()).map((host) => host.start()))
    if (this.listening) await withTimeout(this.listening, this.connectTimeoutMs + 5000, 'connector listen')
  }

  ready () {
    const accounts = {}
    for (const [id, spec] of Object.entries(this.accountSpecs)) {
      if (this.hostSecrets.has(id)) continue
      const out = { type: spec.type, relation: spec.relation || 'child' }
      const port = this.accountPorts[id]
      if (port !== undefined) out.port = port
      if (spec.type === 'btp-server') out.url = 'btp+ws://:' + encodeURIComponent(spec.secret) + '@' + HOST + ':' + port
      if (spec.type === 'mini-accounts') out.url = 'btp+ws://' + HOST + ':' + port
      if (spec.type === 'lpi1-server') {
        out.url = 'btp+ws://:' + encodeURIComponent(spec.options.incomingSecret) + '@' + HOST + ':' + port
      }
      if (out.relation === 'child') out.address = this.address + '.' + (spec.ilpAddressSegment || id)
      accounts[id] = out
    }
    const hosts = {}
    for (const [name, host] of this.hosts) hosts[name] = host.describe()
    return { event: 'ready', pid: process.pid, address: this.app ? this.address : null, accounts, hosts }
  }

  host (name, kinds) {
    const host = this.hosts.get(name)
    if (!host) throw new TypeError('unknown host: ' + name)
    if (kinds && !kinds.includes(host.kind)) throw new TypeError('host ' + name + ' is a ' + host.kind + ', not ' + kinds.join(' or '))
    return host
  }

  commands () {
    const plugins = ['plugin', 'fulfiller', 'sender']
    return {
      ping: () => ({ pong: true }),
      status: () => {
        const accounts = {}
        if (this.app) {
          for (const id of Object.keys(this.accountSpecs)) accounts[id] = { connected: this.app.getPlugin(id).isConnected() }
        }
        const hosts = {}
        for (const [name, host] of this.hosts) {
          hosts[name] = Object.assign(host.describe(), host.counts ? { counts: host.counts } : {},
            host.plugin ? { connected: host.plugin.isConnected() } : {})
        }
        return { accounts, hosts }
      },
      wait_connected: async ({ account, host, timeoutMs }) => {
        const plugin = host !== undefined ? this.host(host).plugin : this.app.getPlugin(account)
        await until(() => plugin.isConnected(), timeoutMs || 10000, (account || host) + ' connected')
        return { connected: true }
      },
      send: (args) => this.host(args.host, plugins).send(args),
      send_many: (args) => this.host(args.host, plugins).sendMany(args),
      send_money: async ({ host, amount }) => {
        await this.host(host, plugins).plugin.sendMoney(amountString(amount, 'amount'))
        return {}
      },
      set_mode: ({ host, mode, code, message, fulfillData, rejectData }) => {
        const h = this.host(host, plugins)
        if (!['fulfil', 'reject', 'hang'].includes(mode)) throw new TypeError('mode must be fulfil, reject or hang')
        h.mode = mode
        if (code !== undefined) h.rejectCode = code
        if (message !== undefined) h.rejectMessage = message
        if (fulfillData !== undefined) h.fulfillData = fromB64(fulfillData, 'fulfillData')
        if (rejectData !== undefined) h.rejectData = fromB64(rejectData, 'rejectData')
        return { mode }
      },
      counts: ({ host }) => Object.assign({}, this.host(host, plugins).counts),
      ildcp: async ({ host }) => {
        const plugin = this.host(host, plugins).plugin
        return ILDCP.fetch(plugin.sendData.bind(plugin))
      },
      disconnect: async ({ host }) => {
        await this.host(host, plugins).plugin.disconnect()
        return {}
      },
      generate: (args) => this.host(args.host, ['stream-server']).generate(args),
      received: ({ host }) => this.host(host, ['stream-server']).totals(),
      pay: (args) => this.host(args.host, ['stream-client']).pay(args),
      stop: () => {
        setImmediate(() => shutdown(0))
        return {}
      }
    }
  }

  async close () {
    for (const host of this.hosts.values()) {
      if (host.close) await host.close().catch(() => {})
      if (host.plugin) await Promise.resolve(host.plugin.disconnect()).catch(() => {})
    }
    if (this.app) await withTimeout(this.app.shutdown(), 3000, 'connector shutdown').catch(() => {})
  }
}

let harness = null
let stopping = false

function shutdown (code) {
  if (stopping) return
  stopping = true
  const force = setTimeout(() => process.exit(code), 4000)
  Promise.resolve(harness && harness.close()).catch(() => {}).then(() => {
    clearTimeout(force)
    process.exit(code)
  })
}

async function main () {
  setListenHost(HOST)
  harness = new Harness(JSON.parse(process.argv[2] || '{}'))
  await harness.start()
  const commands = harness.commands()

  const run = async (request) => {
    const { id, cmd } = request
    const fn = commands[cmd]
    if (!fn) return write({ id, ok: false, error: { name: 'UnknownCommand', message: String(cmd) } })
    try {
      const call = Promise.resolve().then(() => fn(request))
      const result = await (request.timeoutMs ? withTimeout(call, request.timeoutMs, cmd) : call)
      write({ id, ok: true, result: result === undefined ? {} : result })
    } catch (err) {
      write({ id, ok: false, error: errorToWire(err, err && err.partial ? { partial: err.partial } : undefined) })
    }
  }

  const input = readline.createInterface({ input: process.stdin, terminal: false })
  input.on('line', (line) => {
    if (!line.trim()) return
    let request
    try {
      request = JSON.parse(line)
    } catch (err) {
      return write({ event: 'bad_command', error: errorToWire(err) })
    }
    run(request)
  })
  input.on('close', () => shutdown(0))
  write(harness.ready())
}

if (require.main === module) {
  process.on('unhandledRejection', (err) => write({ event: 'unhandled_rejection', error: errorToWire(err) }))
  process.on('uncaughtException', (err) => write({ event: 'uncaught_exception', error: errorToWire(err) }))
  main().catch((err) => {
    write({ event: 'fatal', error: errorToWire(err) })
    shutdown(3)
  })
} else {
  // bench/js uses the same connector set-up in its own process
  setListenHost(HOST)
  module.exports = {
    Harness,
    fulfillmentFor,
    /** Where event lines go when used as a module (default stdout); `() => {}` drops them. */
    setEventSink: (fn) => { sink = fn }
  }
}
