#!/usr/bin/env node
// Writes the byte-exact vectors of today's Interledger packets into a folder (default:
// tests/vectors/v4): every value is produced by running the pinned JavaScript libraries of
// package.json on fixed inputs. Deterministic: Date.now is fixed, nothing random is recorded.
//
//   node generate.js [output folder]
'use strict'

const fs = require('fs')
const path = require('path')

const IlpPacket = require('ilp-packet')
const Btp = require('btp-packet')
const Ildcp = require('ilp-protocol-ildcp')
const IlpPacketV2 = require('ilp-packet-v2')
const Compat = require('ilp-compat-plugin/dist/converters')
const OerReader = require('oer-utils').Reader
const OerWriter = require('oer-utils').Writer
const IlpDate = require('ilp-packet/dist/utils/date')

// ilp-protocol-ildcp compares expiries with Date.now(): fix "now" so the output never changes.
const NOW = Date.parse('2017-12-23T01:21:40.000Z')
Date.now = () => NOW

const OUT = path.resolve(process.argv[2] || path.join(__dirname, '..', '..', 'vectors', 'v4'))
const GENERATED_BY = 'tests/interop/js_v4/generate.js'

const version = (name) => require(`${name}/package.json`).version
const VERSIONS = {
  'ilp-packet': version('ilp-packet'),
  'btp-packet': version('btp-packet'),
  'ilp-protocol-ildcp': version('ilp-protocol-ildcp'),
  'ilp-compat-plugin': version('ilp-compat-plugin'),
  'ilp-packet (transitional, npm alias ilp-packet-v2)': version('ilp-packet-v2'),
  'oer-utils': version('oer-utils'),
  node: process.versions.node
}

// --- JSON form -------------------------------------------------------------------------------

// Buffers become `<field>Hex` (or, above 4096 bytes, `<field>Length` and `<field>Sha256`: the
// vector's own hex has every byte already), Dates ISO-8601 strings ("Invalid Date" if invalid).
const BIG = 4096
const sha256 = (b) => require('crypto').createHash('sha256').update(b).digest('hex')
function norm (value) {
  if (Buffer.isBuffer(value)) return value.toString('hex')
  if (value instanceof Date) return isNaN(value.getTime()) ? 'Invalid Date' : value.toISOString()
  if (Array.isArray(value)) return value.map(norm)
  if (value && typeof value === 'object') {
    const out = {}
    for (const [key, v] of Object.entries(value)) {
      if (Buffer.isBuffer(v) && v.length > BIG) {
        out[key + 'Length'] = v.length
        out[key + 'Sha256'] = sha256(v)
      } else {
        out[Buffer.isBuffer(v) ? key + 'Hex' : key] = norm(v)
      }
    }
    return out
  }
  return value
}

function normBtp (packet) {
  const data = { ...packet.data }
  const protocolData = data.protocolData.map((p) => {
    const entry = { protocolName: p.protocolName, contentType: p.contentType }
    if (p.data.length > BIG) {
      entry.dataLength = p.data.length
      entry.dataSha256 = sha256(p.data)
    } else {
      entry.dataHex = p.data.toString('hex')
    }
    if ((p.contentType === 1 || p.contentType === 2) && p.data.length <= BIG) entry.dataText = p.data.toString('utf8')
    return entry
  })
  delete data.protocolData
  const out = norm(data)
  out.protocolData = protocolData
  return { type: packet.type, typeName: Btp.typeToString(packet.type), requestId: packet.requestId, data: out }
}

function outcome (fn) {
  try {
    return { ok: true, json: fn() }
  } catch (err) {
    return { ok: false, error: `${err.name}: ${err.message}` }
  }
}

function write (name, description, body) {
  const file = path.join(OUT, name)
  fs.mkdirSync(path.dirname(file), { recursive: true })
  const doc = { description, generatedBy: GENERATED_BY, versions: VERSIONS, ...body }
  fs.writeFileSync(file, JSON.stringify(doc, null, 2) + '\n')
  return file
}

// --- fixed inputs ----------------------------------------------------------------------------

// The length prefix oer-utils writes before n bytes.
function lengthPrefix (n) {
  const w = new OerWriter()
  w.writeVarOctetString(Buffer.alloc(n))
  const bytes = w.getBuffer()
  return bytes.slice(0, bytes.length - n)
}

const hexBytes = (n, start = 0) => Buffer.from(Array.from({ length: n }, (_, i) => (start + i) & 0xff))
const CONDITION = Buffer.from('dd66b0c0da45c2ba61fc9e7ae5d2bed2d3f1a0e3a8d4b4ee4ceb7e5e2bd0e4bb', 'hex')
const FULFILLMENT = Buffer.from('a5fe2c8fd7e1e0d3e2f1c0b0a09080706050403020100f0e0d0c0b0a09080706', 'hex')
const EXPIRES = new Date('2017-12-23T01:21:40.549Z')
const PEER_CONDITION = require('crypto').createHash('sha256').update(Buffer.alloc(32)).digest()
const ADDR_1023 = 'g.' + 'a'.repeat(1021)
const ADDR_127 = 'g.' + 'b'.repeat(125)
const ADDR_128 = 'g.' + 'c'.repeat(126)
const ALL_CHARS = 'test.ABCDEFGHIJKLMNOPQRSTUVWXYZ.abcdefghijklmnopqrstuvwxyz.0123456789._~-'

function prepare (id, fields) {
  const input = {
    amount: '107',
    expiresAt: EXPIRES,
    executionCondition: CONDITION,
    destination: 'example.alice',
    data: Buffer.from('hello'),
    ...fields
  }
  const bytes = IlpPacket.serializeIlpPrepare(input)
  return { id, hex: bytes.toString('hex'), json: norm(IlpPacket.deserializeIlpPacket(bytes)) }
}

