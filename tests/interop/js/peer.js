'use strict'
// One reference plugin (ilp-plugin-payment-channel-framework 1.3.5) run as a subprocess peer.
//
// Usage: node peer.js '<config json>' [--module path/to/module.js]
//
// Config: {
//   "options":  the plugin's options object, as a user of the reference would write it
//               (listener/server, incomingSecret, maxBalance, minBalance, prefix, info, ...);
//               a listener with port 0 gets a free loopback port;
//   "stateful": true to add an in-memory object store as `_store` (forced in module mode),
//   "store":    optional initial store contents {key: value},
//   "host":     the address the listener binds (default 127.0.0.1),
//   "moduleConfig": handed to a module's `create(config)` (see --module)
// }
// --module FILE: a payment-channel module for makePaymentChannelPlugin. FILE exports the module
// object itself, or `{ create (moduleConfig) { return module } }`.
//
// Request handler modes (registerRequestHandler): echo, fixed {ilp, custom}, reject {message}, hang,
// none.
//
// Protocol: JSON lines. In on stdin: {"id": n, "cmd": "name", "args": [...], "timeoutMs": ms?}.
// Out on stdout: {"id": n, "ok": true, "result": ...} | {"id": n, "ok": false, "error": {name,
// message, code?}}, plus unsolicited {"event": name, "args": [...], "t": ms} for every plugin event,
// {"event": "ready", "port": p} once the plugin exists (listener bound), and
// {"event": "unhandled_rejection" | "uncaught_exception", "error": {...}} for what the reference
// leaves unhandled (it does so on an auth refusal, for example). Argument values of the form
// {"$date": iso} become Dates and {"$buffer": base64} become Buffers; Buffers in answers and
// events become {"$buffer": base64}. stdin closing ends the process (after a bounded disconnect).

const crypto = require('crypto')
const path = require('path')
const readline = require('readline')
const { startListener, setListenHost } = require('./loopback')
const Reference = require('ilp-plugin-payment-channel-framework')

class ObjectStore {
  constructor (initial) { this.s = Object.assign({}, initial || {}) }
  get (k) { return Promise.resolve(this.s[k]) }
  put (k, v) { this.s[k] = v; return Promise.resolve(null) }
  del (k) { delete this.s[k]; return Promise.resolve(null) }
}

function write (obj) {
  process.stdout.write(JSON.stringify(toWire(obj)) + '\n')
}

function toWire (value) {
  if (Buffer.isBuffer(value)) return { $buffer: value.toString('base64') }
  if (value instanceof Date) return isNaN(value.getTime()) ? { $date: null } : value.toISOString()
  if (value instanceof Error) return errorToWire(value)
  if (Array.isArray(value)) return value.map(toWire)
  if (value && typeof value === 'object') {
    const out = {}
    for (const k of Object.keys(value)) out[k] = toWire(value[k])
    return out
  }
  return value === undefined ? null : value
}

function fromWire (value) {
  if (Array.isArray(value)) return value.map(fromWire)
  if (value && typeof value === 'object') {
    if (Object.keys(value).length === 1 && typeof value.$date === 'string') return new Date(value.$date)
    if (Object.keys(value).length === 1 && typeof value.$buffer === 'string') return Buffer.from(value.$buffer, 'base64')
    const out = {}
    for (const k of Object.keys(value)) out[k] = fromWire(value[k])
    return out
  }
  return value
}

function errorToWire (err) {
  if (!(err instanceof Error)) return { name: 'NonError', message: String(err) }
  const out = { name: err.name, message: err.message }
  if (err.code !== undefined) out.code = err.code
  return out
}

function parseArgs (argv) {
  const out = { config: {}, module: null }
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--module') out.module = argv[++i]
    else out.config = JSON.parse(argv[i])
  }
  return out
}

function loadModule (file, moduleConfig) {
  const exported = require(path.resolve(file))
  return typeof exported.create === 'function' ? exported.create(moduleConfig) : exported
}

function conditionOf (fulfillment) {
  return crypto.createHash('sha256').update(Buffer.from(fulfillment, 'base64')).digest('base64')
    .replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_')
}

function makeRequestHandler (plugin, mode, spec) {
  spec = spec || {}
  switch (mode) {
    case 'echo':
      // answers with the request's own ilp/custom, addressed back to the peer
      return (message) => Promise.resolve(Object.assign(
        { to: plugin.getPeerAccount(), from: plugin.getAccount() },
        message.ilp ? { ilp: message.ilp } : {},
        message.custom ? { custom: message.custom } : {}))
    case 'fixed':
      return () => Promise.resolve(Object.assign(
        { to: plugin.getPeerAccount(), from: plugin.getAccount() },
        spec.ilp ? { ilp: spec.ilp } : {},
        spec.custom ? { custom: spec.custom } : {}))
    case 'reject':
      return () => Promise.reject(new Error(spec.message || 'refused by the interop peer'))
    case 'hang':
      // never answers: the requester's timeout is what gets tested
      return () => new Promise(() => {})
    default:
      throw new Error('unknown request handler mode: ' + mode)
  }
}

