'use strict'
// JavaScript side of bench/codec.py: times btp-packet (the reference's BTP codec) on the same
// packets the Python side uses. It answers one JSON request per stdin line so the driver can
// interleave Python and JavaScript windows (fairer on a shared, noisy machine):
//   {"case": "prepare"|"fulfill", "op": "encode"|"decode"|"roundTrip", "seconds": 0.5}
//   -> {"ops": <operations>, "cpu": <process CPU seconds>, "wall": <seconds>}
// The first line of output is {"versions": …, "frames": {case: hex}} for a byte-for-byte check.

const readline = require('readline')
const btp = require('btp-packet')

const ILP = Buffer.from(
  '012a00000000000003e8166578616d706c652e7265642e636c69656e742e626f620968656c6c6f20696c7000', 'hex')
const CUSTOM = Buffer.from('{"field":"some stuff"}', 'utf8')
const TRANSFER_ID = '5709e97e-ffb5-5454-5c53-cfaa5a0cd4c1'
const CONDITION = 'DwpuPwI9WR8IDyeC-G41-vxZ55EXCYo5BiShGjARp7A'
const FULFILLMENT = 'NfFfJgKDXxHb1F2AjrsSetGZzRT3SUZkDYqCyPMCfAE'
const EXPIRES_AT = new Date('2017-12-06T19:09:38.123Z')

const ENCODERS = {
  prepare: () => btp.serializePrepare({
    transferId: TRANSFER_ID,
    amount: '10',
    executionCondition: CONDITION,
    expiresAt: EXPIRES_AT
  }, 12345, [
    { protocolName: 'ilp', contentType: btp.MIME_APPLICATION_OCTET_STREAM, data: ILP },
    { protocolName: 'custom', contentType: btp.MIME_APPLICATION_JSON, data: CUSTOM }
  ]),
  fulfill: () => btp.serializeFulfill({ transferId: TRANSFER_ID, fulfillment: FULFILLMENT }, 12346, [])
}

function operation (name, op) {
  const encode = ENCODERS[name]
  const frame = encode()
  if (op === 'encode') return encode
  if (op === 'decode') return () => btp.deserialize(frame)
  return () => btp.deserialize(encode())
}

const warmed = new Set()

// Runs fn in batches of 1000 until `seconds` of wall time have passed.
function window (fn, seconds) {
  const budget = BigInt(Math.round(seconds * 1e9))
  const cpuStart = process.cpuUsage()
  const start = process.hrtime.bigint()
  let ops = 0
  let elapsed = 0n
  while (elapsed < budget) {
    for (let i = 0; i < 1000; i++) fn()
    ops += 1000
    elapsed = process.hrtime.bigint() - start
  }
  const cpu = process.cpuUsage(cpuStart)
  return { ops, cpu: (cpu.user + cpu.system) / 1e6, wall: Number(elapsed) / 1e9 }
}

const frames = {}
for (const name of Object.keys(ENCODERS)) frames[name] = ENCODERS[name]().toString('hex')
console.log(JSON.stringify({
  versions: { node: process.version, 'btp-packet': require('btp-packet/package.json').version },
  frames
}))

const lines = readline.createInterface({ input: process.stdin })
lines.on('line', (line) => {
  const req = JSON.parse(line)
  const fn = operation(req.case, req.op)
  const key = req.case + ' ' + req.op
  if (!warmed.has(key)) {
    for (let i = 0; i < 20000; i++) fn() // let the JIT compile fn first
    warmed.add(key)
  }
  console.log(JSON.stringify(window(fn, req.seconds)))
})
