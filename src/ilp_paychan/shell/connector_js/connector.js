'use strict'
// The connector `ilp-paychan demo --stream --link connector` pays through: ilp-connector with two
// child accounts, `alice` and `bob`, each an ilp-plugin-btp listener on 127.0.0.1 with a fresh
// secret, and one-to-one rates (no spread), so a payment arrives whole.
//
// Usage: node connector.js ['{"maxPacketAmount": "1000"}']   (alice's incoming packet cap)
// Stdout carries one JSON line: {"event": "ready", "version", "address", "accounts": {id: {"url",
// "address"}}} once both listeners are bound, or {"event": "fatal", "error"}. The connector's log
// goes to stderr. Closing stdin (the parent ending) or SIGTERM/SIGINT stops the process.

const crypto = require('crypto')

require('ilp-connector/dist/common/log').setOutputStream(process.stderr)
const { createApp } = require('ilp-connector')
const VERSION = require('ilp-connector/package.json').version

const HOST = '127.0.0.1'
const ADDRESS = 'test.conn'
const ACCOUNTS = ['alice', 'bob']
const BIND_WAIT_MS = 10000

function say (obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

function boundPort (plugin) {
  // ilp-plugin-btp 1.5.0 keeps its WebSocket server here once connect() has started it
  const address = plugin._wss && plugin._wss.address()
  return address && typeof address === 'object' ? address.port : null
}

async function waitForPort (plugin, id) {
  const deadline = Date.now() + BIND_WAIT_MS
  for (;;) {
    const port = boundPort(plugin)
    if (port) return port
    if (Date.now() > deadline) throw new Error('account ' + id + ' did not bind a port')
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

let app = null
let stopping = false

function stop (code) {
  if (stopping) return
  stopping = true
  const force = setTimeout(() => process.exit(code), 3000)
  Promise.resolve(app && app.shutdown()).catch(() => {}).then(() => {
    clearTimeout(force)
    process.exit(code)
  })
}

async function main () {
  const options = JSON.parse(process.argv[2] || '{}')
  const secrets = {}
  const accounts = {}
  for (const id of ACCOUNTS) {
    secrets[id] = crypto.randomBytes(16).toString('hex')
    accounts[id] = {
      relation: 'child',
      assetCode: 'EUR',
      assetScale: 2,
      plugin: 'ilp-plugin-btp',
      options: { listener: { port: 0, secret: secrets[id], wsOpts: { host: HOST, port: 0 } } }
    }
  }
  if (options.maxPacketAmount !== undefined) {
    accounts.alice.maxPacketAmount = String(options.maxPacketAmount)
  }
  app = createApp({
    env: 'test',
    ilpAddress: ADDRESS,
    backend: 'one-to-one',
    spread: 0,
    store: 'memory',
    // the listeners connect when our clients dial, after `ready`: do not wait for them
    initialConnectTimeout: 200,
    accounts
  })
  const listening = app.listen()
  const ready = { event: 'ready', version: VERSION, address: ADDRESS, accounts: {} }
  for (const id of ACCOUNTS) {
    const port = await waitForPort(app.getPlugin(id), id)
    ready.accounts[id] = {
      url: 'btp+ws://:' + secrets[id] + '@' + HOST + ':' + port,
      address: ADDRESS + '.' + id
    }
  }
  await listening
  say(ready)
}

process.stdin.on('end', () => stop(0))
process.stdin.on('close', () => stop(0))
process.stdin.resume()
process.on('SIGTERM', () => stop(0))
process.on('SIGINT', () => stop(0))
main().catch((err) => {
  say({ event: 'fatal', error: String((err && err.stack) || err) })
  stop(1)
})