async function main () {
  const { config, module: moduleFile } = parseArgs(process.argv.slice(2))
  if (config.host) setListenHost(config.host)

  let eventFilter = null // null: every event; a Set: only those names
  const autoFulfill = { byCondition: new Map(), ilp: null, fulfilled: 0, failed: 0, errors: [] }
  const store = (config.stateful || moduleFile) ? new ObjectStore(config.store) : null
  const PluginClass = moduleFile
    ? Reference.makePaymentChannelPlugin(loadModule(moduleFile, config.moduleConfig))
    : Reference

  const make = (port) => {
    const opts = JSON.parse(JSON.stringify(config.options || {}))
    if (port !== undefined) opts.listener.port = port
    if (store) opts._store = store
    const plugin = new PluginClass(opts)
    plugin.onAny(function (name, ...args) {
      if (name === 'incoming_prepare' && autoFulfill.byCondition.size) {
        runAutoFulfill(plugin, args[0])
      }
      if (eventFilter === null || eventFilter.has(name)) write({ event: name, args, t: Date.now() })
    })
    return plugin
  }

  const runAutoFulfill = (plugin, transfer) => {
    const fulfillment = autoFulfill.byCondition.get(transfer.executionCondition)
    if (!fulfillment) return
    plugin.fulfillCondition(transfer.id, fulfillment, autoFulfill.ilp || undefined).then(
      () => { autoFulfill.fulfilled++ },
      (err) => {
        autoFulfill.failed++
        if (autoFulfill.errors.length < 20) autoFulfill.errors.push(errorToWire(err))
      })
  }

  let plugin
  let port = null
  const listener = config.options && config.options.listener
  if (listener) {
    ({ plugin, port } = await startListener(make, { port: listener.port || 0 }))
  } else {
    plugin = make(undefined)
  }

  const commands = {
    connect: () => plugin.connect(),
    disconnect: () => plugin.disconnect(),
    isConnected: () => plugin.isConnected(),
    sendTransfer: (transfer) => plugin.sendTransfer(transfer),
    fulfillCondition: (id, fulfillment, ilp) => plugin.fulfillCondition(id, fulfillment, ilp),
    rejectIncomingTransfer: (id, reason) => plugin.rejectIncomingTransfer(id, reason),
    sendRequest: (message) => plugin.sendRequest(message),
    registerRequestHandler: (mode, spec) => {
      if (mode === 'none') return plugin.deregisterRequestHandler()
      return plugin.registerRequestHandler(makeRequestHandler(plugin, mode, spec))
    },
    deregisterRequestHandler: () => plugin.deregisterRequestHandler(),
    getBalance: () => plugin.getBalance(),
    getLimit: () => plugin.getLimit(),
    getPeerBalance: () => plugin.getPeerBalance(),
    getInfo: () => plugin.getInfo(),
    getAccount: () => plugin.getAccount(),
    getPeerAccount: () => plugin.getPeerAccount(),
    isAuthorized: (token) => plugin.isAuthorized(token),
    // the reference's own TransferLog view of one transfer (a JSON string once settled)
    transferInfo: (id) => plugin._transfers.get(id),
    storeDump: () => (store ? store.s : null),
    events: (names) => { eventFilter = names === 'all' ? null : new Set(names || []) },
    // fulfil every incoming prepare whose condition is the hash of one of `fulfillments`
    autoFulfill: (fulfillments, ilp) => {
      autoFulfill.byCondition = new Map((fulfillments || []).map((f) => [conditionOf(f), f]))
      autoFulfill.ilp = ilp || null
    },
    autoFulfillStats: () => ({
      fulfilled: autoFulfill.fulfilled, failed: autoFulfill.failed, errors: autoFulfill.errors
    }),
    ping: () => 'pong'
  }

  const run = async ({ id, cmd, args, timeoutMs }) => {
    const fn = commands[cmd]
    if (!fn) return write({ id, ok: false, error: { name: 'UnknownCommand', message: String(cmd) } })
    let timer = null
    try {
      const call = Promise.resolve().then(() => fn(...fromWire(args || [])))
      const limit = timeoutMs
        ? new Promise((resolve, reject) => {
          timer = setTimeout(() => {
            const e = new Error(cmd + ' did not settle within ' + timeoutMs + ' ms')
            e.name = 'DriverTimeout'
            reject(e)
          }, timeoutMs)
        })
        : null
      const result = await (limit ? Promise.race([call, limit]) : call)
      write({ id, ok: true, result })
    } catch (err) {
      write({ id, ok: false, error: errorToWire(err) })
    } finally {
      if (timer) clearTimeout(timer)
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
  input.on('close', () => {
    const stop = setTimeout(() => process.exit(0), 1000)
    Promise.resolve(plugin.disconnect()).catch(() => {}).then(() => {
      clearTimeout(stop)
      process.exit(0)
    })
  })

  write({ event: 'ready', port, pid: process.pid })
}

process.on('unhandledRejection', (err) => write({ event: 'unhandled_rejection', error: errorToWire(err) }))
process.on('uncaughtException', (err) => write({ event: 'uncaught_exception', error: errorToWire(err) }))

main().catch((err) => {
  write({ event: 'fatal', error: errorToWire(err) })
  process.exit(3)
})
