// The subscriber's half of ZMTP 3.x, the wire protocol of a ZeroMQ PUB (ZMTP 3.0 is RFC 23, 3.1
// is RFC 37), for the one security mechanism heartbeat endpoints use: NULL. It is the codec of one
// connection: it says what to write, and turns the bytes read into the peer's messages. Pure: no
// sockets and no timers; time comes in as numbers, so the worker's own connections
// (heartbeat-conns.ts) can hold one cheap state object per provider instead of libzmq's buffers.
//
// What it checks, and why each failure closes the connection (the shell reconnects later):
// - The greeting: a signature 0xFF … 0x7F, major version 3 (older peers speak framings this
//   codec does not), mechanism NULL (a CURVE or PLAIN publisher would need keys we do not have).
// - The handshake: the peer's READY names a socket type that can feed a SUB (PUB or XPUB), or
//   its ERROR says why it refuses us.
// - Every frame's size before its body is read: a peer announcing a frame over `maxFrameBytes`,
//   or a message over `maxMessageBytes`, costs no more than that (as libzmq's maxMessageSize).

/** The subscription a ZMTP 3.1 peer expects is a command; a 3.0 peer takes a message 0x01+topic. */
export type ZmtpMinor = 0 | 1

export interface ZmtpPing {
  /** A PING is sent this long after the handshake, and again this long after each PING. */
  intervalMs: number
  /** The connection fails when nothing at all arrived for this long after a PING. */
  timeoutMs: number
  /** Sent in each PING: the peer may drop us after this long without traffic from us. */
  ttlMs: number
}

export interface ZmtpSubOptions {
  /** The one subscription: messages whose first frame does not start with it are dropped. */
  topic: Buffer
  maxFrameBytes: number
  maxMessageBytes: number
  /** ZMTP heartbeats (PING/PONG) from our side; absent: we only answer the peer's PINGs. */
  ping?: ZmtpPing | undefined
}

export interface ZmtpSubHandlers {
  /** Bytes to write to the peer, in order. */
  send: (bytes: Buffer) => void
  /** The handshake completed (our subscription is already on its way). */
  ready: (minor: ZmtpMinor) => void
  /** A whole message that matches the subscription; its frames are the codec's to give. */
  message: (frames: Buffer[]) => void
  /** The connection must close: `reason` says why. Nothing else is called afterwards. */
  fail: (reason: string) => void
}

export interface ZmtpSub {
  /** What to write first, as soon as the TCP connection is up: our greeting and our READY. */
  hello: () => Buffer
  /** Feeds bytes read from the peer, cut anywhere. The chunk is not kept: it may be reused. */
  receive: (chunk: Buffer, now: number) => void
  /** Sends a PING that is due, or fails the connection whose peer went quiet (see ZmtpPing). */
  tick: (now: number) => void
  /** When tick() has something to do next (null: nothing, e.g. no pings and no peer TTL). */
  wakeAt: () => number | null
  readonly ready: boolean
  readonly failed: boolean
}

const GREETING_BYTES = 64
const MECHANISM_AT = 12
const MECHANISM_BYTES = 20
const FLAG_MORE = 0x01
const FLAG_LONG = 0x02
const FLAG_COMMAND = 0x04
/** A PING's body after its name: the TTL (2 bytes, tenths of a second), then up to 16 bytes
 *  of context that the PONG returns. */
const PING_TTL_BYTES = 2
const PING_CONTEXT_MAX = 16
const PUBLISHERS = new Set(['PUB', 'XPUB'])

function frame (flags: number, body: Buffer): Buffer {
  if (body.length <= 255) return Buffer.concat([Buffer.from([flags, body.length]), body])
  const head = Buffer.alloc(9)
  head[0] = flags | FLAG_LONG
  head.writeBigUInt64BE(BigInt(body.length), 1)
  return Buffer.concat([head, body])
}

/** A command's body: its name, length-prefixed, then its data. */
function command (name: string, data: Buffer = Buffer.alloc(0)): Buffer {
  return frame(FLAG_COMMAND, Buffer.concat([Buffer.from([name.length]), Buffer.from(name, 'ascii'), data]))
}

