#!/usr/bin/env node
// STREAM vectors from the pinned ilp-protocol-stream, and checks of what the Python side makes.
//
//   node vectors.js generate OUT_DIR   write packets, decode edge cases, crypto, tokens, receipts
//   node vectors.js check              read a JSON request on stdin, answer JSON on stdout
//
// `generate` replaces Node's crypto.randomBytes by a seeded SHA-256 counter stream *before*
// ilp-protocol-stream is loaded, so IVs and token nonces, and hence every file, are the same on
// every run. Nothing else is substituted: encoding, encryption and key derivation are the
// library's own.
'use strict'

const nodeCrypto = require('crypto')
const fs = require('fs')
const path = require('path')

const mode = process.argv[2]

if (mode === 'generate') {
  let counter = 0
  const seed = Buffer.from('ilp-paychan stream vectors', 'utf8')
  nodeCrypto.randomBytes = (size, callback) => {
    const chunks = []
    let have = 0
    while (have < size) {
      const block = Buffer.alloc(4)
      block.writeUInt32BE(counter++)
      const digest = nodeCrypto.createHash('sha256').update(seed).update(block).digest()
      chunks.push(digest)
      have += digest.length
    }
    const out = Buffer.concat(chunks).slice(0, size)
    if (callback) {
      process.nextTick(callback, null, out)
      return undefined
    }
    return out
  }
}

const Long = require('long')
const ILDCP = require('ilp-protocol-ildcp')
const packetLib = require('ilp-protocol-stream/dist/src/packet')
const cryptoLib = require('ilp-protocol-stream/dist/src/crypto')
const receiptLib = require('ilp-protocol-stream/dist/src/util/receipt')
const { Server } = require('ilp-protocol-stream/dist/src/server')
const { ServerConnectionPool } = require('ilp-protocol-stream/dist/src/pool')

const {
  Packet,
  ConnectionCloseFrame,
  ConnectionNewAddressFrame,
  ConnectionAssetDetailsFrame,
  ConnectionMaxDataFrame,
  ConnectionDataBlockedFrame,
  ConnectionMaxStreamIdFrame,
  ConnectionStreamIdBlockedFrame,
  StreamCloseFrame,
  StreamMoneyFrame,
  StreamMaxMoneyFrame,
  StreamMoneyBlockedFrame,
  StreamDataFrame,
  StreamMaxDataFrame,
  StreamDataBlockedFrame,
  StreamReceiptFrame,
  ErrorCode,
} = packetLib

const VERSIONS = {
  'ilp-protocol-stream': require('ilp-protocol-stream/package.json').version,
  'oer-utils': require('oer-utils/package.json').version,
  'ilp-protocol-ildcp': require('ilp-protocol-ildcp/package.json').version,
}
const GENERATED_BY = 'tests/interop/js_stream/vectors.js'
const MAX = '18446744073709551615'
const MAX_JS = '9007199254740991'
const SERVER_ADDRESS = 'test.stream.server'

const hex = (buffer) => Buffer.from(buffer).toString('hex')
const fromHex = (text) => Buffer.from(text, 'hex')
const filled = (length, start) => Buffer.from(Array.from({ length }, (_, i) => (start + i) & 0xff))

function frameJson (frame) {
  const out = { type: frame.type, name: frame.name }
  for (const prop of Object.getOwnPropertyNames(frame)) {
    if (prop === 'type' || prop === 'name') continue
    const value = frame[prop]
    if (Long.isLong(value)) out[prop] = value.toString()
    else if (Buffer.isBuffer(value)) out[prop + 'Hex'] = hex(value)
    else out[prop] = value
  }
  return out
}

function packetJson (packet) {
  return {
    sequence: packet.sequence.toString(),
    ilpPacketType: packet.ilpPacketType,
    prepareAmount: packet.prepareAmount.toString(),
    frames: packet.frames.map(frameJson),
  }
}

function decodeResult (buffer) {
  try {
    return { ok: true, packet: packetJson(Packet._deserializeUnencrypted(buffer)) }
  } catch (err) {
    return { ok: false, error: String(err.message || err) }
  }
}

// --- packets -----------------------------------------------------------------------------------

