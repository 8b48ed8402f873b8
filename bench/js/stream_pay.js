'use strict'
// Time ilp-protocol-stream 2.7.2-alpha.3 paying a fixed amount through ilp-connector 23.0.2 (as
// pinned in tests/interop/js_connector, set up by its harness): a STREAM client and server, each a
// child of the connector over ilp-plugin-btp, on 127.0.0.1.
//
//   node bench/js/stream_pay.js --amount=A --max-packet=M --repeat=R
//
// Prints one JSON line per payment {amount, delivered, packets: {prepares, fulfilled, rejected},
// seconds} and a summary line {runs, amount, bestSeconds, medianSeconds}. The connector's rate
// limit middleware is off (its default of 10,000 packets a minute per account would be the bound);
// `--max-packet` is the payer's maxPacketAmount at the connector, so A / M packets at least.
//
// Needs the pinned packages installed: `npm ci` in tests/interop/js_connector (the interop tests
// run it on first use).

const path = require('path')

const project = path.join(__dirname, '..', '..', 'tests', 'interop', 'js_connector')
const { Harness, setEventSink } = require(path.join(project, 'harness.js'))

function option (name, fallback) {
  const found = process.argv.find((arg) => arg.startsWith('--' + name + '='))
  return found === undefined ? fallback : found.slice(name.length + 3)
}

async function main () {
  const amount = option('amount', '1000000')
  const maxPacket = option('max-packet', '1000')
  const repeat = Number(option('repeat', '5'))
  setEventSink(() => {})
  const harness = new Harness({
    connector: { disableMiddleware: ['rateLimit'] },
    hosts: {
      srv: { kind: 'stream-server', quiet: true },
      cli: { kind: 'stream-client', account: { maxPacketAmount: maxPacket } }
    }
  })
  await harness.start()
  const server = harness.hosts.get('srv')
  const client = harness.hosts.get('cli')
  const times = []
  try {
    for (let i = 0; i < repeat; i++) {
      const { destination, secret } = server.generate({})
      const receipt = await client.pay({ destination, secret, amount, timeoutMs: 120000 })
      times.push(receipt.seconds)
      console.log(JSON.stringify({
        impl: 'ilp-protocol-stream 2.7.2-alpha.3',
        amount,
        maxPacket,
        delivered: receipt.delivered,
        packets: receipt.packets,
        seconds: receipt.seconds
      }))
    }
  } finally {
    await harness.close()
  }
  const sorted = times.slice().sort((a, b) => a - b)
  console.log(JSON.stringify({
    runs: repeat,
    amount,
    maxPacket,
    bestSeconds: sorted[0],
    medianSeconds: sorted[Math.floor(sorted.length / 2)]
  }))
  process.exit(0)
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : err)
  process.exit(1)
})