/** Our greeting: ZMTP 3.1, mechanism NULL, as-server 0; the rest is zero filler. */
export function greeting (): Buffer {
  const g = Buffer.alloc(GREETING_BYTES)
  g[0] = 0xff
  g[9] = 0x7f
  g[10] = 3
  g[11] = 1
  g.write('NULL', MECHANISM_AT, 'ascii')
  return g
}

/** A READY (or any metadata) property: name length, name, value length (4 bytes), value. */
function property (name: string, value: string): Buffer {
  const v = Buffer.from(value, 'ascii')
  const len = Buffer.alloc(4)
  len.writeUInt32BE(v.length)
  return Buffer.concat([Buffer.from([name.length]), Buffer.from(name, 'ascii'), len, v])
}

const HELLO = Buffer.concat([greeting(), command('READY', property('Socket-Type', 'SUB'))])

/** The subscription as the peer's minor version wants it. */
export function subscription (topic: Buffer, minor: ZmtpMinor): Buffer {
  return minor === 0 ? frame(0, Buffer.concat([Buffer.from([1]), topic])) : command('SUBSCRIBE', topic)
}

function pingCommand (ttlMs: number): Buffer {
  const ttl = Buffer.alloc(PING_TTL_BYTES)
  ttl.writeUInt16BE(Math.min(0xffff, Math.floor(ttlMs / 100)))
  return command('PING', ttl)
}

/** Why the greeting received so far is not one we can talk to, or null (fine, or too short to
 *  tell yet). Checked as bytes arrive, so a non-ZMTP peer is refused at its first byte. */
function greetingRefusal (g: Buffer): string | null {
  if (g.length >= 1 && g[0] !== 0xff) return 'not a ZMTP 3 peer: its greeting does not start with 0xFF (ZMTP 1.0, or not ZeroMQ)'
  if (g.length >= 10 && ((g[9] as number) & 1) === 0) return 'not a ZMTP 3 peer: its signature does not end with 0x7F (ZMTP 1.0)'
  if (g.length >= 11 && g[10] !== 3) return `ZMTP ${g[10]}.x is not supported (the peer must speak ZMTP 3.x: libzmq 4 or later)`
  if (g.length >= MECHANISM_AT + MECHANISM_BYTES) {
    const mechanism = g.subarray(MECHANISM_AT, MECHANISM_AT + MECHANISM_BYTES)
    const name = mechanism.toString('latin1').replace(/\0+$/, '')
    if (name !== 'NULL' || mechanism.subarray(4).some((b) => b !== 0)) {
      return `security mechanism ${JSON.stringify(name)} is not supported (heartbeat endpoints use NULL)`
    }
  }
  return null
}

/** The socket type a READY's metadata names, or why the metadata is unusable. */
function readySocketType (data: Buffer): { type: string } | { refusal: string } {
  let type: string | null = null
  let p = 0
  while (p < data.length) {
    const nameLen = data[p] as number
    p += 1
    if (p + nameLen + 4 > data.length) return { refusal: 'malformed READY metadata' }
    const name = data.toString('latin1', p, p + nameLen)
    p += nameLen
    const valueLen = data.readUInt32BE(p)
    p += 4
    if (p + valueLen > data.length) return { refusal: 'malformed READY metadata' }
    // Property names are case-insensitive (RFC 23).
    if (name.toLowerCase() === 'socket-type') type = data.toString('latin1', p, p + valueLen)
    p += valueLen
  }
  if (type === null) return { refusal: 'READY without a Socket-Type' }
  return { type }
}

export function createZmtpSub (opts: ZmtpSubOptions, on: ZmtpSubHandlers): ZmtpSub {
  return new ZmtpSubscriber(opts, on)
}

/**
 * A class rather than this repository's usual closures, for memory: the worker holds one per
 * provider, and Roster runs through tsx, whose keepNames gives every named closure its own
 * property store (~300 bytes each): a dozen closures per connection came to ~5 KB, a class's
 * methods to nothing.
 */