function packetCases () {
  const receipt = receiptLib.createReceipt({
    nonce: filled(16, 0x10),
    streamId: 1,
    totalReceived: '1000',
    secret: filled(32, 0x40),
  })
  const everyFrame = [
    new ConnectionCloseFrame(ErrorCode.NoError, 'done'),
    new ConnectionNewAddressFrame('test.client.abc~x_y-z'),
    new ConnectionAssetDetailsFrame('XRP', 9),
    new ConnectionMaxDataFrame(65536),
    new ConnectionDataBlockedFrame(70000),
    new ConnectionMaxStreamIdFrame(20),
    new ConnectionStreamIdBlockedFrame(22),
    new StreamCloseFrame(1, ErrorCode.ApplicationError, 'stop'),
    new StreamMoneyFrame(1, 7),
    new StreamMaxMoneyFrame(1, 500, 120),
    new StreamMoneyBlockedFrame(1, 1000, 999),
    new StreamDataFrame(1, 0, Buffer.from('hello')),
    new StreamMaxDataFrame(1, 16384),
    new StreamDataBlockedFrame(1, 20000),
    new StreamReceiptFrame(1, receipt),
  ]
  const cases = [
    ['empty prepare', new Packet(0, 12, 0, [])],
    ['empty fulfill', new Packet(1, 13, 0, [])],
    ['empty reject', new Packet(1, 14, 0, [])],
    ['sequence 255', new Packet(255, 12, 0, [])],
    ['sequence 256', new Packet(256, 12, 0, [])],
    ['sequence 2^32', new Packet('4294967296', 12, 0, [])],
    ['sequence max safe integer', new Packet(MAX_JS, 12, 0, [])],
    ['sequence 2^56 - 1', new Packet('72057594037927935', 12, 0, [])],
    ['sequence 2^56', new Packet('72057594037927936', 12, 0, [])],
    ['sequence max uint64', new Packet(MAX, 12, 0, [])],
    ['prepare amount 1', new Packet(1, 12, 1, [])],
    ['prepare amount 65535', new Packet(1, 12, 65535, [])],
    ['prepare amount 65536', new Packet(1, 12, 65536, [])],
    ['prepare amount max uint64', new Packet(1, 13, MAX, [])],
    ['every frame type', new Packet(3, 12, 1000, everyFrame)],
  ]
  for (const frame of everyFrame) {
    cases.push([`frame ${frame.name}`, new Packet(2, 12, 10, [frame])])
  }
  for (const value of ['0', '255', '256', MAX_JS, MAX]) {
    cases.push([`ConnectionMaxData ${value}`, new Packet(1, 12, 0, [new ConnectionMaxDataFrame(value)])])
    cases.push([`ConnectionDataBlocked ${value}`, new Packet(1, 12, 0, [new ConnectionDataBlockedFrame(value)])])
    cases.push([`ConnectionMaxStreamId ${value}`, new Packet(1, 12, 0, [new ConnectionMaxStreamIdFrame(value)])])
    cases.push([`ConnectionStreamIdBlocked ${value}`, new Packet(1, 12, 0, [new ConnectionStreamIdBlockedFrame(value)])])
    cases.push([`StreamMoney shares ${value}`, new Packet(1, 12, 0, [new StreamMoneyFrame(value, value)])])
    cases.push([`StreamMaxMoney ${value}`, new Packet(1, 13, 0, [new StreamMaxMoneyFrame(value, value, value)])])
    cases.push([`StreamMoneyBlocked ${value}`, new Packet(1, 13, 0, [new StreamMoneyBlockedFrame(value, value, value)])])
    cases.push([`StreamData offset ${value}`, new Packet(1, 12, 0, [new StreamDataFrame(value, value, Buffer.alloc(0))])])
    cases.push([`StreamMaxData ${value}`, new Packet(1, 12, 0, [new StreamMaxDataFrame(value, value)])])
    cases.push([`StreamDataBlocked ${value}`, new Packet(1, 12, 0, [new StreamDataBlockedFrame(value, value)])])
  }
  cases.push(['StreamMaxMoney receiveMax Infinity', new Packet(4, 13, 50, [new StreamMaxMoneyFrame(1, Infinity, 50)])])
  for (const code of [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 200, 255]) {
    cases.push([`ConnectionClose code ${code}`, new Packet(1, 14, 0, [new ConnectionCloseFrame(code, `code ${code}`)])])
    cases.push([`StreamClose code ${code}`, new Packet(1, 14, 0, [new StreamCloseFrame(3, code, '')])])
  }
  cases.push(['UTF-8 messages and asset code', new Packet(5, 14, 0, [
    new ConnectionCloseFrame(ErrorCode.InternalError, 'Zahlung fehlgeschlagen: ü€ 💸'),
    new StreamCloseFrame(2, ErrorCode.ApplicationError, 'ملغى'),
    new ConnectionAssetDetailsFrame('€UR', 2),
  ])])
  cases.push(['asset scale 0 and 255', new Packet(1, 13, 0, [
    new ConnectionAssetDetailsFrame('USD', 0),
    new ConnectionAssetDetailsFrame('', 255),
  ])])
  cases.push(['StreamData 127 bytes', new Packet(1, 12, 0, [new StreamDataFrame(1, 0, filled(127, 0))])])
  cases.push(['StreamData 128 bytes', new Packet(1, 12, 0, [new StreamDataFrame(1, 0, filled(128, 0))])])
  cases.push(['StreamData 1000 bytes', new Packet(1, 12, 0, [new StreamDataFrame(5, 4096, filled(1000, 7))])])
  cases.push(['long error message', new Packet(1, 14, 0, [new ConnectionCloseFrame(2, 'x'.repeat(300))])])
  cases.push(['long ILP address', new Packet(1, 12, 0, [new ConnectionNewAddressFrame('g.' + 'a'.repeat(1021))])])
  cases.push(['money on three streams', new Packet(9, 12, 100, [
    new StreamMoneyFrame(2, 5),
    new StreamMoneyFrame(4, 15),
    new StreamMoneyFrame(6, 30),
  ])])
  cases.push(['130 frames', new Packet(1, 12, 130, Array.from({ length: 130 }, (_, i) => new StreamMoneyFrame(2 * i + 1, 1)))])
  cases.push(['300 frames', new Packet(1, 12, 300, Array.from({ length: 300 }, (_, i) => new StreamMaxDataFrame(i, 1000 + i)))])
  return cases.map(([name, packet]) => {
    const bytes = packet._serialize()
    return { name, packet: packetJson(Packet._deserializeUnencrypted(bytes)), hex: hex(bytes) }
  })
}

