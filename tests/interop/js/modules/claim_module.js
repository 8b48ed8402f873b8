'use strict'
// The claim-based example settlement module (examples/claim_channel) written for the JavaScript
// reference's makePaymentChannelPlugin, so a Python peer and a JS peer settle with each other.
// Same options, same claim JSON, same signed bytes, same simulated ledger files, same rpc
// methods as the Python module; only Node's own crypto (Ed25519) is used.
//
// Options (in the plugin's options object): secret (64 hex: Ed25519 seed), peerPublicKey (64 hex),
// ledgerPath (directory of the simulated ledger), channelAmount (capacity to lock, default 0),
// maxUnsecured, prefix, info (optional currencyCode/currencyScale/connectors), authToken.
// Test-only option: forgeClaims (sign claims with a throw-away key, so the peer must ignore them).

const crypto = require('crypto')
const fs = require('fs')
const path = require('path')
const { NotAcceptedError, InvalidFieldsError } = require('ilp-plugin-payment-channel-framework').errors

const CLAIM_DOMAIN = Buffer.from('ilp-paychan example claim\0')
const CHANNEL_DOMAIN = Buffer.from('ilp-paychan example channel\0')
const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex')
const SPKI_ED25519 = Buffer.from('302a300506032b6570032100', 'hex')
const LATEST_CLAIM_METHOD = 'paychan_latest_claim'
const PUSH_CLAIM_METHOD = 'paychan_claim'
const LOCK_WAIT_MS = 5000

function hex32 (value, field) {
  if (typeof value !== 'string' || !/^[0-9a-fA-F]{64}$/.test(value)) {
    throw new InvalidFieldsError(field + ' must be 64 hex digits (32 bytes), got ' + JSON.stringify(value))
  }
  return Buffer.from(value, 'hex')
}

function amount (opts, key, dflt) {
  const value = opts[key] === undefined ? dflt : opts[key]
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return BigInt(value)
  if (typeof value === 'string' && /^[0-9]+$/.test(value)) return BigInt(value)
  throw new InvalidFieldsError('option ' + key + ' must be a non-negative integer, got ' + JSON.stringify(value))
}

function privateKey (seed) {
  return crypto.createPrivateKey({ key: Buffer.concat([PKCS8_ED25519, seed]), format: 'der', type: 'pkcs8' })
}

function publicRaw (key) {
  return crypto.createPublicKey(key).export({ format: 'der', type: 'spki' }).slice(-32)
}

function publicKey (raw) {
  return crypto.createPublicKey({ key: Buffer.concat([SPKI_ED25519, raw]), format: 'der', type: 'spki' })
}

function channelId (sender, receiver) {
  return crypto.createHash('sha256').update(Buffer.concat([CHANNEL_DOMAIN, sender, receiver]))
    .digest('hex').slice(0, 32)
}

function claimMessage (channel, balance) {
  return Buffer.concat([CLAIM_DOMAIN, Buffer.from(channel, 'ascii'), Buffer.from([0]),
    Buffer.from(balance.toString(), 'ascii')])
}

function signClaim (key, channel, balance) {
  const signature = crypto.sign(null, claimMessage(channel, balance), key)
  return { channel, balance: balance.toString(), signature: signature.toString('base64url') }
}

function parseClaim (value) {
  if (!value || typeof value !== 'object') throw new Error('claim must be an object')
  const { channel, balance, signature } = value
  if (typeof channel !== 'string' || !/^[0-9a-f]{32}$/.test(channel)) throw new Error('claim.channel must be 32 hex digits')
  if (typeof balance !== 'string' || !/^[0-9]{1,40}$/.test(balance)) throw new Error('claim.balance must be a decimal string')
  if (typeof signature !== 'string' || !/^[A-Za-z0-9_-]*$/.test(signature)) throw new Error('claim.signature must be base64url')
  const raw = Buffer.from(signature, 'base64url')
  if (raw.length !== 64) throw new Error('claim.signature must be 64 bytes')
  return { channel, balance: BigInt(balance), signature: raw }
}

function signedBy (raw, claim) {
  return crypto.verify(null, claimMessage(claim.channel, claim.balance), publicKey(raw), claim.signature)
}

// The simulated ledger: <root>/channels/<id>.json, written under <root>/.lock, replaced atomically.
class ChannelLedger {
  constructor (root) { this.root = root }