function fulfill (id, fields) {
  const bytes = IlpPacket.serializeIlpFulfill({ fulfillment: FULFILLMENT, data: Buffer.alloc(0), ...fields })
  return { id, hex: bytes.toString('hex'), json: norm(IlpPacket.deserializeIlpPacket(bytes)) }
}

function reject (id, fields) {
  const input = { code: 'F02', triggeredBy: 'g.connector', message: 'no route found', data: Buffer.alloc(0), ...fields }
  const bytes = IlpPacket.serializeIlpReject(input)
  return { id, hex: bytes.toString('hex'), json: norm(IlpPacket.deserializeIlpPacket(bytes)) }
}

// --- ILPv4 packets ---------------------------------------------------------------------------

function ilpPackets () {
  const vectors = [
    prepare('prepare', {}),
    prepare('prepare-amount-0', { amount: '0' }),
    prepare('prepare-amount-1', { amount: '1' }),
    prepare('prepare-amount-2^53', { amount: '9007199254740993' }),
    prepare('prepare-amount-max', { amount: '18446744073709551615' }),
    prepare('prepare-data-empty', { data: Buffer.alloc(0) }),
    prepare('prepare-data-127', { data: hexBytes(127) }),
    prepare('prepare-data-128', { data: hexBytes(128) }),
    prepare('prepare-data-255', { data: hexBytes(255) }),
    prepare('prepare-data-256', { data: hexBytes(256) }),
    prepare('prepare-data-max', { data: hexBytes(32767, 7) }),
    prepare('prepare-address-127-chars', { destination: ADDR_127 }),
    prepare('prepare-address-128-chars', { destination: ADDR_128 }),
    prepare('prepare-address-1023-chars', { destination: ADDR_1023 }),
    prepare('prepare-address-every-character', { destination: ALL_CHARS }),
    prepare('prepare-peer-config', { destination: 'peer.config', amount: '0', data: Buffer.alloc(0) })
  ]
  for (const scheme of ['g', 'private', 'example', 'peer', 'self', 'test', 'test1', 'test2', 'test3', 'local']) {
    vectors.push(prepare(`prepare-scheme-${scheme}`, { destination: `${scheme}.x` }))
  }
  const times = {
    'ms-000': '2017-12-23T01:21:40.000Z',
    'ms-001': '2017-12-23T01:21:40.001Z',
    'ms-010': '2017-12-23T01:21:40.010Z',
    'ms-100': '2017-12-23T01:21:40.100Z',
    'ms-999': '2017-12-23T01:21:40.999Z',
    'last-ms-of-year': '2017-12-31T23:59:59.999Z',
    midnight: '2017-12-25T00:00:00.000Z',
    'leap-day': '2016-02-29T12:00:00.500Z',
    epoch: '1970-01-01T00:00:00.001Z',
    'year-1000': '1000-01-01T00:00:00.000Z',
    'year-9999': '9999-12-31T23:59:59.999Z'
  }
  for (const [name, iso] of Object.entries(times)) {
    vectors.push(prepare(`prepare-expires-${name}`, { expiresAt: new Date(iso) }))
  }
  vectors.push(
    fulfill('fulfill', { data: Buffer.from('thank you') }),
    fulfill('fulfill-data-empty', {}),
    fulfill('fulfill-zero-fulfillment', { fulfillment: Buffer.alloc(32) }),
    fulfill('fulfill-data-128', { data: hexBytes(128) }),
    fulfill('fulfill-data-max', { data: hexBytes(32767, 3) }),
    reject('reject', {}),
    reject('reject-triggered-by-empty', { triggeredBy: '' }),
    reject('reject-message-empty', { message: '' }),
    reject('reject-message-utf8', { message: 'zu wenig Geld: 5 € < 10 €, 日本語 ✓' }),
    reject('reject-message-8191', { message: 'm'.repeat(8191) }),
    reject('reject-data', { code: 'F99', data: Buffer.from('application data') }),
    reject('reject-data-max', { code: 'T99', data: hexBytes(32767, 9) }),
    reject('reject-long-triggered-by', { triggeredBy: ADDR_1023, message: 'x'.repeat(200) }),
    reject('reject-non-canonical-code', { code: 'X42' })
  )
  return write('ilp-packet.json', 'ILPv4 Prepare (12), Fulfill (13) and Reject (14) packets: serialized by ilp-packet, then deserialized by it (json)', { vectors })
}

// --- every RFC 27 error code -----------------------------------------------------------------

function ilpErrors () {
  const classOf = {}
  for (const [name, Cls] of Object.entries(IlpPacket.Errors)) {
    if (typeof Cls !== 'function') continue
    const probe = name === 'AmountTooLargeError'
      ? new Cls('probe', { receivedAmount: '0', maximumAmount: '0' })
      : new Cls('probe')
    classOf[probe.ilpErrorCode] = name
  }
  const codes = Object.entries(IlpPacket.IlpError).map(([constant, code]) => ({ code, constant, className: classOf[code] }))
  const vectors = []
  for (const { code, className } of codes) {
    const Cls = IlpPacket.Errors[className]
    let error
    if (className === 'AmountTooLargeError') {
      error = new Cls('amount too large', { receivedAmount: '1000', maximumAmount: '999' })
    } else if (className.endsWith('ApplicationError')) {
      error = new Cls(`application error ${code}`, Buffer.from(`data of ${code}`))
    } else {
      error = new Cls(`error ${code}`)
    }
    const bytes = IlpPacket.errorToReject('g.error.source', error)
    vectors.push({ id: `reject-${code}`, code, className, hex: bytes.toString('hex'), json: norm(IlpPacket.deserializeIlpPacket(bytes)) })
  }
  const tooLarge = []
  for (const [received, maximum] of [['0', '0'], ['1000', '999'], ['18446744073709551615', '1'], ['9007199254740993', '18446744073709551614']]) {
    const err = new IlpPacket.Errors.AmountTooLargeError('x', { receivedAmount: received, maximumAmount: maximum })
    const reader = OerReader.from(err.ilpErrorData)
    tooLarge.push({ hex: err.ilpErrorData.toString('hex'), receivedAmount: reader.readUInt64(), maximumAmount: reader.readUInt64() })
  }
  return write('ilp-errors.json', 'Every ILPv4 error code (ilp-packet IlpError enum and Errors classes), each as the Reject errorToReject builds from an instance of its class; and the F08 data (AmountTooLargeError.ilpErrorData)', { codes, vectors, amountTooLargeData: tooLarge })
}