// --- decode edge cases -------------------------------------------------------------------------

function lengthPrefix (n) {
  if (n < 128) return Buffer.from([n])
  const bytes = []
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff)
  return Buffer.from([0x80 | bytes.length, ...bytes])
}
const frame = (type, contentsHex) => {
  const contents = fromHex(contentsHex)
  return hex(Buffer.concat([Buffer.from([type]), lengthPrefix(contents.length), contents]))
}
const header = (count, { version = '01', type = '0c', sequence = '0107', amount = '0164' } = {}) =>
  version + type + sequence + amount + count
const money = frame(0x11, '0101' + '0105')
const maxData = frame(0x15, '0101' + '020400')
const nineBytes = '09' + '01' + '00'.repeat(8)

function edgeCases () {
  const cases = [
    ['unknown frame type 0x08 is skipped', header('0103') + money + frame(0x08, 'deadbeef') + maxData],
    ['unknown frame type 0x18 with no contents is skipped', header('0102') + frame(0x18, '') + money],
    ['unknown frame type 0xff is skipped', header('0101') + frame(0xff, '00'.repeat(200))],
    ['only unknown frames', header('0103') + frame(0x00, '') + frame(0x30, '01') + frame(0x7f, '0102')],
    ['zero padding after the frames is ignored', header('0101') + money + '00'.repeat(40)],
    ['other junk after the frames is ignored', header('0101') + money + 'ffee0102'],
    ['bytes after a frame\'s fields are ignored', header('0101') + frame(0x11, '0101' + '0105' + 'aabbcc')],
    ['count smaller than the frames: the rest is junk', header('0101') + money + maxData],
    ['count 0 with frames after it', header('0100') + money],
    ['count written in two bytes', header('020001') + money],
    ['non-minimal var-uint sequence', header('0101', { sequence: '0400000005' }) + money],
    ['non-minimal 8-byte prepare amount', header('0101', { amount: '080000000000000001' }) + money],
    ['receiveMax of 9 bytes saturates', header('0101') + frame(0x12, '0101' + nineBytes + '0105')],
    ['receiveMax of 9 bytes with a leading zero saturates', header('0101') + frame(0x12, '0101' + '09' + '00'.repeat(8) + '05' + '0105')],
    ['receiveMax of 20 bytes saturates', header('0101') + frame(0x12, '0101' + '14' + 'ff'.repeat(20) + '0100')],
    ['sendMax of 9 bytes saturates', header('0101') + frame(0x13, '0101' + nineBytes + '0100')],
    ['totalReceived of 9 bytes is refused', header('0101') + frame(0x12, '0101' + '0105' + nineBytes)],
    ['totalSent of 9 bytes is refused', header('0101') + frame(0x13, '0101' + '0105' + nineBytes)],
    ['shares of 9 bytes is refused', header('0101') + frame(0x11, '0101' + nineBytes)],
    ['sequence of 9 bytes is refused', header('0100', { sequence: nineBytes })],
    ['sequence of 9 bytes with a leading zero is refused', header('0100', { sequence: '09' + '00'.repeat(8) + '05' })],
    ['prepare amount of 9 bytes is refused', header('0100', { amount: nineBytes })],
    ['empty sequence is refused', header('0100', { sequence: '00' })],
    ['empty receiveMax is refused', header('0101') + frame(0x12, '0101' + '00' + '0105')],
    ['empty stream id is refused', header('0101') + frame(0x10, '00' + '01' + '00')],
    ['version 0 is refused', header('0100', { version: '00' })],
    ['version 2 is refused', header('0100', { version: '02' })],
    ['ILP packet type 0', header('0100', { type: '00' })],
    ['ILP packet type 15', header('0100', { type: '0f' })],
    ['ILP packet type 255', header('0101', { type: 'ff' }) + money],
    ['count with a length byte of 0 is refused', header('00') + money],
    ['count with a length byte of 7 is refused', header('0700000000000001') + money],
    ['count with a length byte of 9 is refused', header('09' + '00'.repeat(8) + '01') + money],
    ['count larger than the frames is refused', header('0103') + money + maxData],
    ['huge count is refused', header('06ffffffffffff') + money],
    ['count cut short is refused', header('02') + '00'],
    ['no count is refused', header('')],
    ['empty input is refused', ''],
    ['version only is refused', '01'],
    ['frame without its length is refused', header('0101') + '11'],
    ['frame longer than the packet is refused', header('0101') + '1105' + '0101'],
    ['frame length not canonical is refused', header('0101') + '118104' + '01010105'],
    ['frame length with 0 length bytes is refused', header('0101') + '1180'],
    ['StreamMoney without shares is refused', header('0101') + frame(0x11, '0101')],
    ['StreamData longer than its frame is refused', header('0101') + frame(0x14, '0101' + '0100' + '05' + 'aabb')],
    ['ConnectionAssetDetails without a scale is refused', header('0101') + frame(0x07, '03' + '585250')],
    ['ConnectionClose without a message is refused', header('0101') + frame(0x01, '01')],
    ['ConnectionClose with no contents is refused', header('0101') + frame(0x01, '')],
    ['unknown error codes are kept', header('0102') + frame(0x01, '00' + '00') + frame(0x10, '0101' + 'c8' + '00')],
    ['error message: lone continuation byte', header('0101') + frame(0x01, '02' + '03' + '61' + '80' + '62')],
    ['error message: cut multi-byte sequence', header('0101') + frame(0x01, '02' + '03' + 'e282' + '63')],
    ['error message: overlong encoding', header('0101') + frame(0x01, '02' + '02' + 'c0af')],
    ['error message: encoded surrogate', header('0101') + frame(0x01, '02' + '03' + 'eda080')],
    ['error message: five-byte form', header('0101') + frame(0x01, '02' + '05' + 'f888808080')],
    ['error message: code point above U+10FFFF', header('0101') + frame(0x01, '02' + '04' + 'f4908080')],
    ['error message: ends inside a four-byte form', header('0101') + frame(0x01, '02' + '03' + 'f09f92')],
    ['address with a byte 0xff', header('0101') + frame(0x02, '05' + '746573ff74')],
    ['asset code with a NUL byte', header('0101') + frame(0x07, '02' + '4100' + '02')],
  ]
  return cases.map(([name, inputHex]) => ({ name, hex: inputHex, result: decodeResult(fromHex(inputHex)) }))
}