  _path (id) { return path.join(this.root, 'channels', id + '.json') }

  _read (id) {
    let text
    try {
      text = fs.readFileSync(this._path(id), 'utf8')
    } catch (err) {
      if (err.code === 'ENOENT') return null
      throw err
    }
    const c = JSON.parse(text)
    return {
      id: c.id,
      sender: Buffer.from(c.sender, 'hex'),
      receiver: Buffer.from(c.receiver, 'hex'),
      capacity: BigInt(c.capacity),
      claimed: BigInt(c.claimed)
    }
  }

  _write (c) {
    const file = this._path(c.id)
    const tmp = file.replace(/\.json$/, '.' + process.pid + '.tmp')
    fs.writeFileSync(tmp, JSON.stringify({
      id: c.id,
      sender: c.sender.toString('hex'),
      receiver: c.receiver.toString('hex'),
      capacity: c.capacity.toString(),
      claimed: c.claimed.toString()
    }))
    fs.renameSync(tmp, file)
  }

  async _locked (fn) {
    fs.mkdirSync(path.join(this.root, 'channels'), { recursive: true })
    const lock = path.join(this.root, '.lock')
    const deadline = Date.now() + LOCK_WAIT_MS
    let fd
    for (;;) {
      try {
        fd = fs.openSync(lock, 'wx')
        break
      } catch (err) {
        if (err.code !== 'EEXIST') throw err
        if (Date.now() > deadline) throw new Error('ledger ' + this.root + ' is locked by another writer')
        await new Promise((resolve) => setTimeout(resolve, 2))
      }
    }
    try {
      return fn()
    } finally {
      fs.closeSync(fd)
      fs.unlinkSync(lock)
    }
  }

  async getChannel (id) { return this._read(id) }

  async openChannel (sender, receiver, capacity) {
    const id = channelId(sender, receiver)
    return this._locked(() => {
      let c = this._read(id)
      if (!c) c = { id, sender, receiver, capacity, claimed: 0n }
      else if (capacity > c.capacity) c.capacity = capacity
      else return c
      this._write(c)
      return c
    })
  }

  async submitClaim (claim) {
    return this._locked(() => {
      const c = this._read(claim.channel)
      if (!c || !signedBy(c.sender, claim)) return 0n
      const value = claim.balance < c.capacity ? claim.balance : c.capacity
      if (value <= c.claimed) return 0n
      const paid = value - c.claimed
      c.claimed = value
      this._write(c)
      return paid
    })
  }
}

async function acceptClaim (ctx, value) {
  const s = ctx.state
  let claim
  try {
    claim = parseClaim(value)
  } catch (err) {
    return false
  }
  if (claim.channel !== s.incomingChannel || !signedBy(s.peerPublic, claim)) return false
  if (claim.balance > s.incomingCapacity) {
    const c = await s.ledger.getChannel(claim.channel)
    s.incomingCapacity = c ? c.capacity : 0n
  }
  const secured = claim.balance < s.incomingCapacity ? claim.balance : s.incomingCapacity
  if (secured <= 0n) return false
  await s.bestClaim.setIfMax({ value: secured.toString(), data: value })
  return true
}

async function latestOutgoingClaim (ctx) {
  const balance = BigInt(await ctx.transferLog.getOutgoingFulfilled())
  if (balance <= 0n) return null
  return signClaim(ctx.state.signingKey, ctx.state.outgoingChannel, balance)
}

async function pullLatestClaim (ctx) {
  const latest = await ctx.rpc.call(LATEST_CLAIM_METHOD, ctx.state.prefix, null)
  if (latest && latest.signature) await acceptClaim(ctx, latest)
}

async function resync (ctx) {
  let delay = 50
  for (let attempt = 0; attempt < 40 && !ctx.state.stopped; attempt++) {
    try {
      await pullLatestClaim(ctx)
      const mine = await latestOutgoingClaim(ctx)
      if (mine) await ctx.rpc.call(PUSH_CLAIM_METHOD, ctx.state.prefix, mine)
      return
    } catch (err) {
      if (/Unrecognized side protocol/.test(err.message)) return
    }
    await new Promise((resolve) => setTimeout(resolve, delay))
    delay = Math.min(delay * 2, 500)
  }
}