// --- ILDCP -----------------------------------------------------------------------------------

function ildcp () {
  const requests = []
  for (const [id, request] of [
    ['request', { expiresAt: new Date('2017-12-23T01:22:40.000Z') }],
    ['request-default-expiry', {}],
    ['request-expires-ms', { expiresAt: new Date('2017-12-23T01:21:40.001Z') }],
    ['request-with-data', { expiresAt: new Date('2017-12-23T01:22:40.000Z'), data: Buffer.from('hi') }]
  ]) {
    const bytes = Ildcp.serializeIldcpRequest(request)
    requests.push({ id, hex: bytes.toString('hex'), json: norm(Ildcp.deserializeIldcpRequest(bytes)), prepare: norm(IlpPacket.deserializeIlpPrepare(bytes)) })
  }
  const responses = []
  for (const [id, info] of [
    ['response', { clientAddress: 'test.parent.child', assetScale: 9, assetCode: 'XRP' }],
    ['response-scale-0', { clientAddress: 'g.usd.bob', assetScale: 0, assetCode: 'USD' }],
    ['response-scale-255', { clientAddress: 'private.a', assetScale: 255, assetCode: 'ABC' }],
    ['response-empty-asset-code', { clientAddress: 'local.x', assetScale: 2, assetCode: '' }],
    ['response-utf8-asset-code', { clientAddress: 'example.eur', assetScale: 2, assetCode: '€uro ✓' }],
    ['response-long-address', { clientAddress: ADDR_1023, assetScale: 6, assetCode: 'ETH' }]
  ]) {
    const bytes = Ildcp.serializeIldcpResponse(info)
    const fulfill = IlpPacket.deserializeIlpFulfill(bytes)
    responses.push({ id, hex: bytes.toString('hex'), dataHex: fulfill.data.toString('hex'), json: norm(Ildcp.deserializeIldcpResponse(bytes)) })
  }

  // What a parent answers (ilp-protocol-ildcp serve): the response, or an F00 Reject.
  const served = []
  const handler = async () => ({ clientAddress: 'test.parent.child', assetScale: 9, assetCode: 'XRP' })
  const failing = async () => { throw new Error('no account for this child') }
  const goodRequest = Ildcp.serializeIldcpRequest({ expiresAt: new Date('2017-12-23T01:22:40.000Z') })
  const cases = [
    ['serve', goodRequest, handler],
    ['serve-handler-fails', goodRequest, failing],
    ['serve-not-peer-config', IlpPacket.serializeIlpPrepare({ amount: '0', expiresAt: new Date('2017-12-23T01:22:40.000Z'), executionCondition: PEER_CONDITION, destination: 'peer.route', data: Buffer.alloc(0) }), handler],
    ['serve-wrong-condition', IlpPacket.serializeIlpPrepare({ amount: '0', expiresAt: new Date('2017-12-23T01:22:40.000Z'), executionCondition: CONDITION, destination: 'peer.config', data: Buffer.alloc(0) }), handler],
    ['serve-expired', Ildcp.serializeIldcpRequest({ expiresAt: new Date('2017-12-23T01:21:39.999Z') }), handler],
    ['serve-expires-now', Ildcp.serializeIldcpRequest({ expiresAt: new Date(NOW) }), handler]
  ]
  return Promise.all(cases.map(async ([id, request, h]) => {
    const reply = await Ildcp.serve({ requestPacket: request, handler: h, serverAddress: 'test.parent' })
    served.push({ id, requestHex: request.toString('hex'), replyHex: reply.toString('hex'), reply: norm(IlpPacket.deserializeIlpPacket(reply)) })
  })).then(() => {
    served.sort((a, b) => cases.findIndex((c) => c[0] === a.id) - cases.findIndex((c) => c[0] === b.id))
    const badResponses = []
    const fulfillWith = (fulfillment, data) => IlpPacket.serializeIlpFulfill({ fulfillment, data })
    const goodData = IlpPacket.deserializeIlpFulfill(Ildcp.serializeIldcpResponse({ clientAddress: 'test.a', assetScale: 3, assetCode: 'XYZ' })).data
    for (const [id, bytes] of [
      ['response-trailing-bytes', fulfillWith(Buffer.alloc(32), Buffer.concat([goodData, Buffer.from('ff00', 'hex')]))],
      ['response-wrong-fulfillment', fulfillWith(Buffer.alloc(32, 1), goodData)],
      ['response-invalid-address', fulfillWith(Buffer.alloc(32), Buffer.from('05' + Buffer.from('nope.').toString('hex') + '03' + '0158', 'hex'))],
      ['response-address-high-bit', fulfillWith(Buffer.alloc(32), Buffer.from('06e72e612e6263' + '03' + '0158', 'hex'))],
      ['response-no-asset-code', fulfillWith(Buffer.alloc(32), goodData.slice(0, goodData.length - 4))],
      ['response-no-asset-scale', fulfillWith(Buffer.alloc(32), goodData.slice(0, 7))],
      ['response-asset-code-bad-utf8', fulfillWith(Buffer.alloc(32), Buffer.concat([goodData.slice(0, 8), Buffer.from('02c328', 'hex')]))],
      ['response-is-reject', IlpPacket.serializeIlpReject({ code: 'F00', triggeredBy: 'test.parent', message: 'no', data: Buffer.alloc(0) })]
    ]) {
      badResponses.push({ id, hex: bytes.toString('hex'), js: outcome(() => norm(Ildcp.deserializeIldcpResponse(bytes))) })
    }
    return write('ildcp.json', `ILDCP (RFC 31) with ilp-protocol-ildcp: requests (serializeIldcpRequest; json from deserializeIldcpRequest, prepare from ilp-packet), responses (serializeIldcpResponse; json from deserializeIldcpResponse), what serve() answers, and responses deserializeIldcpResponse accepts or refuses. Date.now() is fixed at ${new Date(NOW).toISOString()}`, { now: new Date(NOW).toISOString(), requests, responses, served, decodeCases: badResponses })
  })
}