// --- crypto ------------------------------------------------------------------------------------

async function cryptoVectors () {
  const secrets = [
    ['32 bytes 00..1f', filled(32, 0)],
    ['32 bytes of 0xff', Buffer.alloc(32, 0xff)],
    ['16 bytes', filled(16, 0xa0)],
    ['64 bytes', filled(64, 0x33)],
    ['1 byte', Buffer.from([7])],
  ]
  const keys = []
  for (const [name, secret] of secrets) {
    keys.push({
      name,
      sharedSecretHex: hex(secret),
      encryptionKeyHex: hex(await cryptoLib.generatePskEncryptionKey(secret)),
      fulfillmentKeyHex: hex(await cryptoLib.generateFulfillmentKey(secret)),
    })
  }
  const fulfillments = []
  const datas = [
    ['empty data', Buffer.alloc(0)],
    ['one byte', Buffer.from([0])],
    ['100 bytes', filled(100, 9)],
    ['32767 bytes', filled(32767, 1)],
  ]
  for (const [secretName, secret] of secrets.slice(0, 3)) {
    for (const [dataName, data] of datas) {
      const fulfillment = await cryptoLib.generateFulfillment(await cryptoLib.generateFulfillmentKey(secret), data)
      fulfillments.push({
        name: `${secretName}, ${dataName}`,
        sharedSecretHex: hex(secret),
        dataHex: dataName === '32767 bytes' ? null : hex(data),
        dataPattern: dataName === '32767 bytes' ? { length: 32767, start: 1 } : null,
        fulfillmentHex: hex(fulfillment),
        conditionHex: hex(await cryptoLib.hash(fulfillment)),
      })
    }
  }
  const encrypted = []
  const packets = [
    ['empty prepare', new Packet(1, 12, 0, [])],
    ['money prepare', new Packet(2, 12, 1000, [new StreamMoneyFrame(1, 1), new StreamMaxMoneyFrame(1, Infinity, 0)])],
    ['fulfill with receipt', new Packet(2, 13, 998, [new StreamMaxMoneyFrame(1, 5000, 998), new StreamReceiptFrame(1, filled(58, 3))])],
    ['reject closing', new Packet(7, 14, 0, [new ConnectionCloseFrame(ErrorCode.NoError, '')])],
    ['data', new Packet(3, 12, 0, [new StreamDataFrame(1, 0, filled(2000, 5))])],
  ]
  for (const [secretName, secret] of secrets.slice(0, 4)) {
    for (const [packetName, packet] of packets) {
      const key = await cryptoLib.generatePskEncryptionKey(secret)
      const data = await packet.serializeAndEncrypt(key)
      encrypted.push(await encryptedEntry(`${packetName}, secret ${secretName}`, secret, packet, data, null))
    }
  }
  for (const padTo of [100, 1000]) {
    const secret = secrets[0][1]
    const packet = packets[1][1]
    const data = await packet.serializeAndEncrypt(await cryptoLib.generatePskEncryptionKey(secret), padTo)
    encrypted.push(await encryptedEntry(`money prepare padded to ${padTo}`, secret, packet, data, padTo))
  }
  const raw = []
  for (const [name, plaintext] of [['empty plaintext', Buffer.alloc(0)], ['one byte', Buffer.from([0x42])], ['300 bytes', filled(300, 11)]]) {
    const key = filled(32, 0x55)
    raw.push({ name, keyHex: hex(key), plaintextHex: hex(plaintext), dataHex: hex(await cryptoLib.encrypt(key, plaintext)) })
  }
  const fromTokens = []
  for (const [name, token] of [['empty token', Buffer.alloc(0)], ['ascii token', Buffer.from('abc', 'ascii')], ['64-byte token', filled(64, 200)]]) {
    const serverSecret = filled(32, 0x70)
    fromTokens.push({
      name,
      serverSecretHex: hex(serverSecret),
      tokenHex: hex(token),
      sharedSecretHex: hex(cryptoLib.generateSharedSecretFromToken(serverSecret, token)),
    })
  }
  return { keys, fulfillments, encrypted, raw, sharedSecretsFromTokens: fromTokens }
}

