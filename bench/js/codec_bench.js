'use strict'
// Encode/decode throughput of btp-packet (the reference's BTP codec) for the shapes bench/codec.py
// measures in Python. Prints one JSON line: {"prepare": {...}, "fulfill": {...}} with ops/s.
// Usage: node codec_bench.js <seconds-per-window> <windows> [expected-hex-json]
// Each rate is the best of <windows> timed windows, as in bench/codec.py.

const btp = require('btp-packet')

const SECONDS = Number(process.argv[2] || '1')
const WINDOWS = Number(process.argv[3] || '3')
const ILP = Buffer.from(
  '012a00000000000003e8166578616d706c652e7265642e636c69656e742e626f620968656c6c6f20696c7000', 'hex')
const CUSTOM = Buffer.from('{"field":"some stuff"}', 'utf8')
const TRANSFER_ID = '5709e97e-ffb5-5454-5c53-cfaa5a0cd4c1'
const CONDITION = 'DwpuPwI9WR8IDyeC-G41-vxZ55EXCYo5BiShGjARp7A'
const FULFILLMENT = 'NfFfJgKDXxHb1F2AjrsSetGZzRT3SUZkDYqCyPMCfAE'
const EXPIRES_AT = new Date('2017-12-06T19:09:38.123Z')

function encodePrepare () {
  return btp.serializePrepare({
    transferId: TRANSFER_ID,
    amount: '10',
    executionCondition: CONDITION,
    expiresAt: EXPIRES_AT
  }, 12345, [
    { protocolName: 'ilp', contentType: btp.MIME_APPLICATION_OCTET_STREAM, data: ILP },
    { protocolName: 'custom', contentType: btp.MIME_APPLICATION_JSON, data: CUSTOM }
  ])
}

function encodeFulfill () {
  return btp.serializeFulfill({ transferId: TRANSFER_ID, fulfillment: FULFILLMENT }, 12346, [])
}

// Runs fn in batches of 1000 until SECONDS have passed; returns operations per second.
function window (fn) {
  let ops = 0
  const start = process.hrtime.bigint()
  const budget = BigInt(Math.round(SECONDS * 1e9))
  let elapsed = 0n
  while (elapsed < budget) {
    for (let i = 0; i < 1000; i++) fn()
    ops += 1000
    elapsed = process.hrtime.bigint() - start
  }
  return ops / (Number(elapsed) / 1e9)
}

function rate (fn) {
  for (let i = 0; i < 20000; i++) fn() // warm-up so the JIT has compiled fn
  let best = 0
  for (let w = 0; w < WINDOWS; w++) best = Math.max(best, window(fn))
  return best
}

function measure (encodeFn, expectedHex) {
  const frame = encodeFn()
  if (expectedHex && frame.toString('hex') !== expectedHex) {
    throw new Error('JS frame differs from the Python frame: ' + frame.toString('hex'))
  }
  return {
    bytes: frame.length,
    encode: rate(encodeFn),
    decode: rate(() => btp.deserialize(frame)),
    roundTrip: rate(() => btp.deserialize(encodeFn()))
  }
}

const expected = JSON.parse(process.argv[4] || '{}')
const result = {
  versions: { node: process.version, 'btp-packet': require('btp-packet/package.json').version },
  prepare: measure(encodePrepare, expected.prepare),
  fulfill: measure(encodeFulfill, expected.fulfill)
}
console.log(JSON.stringify(result))