// --- BTP 2.0 ---------------------------------------------------------------------------------

const pd = (protocolName, contentType, data) => ({ protocolName, contentType, data: Buffer.isBuffer(data) ? data : Buffer.from(data) })
const ILP_PREPARE = IlpPacket.serializeIlpPrepare({ amount: '107', expiresAt: EXPIRES, executionCondition: CONDITION, destination: 'example.alice', data: Buffer.from('hello') })
const ILP_FULFILL = IlpPacket.serializeIlpFulfill({ fulfillment: FULFILLMENT, data: Buffer.alloc(0) })
const ILP_REJECT = IlpPacket.serializeIlpReject({ code: 'T04', triggeredBy: 'example.bob', message: 'exceeds maximum balance', data: Buffer.alloc(0) })

function btp () {
  const TRIGGERED = '2017-12-23T01:21:40.549Z'
  const packets = [
    ['message-auth', { type: Btp.TYPE_MESSAGE, requestId: 1, data: { protocolData: [pd('auth', 0, ''), pd('auth_username', 1, 'alice'), pd('auth_token', 1, 'secret')] } }],
    ['message-auth-token-only', { type: Btp.TYPE_MESSAGE, requestId: 2, data: { protocolData: [pd('auth', 0, ''), pd('auth_token', 1, '')] } }],
    ['message-ilp-prepare', { type: Btp.TYPE_MESSAGE, requestId: 3, data: { protocolData: [pd('ilp', 0, ILP_PREPARE)] } }],
    ['message-ilp-and-side-protocols', { type: Btp.TYPE_MESSAGE, requestId: 4, data: { protocolData: [pd('ilp', 0, ILP_PREPARE), pd('info', 2, '{"prefix":"example."}'), pd('note', 1, 'grüße'), pd('custom-binary', 0, hexBytes(4))] } }],
    ['message-no-protocol-data', { type: Btp.TYPE_MESSAGE, requestId: 5, data: { protocolData: [] } }],
    ['message-unknown-content-types', { type: Btp.TYPE_MESSAGE, requestId: 6, data: { protocolData: [pd('x', 3, 'a'), pd('y', 127, 'b'), pd('z', 255, 'c')] } }],
    ['message-empty-name', { type: Btp.TYPE_MESSAGE, requestId: 7, data: { protocolData: [pd('', 0, 'nameless')] } }],
    ['message-long-name', { type: Btp.TYPE_MESSAGE, requestId: 8, data: { protocolData: [pd('n'.repeat(200), 1, 'long name')] } }],
    ['message-entry-128-bytes', { type: Btp.TYPE_MESSAGE, requestId: 9, data: { protocolData: [pd('ilp', 0, hexBytes(128))] } }],
    ['message-entry-70000-bytes', { type: Btp.TYPE_MESSAGE, requestId: 10, data: { protocolData: [pd('big', 0, hexBytes(70000))] } }],
    ['message-255-entries', { type: Btp.TYPE_MESSAGE, requestId: 11, data: { protocolData: Array.from({ length: 255 }, (_, i) => pd(`p${i}`, i % 3, `${i}`)) } }],
    ['message-256-entries', { type: Btp.TYPE_MESSAGE, requestId: 12, data: { protocolData: Array.from({ length: 256 }, (_, i) => pd(`p${i}`, i % 3, '')) } }],
    ['message-duplicate-names', { type: Btp.TYPE_MESSAGE, requestId: 13, data: { protocolData: [pd('a', 1, 'first'), pd('a', 1, 'second')] } }],
    ['message-request-id-0', { type: Btp.TYPE_MESSAGE, requestId: 0, data: { protocolData: [pd('ilp', 0, ILP_PREPARE)] } }],
    ['message-request-id-max', { type: Btp.TYPE_MESSAGE, requestId: 4294967295, data: { protocolData: [pd('ilp', 0, ILP_PREPARE)] } }],
    ['response-empty', { type: Btp.TYPE_RESPONSE, requestId: 1, data: { protocolData: [] } }],
    ['response-ilp-fulfill', { type: Btp.TYPE_RESPONSE, requestId: 3, data: { protocolData: [pd('ilp', 0, ILP_FULFILL)] } }],
    ['response-ilp-reject', { type: Btp.TYPE_RESPONSE, requestId: 3, data: { protocolData: [pd('ilp', 0, ILP_REJECT)] } }],
    ['response-json', { type: Btp.TYPE_RESPONSE, requestId: 21, data: { protocolData: [pd('balance', 2, '{"balance":"-5"}'), pd('info', 2, '{}')] } }],
    ['transfer', { type: Btp.TYPE_TRANSFER, requestId: 30, data: { amount: '100', protocolData: [] } }],
    ['transfer-amount-0', { type: Btp.TYPE_TRANSFER, requestId: 31, data: { amount: '0', protocolData: [] } }],
    ['transfer-amount-max', { type: Btp.TYPE_TRANSFER, requestId: 32, data: { amount: '18446744073709551615', protocolData: [] } }],
    ['transfer-claim', { type: Btp.TYPE_TRANSFER, requestId: 33, data: { amount: '5000', protocolData: [pd('claim', 2, '{"amount":"5000","signature":"ab12"}'), pd('channel', 0, hexBytes(32, 200))] } }],
    ['error', { type: Btp.TYPE_ERROR, requestId: 40, data: { code: 'F00', name: 'NotAcceptedError', triggeredAt: TRIGGERED, data: 'invalid auth_token', protocolData: [] } }],
    ['error-empty-data', { type: Btp.TYPE_ERROR, requestId: 41, data: { code: 'T00', name: 'UnreachableError', triggeredAt: '2017-12-23T01:21:40.000Z', data: '', protocolData: [] } }],
    ['error-utf8-data', { type: Btp.TYPE_ERROR, requestId: 42, data: { code: 'F01', name: 'InvalidFieldsError', triggeredAt: '2017-12-23T01:21:40.001Z', data: '{"message":"ungültig ✗"}', protocolData: [] } }],
    ['error-protocol-data', { type: Btp.TYPE_ERROR, requestId: 43, data: { code: 'F08', name: 'InsufficientBalanceError', triggeredAt: '2017-12-31T23:59:59.999Z', data: '', protocolData: [pd('ilp', 0, ILP_REJECT), pd('detail', 1, 'more')] } }]
  ]
  const btpErrors = [['T00', 'UnreachableError'], ['F00', 'NotAcceptedError'], ['F01', 'InvalidFieldsError'], ['F03', 'TransferNotFoundError'], ['F04', 'InvalidFulfillmentError'], ['F05', 'DuplicateIdError'], ['F06', 'AlreadyRolledBackError'], ['F07', 'AlreadyFulfilledError'], ['F08', 'InsufficientBalanceError']]
  btpErrors.forEach(([code, name], i) => {
    packets.push([`error-${code}`, { type: Btp.TYPE_ERROR, requestId: 100 + i, data: { code, name, triggeredAt: TRIGGERED, data: `${name} happened`, protocolData: [] } }])
  })
  const vectors = packets.map(([id, packet]) => {
    const bytes = Btp.serialize(packet)
    return { id, hex: bytes.toString('hex'), json: normBtp(Btp.deserialize(bytes)) }
  })
  return write('btp.json', 'BTP 2.0 packets (RFC 23): Response (1), Error (2), Message (6), Transfer (7), serialized by btp-packet, then deserialized by it (json). Every BTP error code of RFC 23 appears once (error-<code>)', { vectors })
}