async function encryptedEntry (name, secret, packet, data, padTo) {
  const fulfillment = await cryptoLib.generateFulfillment(await cryptoLib.generateFulfillmentKey(secret), data)
  return {
    name,
    sharedSecretHex: hex(secret),
    padTo,
    packet: packetJson(packet),
    plaintextHex: hex(packet._serialize()),
    dataHex: hex(data),
    fulfillmentHex: hex(fulfillment),
    conditionHex: hex(await cryptoLib.hash(fulfillment)),
  }
}

// --- tokens ------------------------------------------------------------------------------------

function stubPlugin (clientAddress) {
  return {
    connect: async () => {},
    disconnect: async () => {},
    isConnected: () => true,
    registerDataHandler: () => {},
    deregisterDataHandler: () => {},
    registerMoneyHandler: () => {},
    deregisterMoneyHandler: () => {},
    sendMoney: async () => {},
    sendData: async (data) => ILDCP.serve({
      requestPacket: data,
      handler: async () => ({ clientAddress, assetCode: 'XYZ', assetScale: 9 }),
      serverAddress: 'test.stream',
    }),
  }
}

async function tokenVectors () {
  const serverSecret = filled(32, 0x90)
  const server = new Server({ serverSecret, plugin: stubPlugin(SERVER_ADDRESS) })
  await server.listen()
  const receiptNonce = filled(16, 0x21)
  const receiptSecret = filled(32, 0x61)
  const cases = [
    ['no options', undefined],
    ['tag as a string', 'order-42'],
    ['tag option', { connectionTag: 'invoice~7_x-y' }],
    ['tag of every printable ASCII character', { connectionTag: Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)).join('') }],
    ['empty tag', { connectionTag: '' }],
    ['receipts', { receiptNonce, receiptSecret }],
    ['tag and receipts', { connectionTag: 'tagged', receiptNonce, receiptSecret }],
  ]
  const vectors = cases.map(([name, opts]) => {
    const { destinationAccount, sharedSecret, receiptsEnabled } = server.generateAddressAndSecret(opts)
    let options = null
    if (typeof opts === 'string') options = { connectionTag: opts }
    else if (opts) {
      options = {}
      if (opts.connectionTag !== undefined) options.connectionTag = opts.connectionTag
      if (opts.receiptNonce) options.receiptNonceHex = hex(opts.receiptNonce)
      if (opts.receiptSecret) options.receiptSecretHex = hex(opts.receiptSecret)
    }
    return { name, options, destinationAccount, sharedSecretHex: hex(sharedSecret), receiptsEnabled }
  })
  return { serverSecretHex: hex(serverSecret), serverAddress: SERVER_ADDRESS, vectors }
}