class ZmtpSubscriber implements ZmtpSub {
  private readonly opts: ZmtpSubOptions
  private readonly on: ZmtpSubHandlers
  /** No unit (the greeting, one frame with its header) is longer than this. */
  private readonly maxUnit: number
  private greeted = false
  private isReady = false
  private isFailed = false
  private minor: ZmtpMinor = 1
  /** Bytes of an unfinished unit, copied out of the chunk that brought them. */
  private pending: Buffer | null = null
  /** The frames of the message being received; null between messages and while skipping. */
  private parts: Buffer[] | null = null
  private partsBytes = 0
  /** Between the first and the last frame of a message (a skipped one too). */
  private inMessage = false
  private nextPingAt: number | null = null
  /** Set by our PING, cleared by anything the peer sends. */
  private pingDeadline: number | null = null
  /** Set by the peer's PING with a TTL, cleared by anything else it sends. */
  private ttlDeadline: number | null = null

  constructor (opts: ZmtpSubOptions, on: ZmtpSubHandlers) {
    this.opts = opts
    this.on = on
    this.maxUnit = Math.max(GREETING_BYTES, 9 + opts.maxFrameBytes)
  }

  get ready (): boolean { return this.isReady }
  get failed (): boolean { return this.isFailed }

  hello (): Buffer { return HELLO }

  receive (chunk: Buffer, now: number): void {
    if (this.isFailed) return
    let off = 0
    if (this.pending !== null) {
      // The unfinished unit ends within the next maxUnit bytes if the chunk has them: join
      // only those, not a whole 64 KiB read, to the few bytes kept from the last chunk.
      const kept = this.pending.length
      const head = Buffer.concat([this.pending, chunk.subarray(0, this.maxUnit)])
      this.pending = null
      const end = this.units(head, 0, now)
      if (this.isFailed) return
      if (end < kept) {
        // Still unfinished, so the chunk was shorter than maxUnit and `head` holds all of it.
        this.pending = Buffer.from(head.subarray(end))
        return
      }
      off = end - kept
    }
    const end = this.units(chunk, off, now)
    if (!this.isFailed && end < chunk.length) this.pending = Buffer.from(chunk.subarray(end))
  }

  tick (now: number): void {
    const { ping } = this.opts
    if (this.isFailed || !this.isReady) return
    if (this.pingDeadline !== null && now >= this.pingDeadline) {
      this.fail(`nothing received for ${ping?.timeoutMs} ms after a PING`)
    } else if (this.ttlDeadline !== null && now >= this.ttlDeadline) {
      this.fail('nothing received within the TTL of the peer\'s PING')
    } else if (ping !== undefined && this.nextPingAt !== null && now >= this.nextPingAt) {
      this.on.send(pingCommand(ping.ttlMs))
      this.nextPingAt = now + ping.intervalMs
      this.pingDeadline ??= now + ping.timeoutMs
    }
  }

  wakeAt (): number | null {
    if (this.isFailed || !this.isReady) return null
    let at = this.nextPingAt
    if (this.pingDeadline !== null && (at === null || this.pingDeadline < at)) at = this.pingDeadline
    if (this.ttlDeadline !== null && (at === null || this.ttlDeadline < at)) at = this.ttlDeadline
    return at
  }

  private fail (reason: string): void {
    if (this.isFailed) return
    this.isFailed = true
    this.pending = null
    this.parts = null
    this.on.fail(reason)
  }

  /** Handles every whole unit from `off` on; returns where the first unfinished one starts. */
  private units (buf: Buffer, off: number, now: number): number {
    for (;;) {
      if (this.isFailed) return buf.length
      const used = this.unit(buf, off, now)
      if (used === 0) return this.isFailed ? buf.length : off
      off += used
    }
  }