// --- transitional ILP packets (ilp-packet 2.2.0) and ilp-compat-plugin's conversions ------

function compat () {
  const P = IlpPacketV2
  const packets = [
    ['forwarded-payment', P.serializeIlpForwardedPayment({ account: 'example.alice', data: Buffer.from('hello') })],
    ['forwarded-payment-data-empty', P.serializeIlpForwardedPayment({ account: 'g.x', data: Buffer.alloc(0) })],
    ['forwarded-payment-data-200', P.serializeIlpForwardedPayment({ account: 'g.x', data: hexBytes(200) })],
    ['forwarded-payment-long-account', P.serializeIlpForwardedPayment({ account: ADDR_1023, data: Buffer.from('x') })],
    ['forwarded-payment-v1-prefix-account', P.serializeIlpForwardedPayment({ account: 'g.us.nexus.', data: Buffer.alloc(0) })],
    ['fulfillment', P.serializeIlpFulfillment({ data: Buffer.from('thank you') })],
    ['fulfillment-data-empty', P.serializeIlpFulfillment({ data: Buffer.alloc(0) })],
    ['fulfillment-data-300', P.serializeIlpFulfillment({ data: hexBytes(300) })],
    ['rejection', P.serializeIlpRejection({ code: 'F02', triggeredBy: 'g.connector', message: 'no route', data: Buffer.alloc(0) })],
    ['rejection-utf8', P.serializeIlpRejection({ code: 'T04', triggeredBy: '', message: 'zu wenig € ✗', data: Buffer.from('d') })],
    ['rejection-data-200', P.serializeIlpRejection({ code: 'F99', triggeredBy: 'example.b', message: '', data: hexBytes(200) })]
  ]
  const vectors = packets.map(([id, bytes]) => ({ id, hex: bytes.toString('hex'), json: norm(P.deserializeIlpPacket(bytes)) }))

  // ilp-compat-plugin 2.0.3's conversions between ILPv4 packets and LPI v1 objects. The transfer
  // id is a random UUID and a rejection's triggered_at the current time: neither is recorded.
  const conversions = []
  const v4Prepare = IlpPacket.deserializeIlpPrepare(ILP_PREPARE)
  const transfer = Compat.ilpPrepareToLpi1Transfer(v4Prepare)
  delete transfer.id
  conversions.push({ id: 'ilpPrepareToLpi1Transfer', inputHex: ILP_PREPARE.toString('hex'), output: transfer, outputIlpHex: Buffer.from(transfer.ilp, 'base64').toString('hex') })
  const lpiTransfer = { id: '5857d460-2a46-4545-8311-1539d4e7a74e', amount: '107', executionCondition: CONDITION.toString('base64'), expiresAt: EXPIRES.toISOString(), ilp: transfer.ilp }
  conversions.push({ id: 'lpi1TransferToIlpPrepare', input: lpiTransfer, outputHex: Compat.lpi1TransferToIlpPrepare(lpiTransfer).toString('hex') })
  const v1Payment = P.serializeIlpPayment({ amount: '107', account: 'example.alice', data: Buffer.from('hello') })
  const lpiTransferV1Payment = { ...lpiTransfer, ilp: v1Payment.toString('base64') }
  conversions.push({ id: 'lpi1TransferToIlpPrepare-ilp-v1-payment', input: lpiTransferV1Payment, inputIlpHex: v1Payment.toString('hex'), outputHex: Compat.lpi1TransferToIlpPrepare(lpiTransferV1Payment).toString('hex') })
  for (const [id, data] of [['ilpFulfillToLpi1Fulfillment', Buffer.from('thank you')], ['ilpFulfillToLpi1Fulfillment-data-empty', Buffer.alloc(0)], ['ilpFulfillToLpi1Fulfillment-padding', Buffer.from('ab')]]) {
    const input = IlpPacket.serializeIlpFulfill({ fulfillment: FULFILLMENT, data })
    const output = Compat.ilpFulfillToLpi1Fulfillment(input)
    conversions.push({ id, inputHex: input.toString('hex'), output, outputIlpHex: Buffer.from(output.ilp, 'base64').toString('hex') })
  }
  for (const [id, ilp] of [['lpi1FulfillmentToIlpFulfill', P.serializeIlpFulfillment({ data: Buffer.from('thank you') }).toString('base64')], ['lpi1FulfillmentToIlpFulfill-no-ilp', '']]) {
    conversions.push({ id, input: { fulfillment: FULFILLMENT.toString('base64'), ilp }, outputHex: Compat.lpi1FulfillmentToIlpFulfill(FULFILLMENT.toString('base64'), ilp).toString('hex') })
  }
  const rejection = Compat.ilpRejectToLpi1Rejection(ILP_REJECT)
  delete rejection.triggered_at
  conversions.push({ id: 'ilpRejectToLpi1Rejection', inputHex: ILP_REJECT.toString('hex'), output: rejection })
  for (const [id, reason] of [
    ['lpi1RejectionToIlpReject', { code: 'F02', name: 'Unreachable', message: 'no route', triggered_by: 'g.connector', additional_info: {} }],
    ['lpi1RejectionToIlpReject-info-data', { code: 'T04', name: 'Insufficient Liquidity', triggered_by: 'example.bob', additional_info: { data: Buffer.from('more').toString('base64'), message: 'from info' } }],
    ['lpi1RejectionToIlpReject-info-string', { code: 'R00', name: 'Transfer Timed Out', triggered_by: 'example.bob', additional_info: '{"message":"expired"}' }]
  ]) {
    conversions.push({ id, input: reason, outputHex: Compat.lpi1RejectionToIlpReject(reason).toString('hex') })
  }
  return write('ilp-compat.json', 'Transitional ILP packets of ilp-packet 2.2.0 (9 fulfillment, 10 forwarded payment, 11 rejection; json from its deserializeIlpPacket), and the conversions ilp-compat-plugin 2.0.3 makes between ILPv4 packets and LPI v1 transfers, fulfilments and rejections', { vectors, conversions, errorNames: Compat.ERROR_NAMES })
}