// --- receipts ----------------------------------------------------------------------------------

function receiptVectors () {
  const nonce = filled(16, 0x01)
  const secret = filled(32, 0x81)
  const created = []
  for (const [streamId, total] of [[1, '0'], [1, '1000'], [2, MAX_JS], [255, MAX], [0, '1']]) {
    const receipt = receiptLib.createReceipt({ nonce, streamId, totalReceived: total, secret })
    const decoded = receiptLib.decodeReceipt(receipt)
    created.push({
      name: `stream ${streamId}, total ${total}`,
      nonceHex: hex(nonce),
      streamId,
      totalReceived: total,
      secretHex: hex(secret),
      receiptHex: hex(receipt),
      decoded: {
        version: decoded.version,
        nonceHex: hex(decoded.nonce),
        streamId: Number(decoded.streamId),
        totalReceived: decoded.totalReceived.toString(),
        hmacHex: hex(decoded.hmac),
      },
    })
  }
  const good = fromHex(created[1].receiptHex)
  const badHmac = Buffer.from(good)
  badHmac[57] ^= 1
  const badAmount = Buffer.from(good)
  badAmount[25] ^= 1
  const badVersion = Buffer.from(good)
  badVersion[0] = 2
  const verified = []
  for (const [name, receipt, key] of [
    ['valid', good, secret],
    ['other secret', good, filled(32, 0x82)],
    ['changed HMAC', badHmac, secret],
    ['changed amount', badAmount, secret],
    ['version 2', badVersion, secret],
    ['57 bytes', good.slice(0, 57), secret],
    ['59 bytes', Buffer.concat([good, Buffer.from([0])]), secret],
  ]) {
    let result
    try {
      receiptLib.verifyReceipt(receipt, key)
      result = { ok: true }
    } catch (err) {
      result = { ok: false, error: err.message }
    }
    verified.push({ name, receiptHex: hex(receipt), secretHex: hex(key), result })
  }
  return { created, verified }
}

