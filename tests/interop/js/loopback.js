'use strict'
// Test-harness shim: make the reference's listener bind one loopback address and report how it went.
//
// ilp-plugin-payment-channel-framework 1.3.5 calls `server.listen(port, callback)` in its
// constructor, which binds every interface and turns a port already in use into an unhandled
// `error` event that ends the process. The reference has no host option, so the harness inserts
// the host into that one call form, and hands every listen outcome (bound port or error) to the
// callback registered with `watchListen`. Nothing else of the reference is changed.

const http = require('http')
const https = require('https')
const net = require('net')

let host = '127.0.0.1'
let watcher = null

function patch (proto) {
  const original = proto.listen
  proto.listen = function (...args) {
    if (typeof args[0] === 'number' && typeof args[1] === 'function') {
      args = [args[0], host, args[1]]
    }
    const report = watcher
    if (report) {
      this.once('listening', () => report(null, this.address().port))
      this.once('error', (err) => report(err, null))
    }
    return original.apply(this, args)
  }
}

patch(http.Server.prototype)
patch(https.Server.prototype)

/** Bind the reference's listeners to `address` from now on (default 127.0.0.1). */
function setListenHost (address) {
  host = address
}

/** Call `callback(err, port)` for the next listen outcomes (null to stop watching). */
function watchListen (callback) {
  watcher = callback
}

/** A port that was free on the loopback host a moment ago (the caller retries on a race). */
function freePort () {
  return new Promise((resolve, reject) => {
    const probe = net.createServer()
    probe.once('error', reject)
    probe.listen(0, host, () => {
      const port = probe.address().port
      probe.close(() => resolve(port))
    })
  })
}

/**
 * Construct a listener plugin via `make(port)` on a free loopback port, retrying when another
 * process takes the port first. Resolves to `{plugin, port}` once the port is bound.
 */
async function startListener (make, { port = 0, attempts = 10, timeoutMs = 5000 } = {}) {
  let lastError = null
  for (let i = 0; i < attempts; i++) {
    const chosen = port || await freePort()
    const outcome = new Promise((resolve) => {
      const timer = setTimeout(() => resolve({ err: new Error('listener did not start'), port: null }), timeoutMs)
      watchListen((err, bound) => {
        clearTimeout(timer)
        resolve({ err, port: bound })
      })
    })
    const plugin = make(chosen)
    const { err, port: bound } = await outcome
    watchListen(null)
    if (!err) return { plugin, port: bound }
    lastError = err
    if (port || err.code !== 'EADDRINUSE') break
  }
  throw lastError
}

module.exports = { setListenHost, watchListen, freePort, startListener }