// --- decoding odd and malformed input ------------------------------------------------------

function edgeCases () {
  const cases = []
  const add = (kind, id, bytes, decoder) => cases.push({ kind, id, hex: bytes.toString('hex'), js: outcome(decoder) })
  const ilp = (id, bytes) => add('ilp-packet', id, bytes, () => norm(IlpPacket.deserializeIlpPacket(bytes)))
  const btpCase = (id, hex) => { const bytes = Buffer.from(hex, 'hex'); add('btp', id, bytes, () => normBtp(Btp.deserialize(bytes))) }
  const compatCase = (id, bytes) => add('ilp-compat', id, bytes, () => norm(IlpPacketV2.deserializeIlpPacket(bytes)))

  // An envelope around hand-made contents, and a Prepare with one field replaced.
  const envelope = (type, contents) => Buffer.concat([Buffer.from([type]), lengthPrefix(contents.length), contents])
  const varOctets = (b) => Buffer.concat([lengthPrefix(b.length), b])
  const prepareWith = ({ amount = Buffer.from('000000000000006b', 'hex'), time = Buffer.from('20171223012140549'), condition = CONDITION, destination = varOctets(Buffer.from('example.alice')), data = varOctets(Buffer.from('hello')) }) =>
    envelope(12, Buffer.concat([amount, time, condition, destination, data]))

  ilp('empty', Buffer.alloc(0))
  ilp('type-only', Buffer.from([12]))
  ilp('unknown-type-1', Buffer.from('0103010000', 'hex'))
  ilp('unknown-type-15', envelope(15, Buffer.alloc(3)))
  ilp('prepare-length-beyond-end', Buffer.concat([Buffer.from([12, 0x7f]), ILP_PREPARE.slice(2)]))
  ilp('prepare-long-length-non-canonical', Buffer.concat([Buffer.from([12, 0x81, 0x4a]), ILP_PREPARE.slice(2)]))
  ilp('prepare-length-of-length-0', Buffer.concat([Buffer.from([12, 0x80]), ILP_PREPARE.slice(2)]))
  ilp('prepare-long-length-canonical', Buffer.concat([Buffer.from([12, 0x81, 0x80]), ILP_PREPARE.slice(2), Buffer.alloc(128 - 0x4a)]))
  ilp('prepare-trailing-after-envelope', Buffer.concat([ILP_PREPARE, Buffer.from('0102', 'hex')]))
  ilp('prepare-trailing-in-contents', prepareWith({ data: Buffer.concat([varOctets(Buffer.from('hello')), Buffer.from('ffff', 'hex')]) }))
  ilp('prepare-truncated-amount', envelope(12, Buffer.alloc(5)))
  ilp('prepare-truncated-time', envelope(12, Buffer.concat([Buffer.alloc(8), Buffer.from('2017122301')])))
  ilp('prepare-truncated-condition', envelope(12, Buffer.concat([Buffer.alloc(8), Buffer.from('20171223012140549'), Buffer.alloc(20)])))
  ilp('prepare-no-destination', envelope(12, Buffer.concat([Buffer.alloc(8), Buffer.from('20171223012140549'), CONDITION])))
  ilp('prepare-no-data', prepareWith({ data: Buffer.alloc(0) }))
  ilp('prepare-data-beyond-end', prepareWith({ data: Buffer.from('05686869', 'hex') }))
  for (const [id, time] of [
    ['time-month-13', '20171324161432200'],
    ['time-day-32', '20171232000000000'],
    ['time-feb-29-non-leap', '20170229000000000'],
    ['time-hour-24', '20171224240000000'],
    ['time-minute-60', '20171224236000000'],
    ['time-leap-second', '20161231235960852'],
    ['time-year-0', '00000101000000000'],
    ['time-epoch', '19700101000000000'],
    ['time-epoch-plus-1ms', '19700101000000001'],
    ['time-letter', '2017122416143220a'],
    ['time-leading-space', ' 2017122416143220'],
    ['time-trailing-space', '2017122416143220 '],
    ['time-plus-sign', '+0170101000000000'],
    ['time-minus-sign', '-0010101000000000'],
    ['time-hex-year', '0x1F0101000000000'],
    ['time-exponent', '1e300101000000000'],
    ['time-rfc30-valid-year-9999', '99991224161432279']
  ]) {
    ilp(`prepare-${id}`, prepareWith({ time: Buffer.from(time, 'latin1') }))
  }
  ilp('prepare-time-high-bit-digit', prepareWith({ time: Buffer.concat([Buffer.from([0xb2]), Buffer.from('0171223012140549')]) }))
  for (const [id, destination] of [
    ['empty', ''],
    ['unknown-scheme', 'foo.bar'],
    ['scheme-only', 'g'],
    ['trailing-dot', 'g.alice.'],
    ['double-dot', 'g..alice'],
    ['space', 'g.al ice'],
    ['test4-scheme', 'test4.x'],
    ['1024-chars', 'g.' + 'a'.repeat(1022)],
    ['1023-chars', ADDR_1023],
    ['newline-at-end', 'g.alice\n']
  ]) {
    ilp(`prepare-destination-${id}`, prepareWith({ destination: varOctets(Buffer.from(destination, 'latin1')) }))
  }
  ilp('prepare-destination-high-bit', prepareWith({ destination: varOctets(Buffer.from([0xe7, 0x2e, 0x61])) }))
  ilp('fulfill-truncated', envelope(13, Buffer.alloc(31)))
  ilp('fulfill-no-data', envelope(13, Buffer.alloc(32)))
  ilp('fulfill-trailing', envelope(13, Buffer.concat([Buffer.alloc(32), Buffer.from('00ff', 'hex')])))
  const rejectWith = ({ code = Buffer.from('F02'), triggeredBy = varOctets(Buffer.from('g.connector')), message = varOctets(Buffer.from('no')), data = varOctets(Buffer.alloc(0)) }) =>
    envelope(14, Buffer.concat([code, triggeredBy, message, data]))
  ilp('reject-code-truncated', envelope(14, Buffer.from('F0')))
  ilp('reject-code-high-bit', rejectWith({ code: Buffer.from([0xc6, 0x30, 0x32]) }))
  ilp('reject-triggered-by-invalid', rejectWith({ triggeredBy: varOctets(Buffer.from('connector')) }))
  ilp('reject-triggered-by-empty', rejectWith({ triggeredBy: varOctets(Buffer.alloc(0)) }))
  ilp('reject-message-bad-utf8', rejectWith({ message: varOctets(Buffer.from('61c328ff62', 'hex')) }))
  ilp('reject-no-data', rejectWith({ data: Buffer.alloc(0) }))
  ilp('reject-trailing', rejectWith({ data: Buffer.from('0001', 'hex') }))

  btpCase('btp-count-length-0', '06000000010200' + '00')
  btpCase('btp-count-non-minimal', '0600000001030200' + '00')
  btpCase('btp-count-length-7', '060000000108' + '070000000000000000')
  btpCase('btp-count-truncated', '06000000010101')
  btpCase('btp-type-0', '000000000102' + '0100')
  btpCase('btp-type-3', '030000000102' + '0100')
  btpCase('btp-type-4', '040000000102' + '0100')
  btpCase('btp-type-5', '050000000102' + '0100')
  btpCase('btp-type-8', '080000000102' + '0100')
  btpCase('btp-trailing-after-envelope', '060000000102' + '0100' + 'abcd')
  btpCase('btp-trailing-after-entries', '060000000104' + '0100' + 'abcd')
  btpCase('btp-length-beyond-end', '060000000110' + '0100')
  btpCase('btp-envelope-truncated', '0600000001')
  btpCase('btp-transfer-truncated-amount', '070000000104' + '00000001')
  btpCase('btp-transfer-no-protocol-data', '070000000108' + '0000000000000064')
  btpCase('btp-entry-truncated', '06000000010a' + '0101' + '03696c70' + '00' + '05' + '0102')
  const errorWithTime = (time) => {
    const t = Buffer.from(time, 'latin1')
    const body = Buffer.concat([Buffer.from('F00'), Buffer.from([3]), Buffer.from('bad'), Buffer.from([t.length]), t, Buffer.from([0]), Buffer.from('0100', 'hex')])
    return '0200000001' + lengthPrefix(body.length).toString('hex') + body.toString('hex')
  }
  btpCase('btp-error-time-no-fraction', errorWithTime('20171224161432Z'))
  btpCase('btp-error-time-garbage', errorWithTime('not a time'))
  btpCase('btp-error-time-month-13', errorWithTime('20171324161432.279Z'))
  btpCase('btp-error-truncated-name', '020000000106' + '463030' + '05' + '6162')

  compatCase('compat-forwarded-no-extensions', envelope(10, Buffer.concat([varOctets(Buffer.from('g.x')), varOctets(Buffer.from('d'))])))
  compatCase('compat-forwarded-truncated-data', envelope(10, Buffer.concat([varOctets(Buffer.from('g.x')), Buffer.from('05')])))
  compatCase('compat-forwarded-account-high-bit', envelope(10, Buffer.concat([varOctets(Buffer.from([0xe7, 0x2e, 0x78])), varOctets(Buffer.alloc(0)), Buffer.from([0])])))
  compatCase('compat-fulfillment-trailing', envelope(9, Buffer.concat([varOctets(Buffer.from('d')), Buffer.from('00ffff', 'hex')])))
  compatCase('compat-rejection-bad-utf8', envelope(11, Buffer.concat([Buffer.from('F00'), varOctets(Buffer.alloc(0)), varOctets(Buffer.from('c328', 'hex')), varOctets(Buffer.alloc(0)), Buffer.from([0])])))
  compatCase('compat-rejection-truncated', envelope(11, Buffer.from('F0')))
  return write('decode-edge-cases.json', 'Odd and malformed input and what the JavaScript libraries make of it (js.ok with the decoded json, or the error they throw): ILPv4 by ilp-packet deserializeIlpPacket (kind ilp-packet), BTP 2.0 by btp-packet deserialize (kind btp), transitional packets by ilp-packet 2.2.0 deserializeIlpPacket (kind ilp-compat)', { cases })
}