const claimModule = {
  pluginName: 'claim-channel',

  constructor (ctx, opts) {
    const s = ctx.state
    const seed = hex32(opts.secret, 'secret')
    s.key = privateKey(seed)
    s.peerPublic = hex32(opts.peerPublicKey, 'peerPublicKey')
    if (typeof opts.ledgerPath !== 'string' || !opts.ledgerPath) throw new InvalidFieldsError('option ledgerPath must be a directory path')
    if (typeof opts.prefix !== 'string' || !opts.prefix.endsWith('.')) throw new InvalidFieldsError('option prefix must end in "."')
    s.public = publicRaw(s.key)
    // forgeClaims: a test switch; claims are then signed by a key the peer does not know
    s.signingKey = opts.forgeClaims ? crypto.generateKeyPairSync('ed25519').privateKey : s.key
    s.ledger = new ChannelLedger(opts.ledgerPath)
    s.outgoingChannel = channelId(s.public, s.peerPublic)
    s.incomingChannel = channelId(s.peerPublic, s.public)
    s.channelAmount = amount(opts, 'channelAmount', '0')
    s.maxUnsecured = amount(opts, 'maxUnsecured')
    s.incomingCapacity = 0n
    s.prefix = opts.prefix
    s.account = opts.prefix + s.public.toString('hex').slice(0, 16)
    s.peerAccount = opts.prefix + s.peerPublic.toString('hex').slice(0, 16)
    const given = (opts.info && typeof opts.info === 'object') ? opts.info : {}
    s.info = {
      prefix: opts.prefix,
      currencyCode: given.currencyCode || 'XCL',
      currencyScale: given.currencyScale === undefined ? 6 : given.currencyScale,
      connectors: given.connectors || []
    }
    s.authToken = opts.authToken
    s.isClient = Boolean(opts.server)
    s.bestClaim = ctx.backend.getMaxValueTracker('incoming_claim')
    s.stopped = false
    ctx.rpc.addMethod(LATEST_CLAIM_METHOD, async () => (await latestOutgoingClaim(ctx)))
    ctx.rpc.addMethod(PUSH_CLAIM_METHOD, async (claim) => (await acceptClaim(ctx, claim)))
  },

  getAuthToken: (ctx) => ctx.state.authToken,
  getInfo: (ctx) => ctx.state.info,
  getAccount: (ctx) => ctx.state.account,
  getPeerAccount: (ctx) => ctx.state.peerAccount,

  async connect (ctx) {
    const s = ctx.state
    if (s.channelAmount > 0n) await s.ledger.openChannel(s.public, s.peerPublic, s.channelAmount)
    s.stopped = false
    if (s.isClient) {
      // The reference opens its client socket lazily on the first request, and concurrent first
      // requests can overtake the auth message: make the claim exchange that first
      // request, alone, before connect() returns.
      await resync(ctx)
    } else {
      s.resync = resync(ctx)
    }
  },

  async disconnect (ctx) {
    const s = ctx.state
    s.stopped = true
    try {
      await Promise.race([pullLatestClaim(ctx), new Promise((resolve) => setTimeout(resolve, 2000))])
    } catch (err) {}
    const best = await s.bestClaim.getMax()
    if (!best || !best.data) return
    await s.ledger.submitClaim(parseClaim(best.data))
  },

  async handleIncomingPrepare (ctx, transfer) {
    const incoming = BigInt(await ctx.transferLog.getIncomingFulfilledAndPrepared())
    const best = await ctx.state.bestClaim.getMax()
    const secured = BigInt((best && best.value) || '0')
    if (incoming - secured > ctx.state.maxUnsecured) {
      throw new NotAcceptedError(transfer.id + ' exceeds max unsecured balance: ' +
        (incoming - secured).toString() + ' > ' + ctx.state.maxUnsecured.toString())
    }
  },

  async createOutgoingClaim (ctx, outgoingBalance) {
    const balance = BigInt(outgoingBalance)
    if (balance <= 0n) return undefined
    return signClaim(ctx.state.signingKey, ctx.state.outgoingChannel, balance)
  },

  async handleIncomingClaim (ctx, claim) {
    if (claim !== undefined) await acceptClaim(ctx, claim)
  }
}

module.exports = claimModule
module.exports.create = () => claimModule
module.exports.channelId = channelId