  /** Handles the unit at `off` if it is all there; returns the bytes it took (0: not yet). */
  private unit (buf: Buffer, off: number, now: number): number {
    const avail = buf.length - off
    if (!this.greeted) {
      const refusal = greetingRefusal(buf.subarray(off, off + Math.min(avail, GREETING_BYTES)))
      if (refusal !== null) {
        this.fail(refusal)
        return 0
      }
      if (avail < GREETING_BYTES) return 0
      this.greeted = true
      this.minor = buf[off + 11] === 0 ? 0 : 1
      return GREETING_BYTES
    }
    if (avail < 2) return 0
    const flags = buf[off] as number
    const long = (flags & FLAG_LONG) !== 0
    const head = long ? 9 : 2
    if (avail < head) return 0
    let size: number
    if (long) {
      const high = buf.readUInt32BE(off + 1)
      size = high === 0 ? buf.readUInt32BE(off + 5) : Infinity
    } else {
      size = buf[off + 1] as number
    }
    const max = this.opts.maxFrameBytes
    if (size > max) {
      this.fail(`a frame ${size === Infinity ? 'over 4 GiB' : `of ${size} bytes`} is over the ${max}-byte limit`)
      return 0
    }
    if (avail < head + size) return 0
    this.onFrame(flags, buf.subarray(off + head, off + head + size), now)
    return head + size
  }

  private onFrame (flags: number, body: Buffer, now: number): void {
    if (this.isReady) {
      this.pingDeadline = null
      this.ttlDeadline = null
    }
    if ((flags & FLAG_COMMAND) !== 0) {
      this.onCommand(body, now)
      return
    }
    if (!this.isReady) {
      this.fail('a message before the handshake completed')
      return
    }
    const { topic, maxMessageBytes } = this.opts
    if (!this.inMessage) {
      this.inMessage = true
      // A message that does not match the subscription is skipped, frame by frame.
      const matches = body.length >= topic.length && body.subarray(0, topic.length).equals(topic)
      this.parts = matches ? [] : null
      this.partsBytes = 0
    }
    if (this.parts !== null) {
      this.partsBytes += body.length
      if (this.partsBytes > maxMessageBytes) {
        this.fail(`a message over the ${maxMessageBytes}-byte limit`)
        return
      }
      this.parts.push(Buffer.from(body)) // a copy: the chunk it lies in may be reused
    }
    if ((flags & FLAG_MORE) !== 0) return
    this.inMessage = false
    const done = this.parts
    this.parts = null
    if (done !== null) this.on.message(done)
  }

  private onCommand (body: Buffer, now: number): void {
    const nameLen = body.length === 0 ? 0 : body[0] as number
    if (body.length === 0 || body.length < 1 + nameLen) {
      // After the handshake a malformed command is ignored, as libzmq does.
      if (!this.isReady) this.fail('malformed command during the handshake')
      return
    }
    const name = body.toString('latin1', 1, 1 + nameLen)
    const data = body.subarray(1 + nameLen)
    if (!this.isReady) {
      this.onHandshakeCommand(name, data, now)
      return
    }
    // PONG needs nothing more: any frame already counted as traffic. SUBSCRIBE, CANCEL and
    // unknown commands mean nothing to a subscriber.
    if (name === 'PING' && data.length >= PING_TTL_BYTES) {
      const ttlMs = data.readUInt16BE(0) * 100
      if (ttlMs > 0) this.ttlDeadline = now + ttlMs
      const context = data.subarray(PING_TTL_BYTES, PING_TTL_BYTES + PING_CONTEXT_MAX)
      this.on.send(command('PONG', context))
    }
  }

  private onHandshakeCommand (name: string, data: Buffer, now: number): void {
    if (name === 'ERROR') {
      const len = data.length === 0 ? 0 : Math.min(data[0] as number, data.length - 1)
      this.fail(`the peer refused the handshake: ${JSON.stringify(data.toString('latin1', 1, 1 + len))}`)
      return
    }
    if (name !== 'READY') {
      this.fail(`unexpected ${JSON.stringify(name)} command during the handshake (NULL expects READY)`)
      return
    }
    const found = readySocketType(data)
    if ('refusal' in found) {
      this.fail(found.refusal)
    } else if (!PUBLISHERS.has(found.type)) {
      this.fail(`the peer is a ${JSON.stringify(found.type)} socket, which cannot feed a SUB (PUB or XPUB can)`)
    } else {
      this.isReady = true
      if (this.opts.ping !== undefined) this.nextPingAt = now + this.opts.ping.intervalMs
      this.on.send(subscription(this.opts.topic, this.minor))
      this.on.ready(this.minor)
    }
  }
}