// --- OER primitives of the ILPv4 generation ------------------------------------------------

function oer () {
  const varUInts = []
  for (const value of ['0', '1', '127', '128', '255', '256', '65535', '65536', '16777216', '4294967295', '4294967296', '281474976710655', '281474976710656', '9007199254740993', '72057594037927935', '72057594037927936', '18446744073709551615']) {
    const w = new OerWriter()
    w.writeVarUInt(value)
    const hex = w.getBuffer().toString('hex')
    varUInts.push({ value, hex, read: OerReader.from(w.getBuffer()).readVarUInt() })
  }
  const varUIntReads = []
  for (const hex of ['020001', '0800000000000000ff', '00', '09010000000000000000', '0201']) {
    varUIntReads.push({ hex, js: outcome(() => OerReader.from(Buffer.from(hex, 'hex')).readVarUInt()) })
  }
  const lengths = []
  for (const n of [0, 1, 127, 128, 255, 256, 65535, 65536, 16777215, 16777216]) {
    lengths.push({ length: n, prefixHex: lengthPrefix(n).toString('hex') })
  }
  const uint64 = []
  for (const value of ['0', '1', '4294967296', '9007199254740993', '18446744073709551615']) {
    const w = new OerWriter()
    w.writeUInt64(value)
    uint64.push({ value, hex: w.getBuffer().toString('hex') })
  }
  const timestamps = []
  for (const iso of ['2017-12-24T16:14:32.279Z', '2017-12-24T16:14:32.200Z', '2017-12-24T16:14:32.000Z', '2017-12-25T00:00:00.000Z', '2016-12-31T23:59:59.852Z', '1970-01-01T00:00:00.001Z', '9999-12-31T23:59:59.999Z', '1000-01-01T00:00:00.000Z']) {
    const text = IlpDate.dateToInterledgerTime(new Date(iso))
    timestamps.push({ iso, text, hex: Buffer.from(text, 'ascii').toString('hex') })
  }
  // The examples of RFC 30 "Fixed-length Timestamps", as ilp-packet reads them.
  const rfc30 = []
  for (const text of ['20171224161432279', '20171224161432270', '20171224161432200', '20171224161432000', '20161231235959852', '20171225000000000', '99991224161432279', '201712242153124318', '20171324161432200', '20171224230000000.', '20171224240000000', '20171224215300', '2017122421531', '201712242153', '2017122421', '20161231235960852']) {
    rfc30.push({ text, js: outcome(() => IlpDate.interledgerTimeToDate(text).toISOString()) })
  }
  return write('oer.json', 'OER of the ILPv4 generation with oer-utils 5 (var-uints up to 8 bytes, length prefixes, UInt64) and the 17-digit Interledger timestamp of ilp-packet (dateToInterledgerTime; interledgerTimeToDate on the examples of RFC 30)', { varUInts, varUIntReads, lengths, uint64, timestamps, rfc30Examples: rfc30 })
}

async function main () {
  const files = [ilpPackets(), ilpErrors(), await ildcp(), btp(), compat(), edgeCases(), oer()]
  for (const file of files) process.stdout.write(file + '\n')
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err) + '\n')
  process.exit(1)
})