// --- modes -------------------------------------------------------------------------------------

function write (dir, name, body) {
  const content = Object.assign({ generatedBy: GENERATED_BY, versions: VERSIONS }, body)
  fs.writeFileSync(path.join(dir, name), JSON.stringify(content, null, 2) + '\n')
}

async function generate (dir) {
  fs.mkdirSync(dir, { recursive: true })
  write(dir, 'packets.json', { vectors: packetCases() })
  write(dir, 'decode-edge-cases.json', { vectors: edgeCases() })
  write(dir, 'crypto.json', await cryptoVectors())
  write(dir, 'tokens.json', await tokenVectors())
  write(dir, 'receipts.json', receiptVectors())
}

async function check (request) {
  const answer = { decrypted: [], decoded: [], connections: [], receipts: [] }
  for (const item of request.decrypt || []) {
    try {
      const key = await cryptoLib.generatePskEncryptionKey(fromHex(item.sharedSecretHex))
      const packet = await Packet.decryptAndDeserialize(key, fromHex(item.dataHex))
      const fulfillment = await cryptoLib.generateFulfillment(
        await cryptoLib.generateFulfillmentKey(fromHex(item.sharedSecretHex)), fromHex(item.dataHex))
      answer.decrypted.push({ ok: true, packet: packetJson(packet), fulfillmentHex: hex(fulfillment) })
    } catch (err) {
      answer.decrypted.push({ ok: false, error: err.message })
    }
  }
  for (const item of request.decode || []) {
    answer.decoded.push(decodeResult(fromHex(item.hex)))
  }
  for (const item of request.connections || []) {
    // What ilp-protocol-stream's server does with a Prepare for an address it did not make.
    const serverAddress = item.serverAddress
    const pool = new ServerConnectionPool(fromHex(item.serverSecretHex), {
      plugin: stubPlugin(serverAddress), sourceAccount: serverAddress, assetCode: 'XYZ', assetScale: 9, isServer: true,
    }, () => {})
    const id = item.destinationAccount.replace(`${serverAddress}.`, '').split('.')[0]
    const prepare = { destination: item.destinationAccount, amount: '0', data: fromHex(item.dataHex) }
    try {
      const sharedSecret = await pool.getSharedSecret(Buffer.from(id, 'base64'), prepare)
      const connection = await pool.getConnection(id, prepare)
      answer.connections.push({
        ok: true,
        sharedSecretHex: hex(sharedSecret),
        connectionTag: connection.connectionTag === undefined ? null : connection.connectionTag,
        receiptNonceHex: connection._receiptNonce ? hex(connection._receiptNonce) : null,
        receiptSecretHex: connection._receiptSecret ? hex(connection._receiptSecret) : null,
      })
    } catch (err) {
      answer.connections.push({ ok: false, error: err.message })
    }
  }
  for (const item of request.receipts || []) {
    try {
      const decoded = receiptLib.verifyReceipt(fromHex(item.receiptHex), fromHex(item.secretHex))
      answer.receipts.push({ ok: true, streamId: Number(decoded.streamId), totalReceived: decoded.totalReceived.toString() })
    } catch (err) {
      answer.receipts.push({ ok: false, error: err.message })
    }
  }
  return answer
}

function readStdin () {
  // fs.readFileSync(0) fails with EAGAIN on a large non-blocking pipe; read it as a stream.
  return new Promise((resolve, reject) => {
    const chunks = []
    process.stdin.on('data', (chunk) => chunks.push(chunk))
    process.stdin.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    process.stdin.on('error', reject)
  })
}

async function main () {
  if (mode === 'generate' && process.argv[3]) {
    await generate(process.argv[3])
  } else if (mode === 'check') {
    const input = await readStdin()
    const text = JSON.stringify(await check(JSON.parse(input))) + '\n'
    // A pipe is written asynchronously: exiting before the write completes would cut the answer.
    await new Promise((resolve) => process.stdout.write(text, resolve))
  } else {
    process.stderr.write('usage: node vectors.js generate OUT_DIR | node vectors.js check < request.json\n')
    process.exitCode = 2
  }
}

main().then(() => process.exit(process.exitCode || 0), (err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err) + '\n')
  process.exit(1)
})
