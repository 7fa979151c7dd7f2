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
  const { topic, maxFrameBytes, maxMessageBytes, ping } = opts
  /** No unit (the greeting, one frame with its header) is longer than this. */
  const maxUnit = Math.max(GREETING_BYTES, 9 + maxFrameBytes)
  let greeted = false
  let ready = false
  let failed = false
  /** Bytes of an unfinished unit, copied out of the chunk that brought them. */
  let pending: Buffer | null = null
  /** The frames of the message being received; null between messages and while skipping. */
  let parts: Buffer[] | null = null
  let partsBytes = 0
  /** Between the first and the last frame of a message (a skipped one too). */
  let inMessage = false
  let minor: ZmtpMinor = 1
  let nextPingAt: number | null = null
  /** Set by our PING, cleared by anything the peer sends. */
  let pingDeadline: number | null = null
  /** Set by the peer's PING with a TTL, cleared by anything else it sends. */
  let ttlDeadline: number | null = null

  function fail (reason: string): void {
    if (failed) return
    failed = true
    pending = null
    parts = null
    on.fail(reason)
  }

  function onCommand (body: Buffer, now: number): void {
    const nameLen = body.length === 0 ? 0 : body[0] as number
    if (body.length === 0 || body.length < 1 + nameLen) {
      // After the handshake a malformed command is ignored, as libzmq does.
      if (!ready) fail('malformed command during the handshake')
      return
    }
    const name = body.toString('latin1', 1, 1 + nameLen)
    const data = body.subarray(1 + nameLen)
    if (!ready) {
      if (name === 'ERROR') {
        const len = data.length === 0 ? 0 : Math.min(data[0] as number, data.length - 1)
        fail(`the peer refused the handshake: ${JSON.stringify(data.toString('latin1', 1, 1 + len))}`)
      } else if (name !== 'READY') {
        fail(`unexpected ${JSON.stringify(name)} command during the handshake (NULL expects READY)`)
      } else {
        const found = readySocketType(data)
        if ('refusal' in found) fail(found.refusal)
        else if (!PUBLISHERS.has(found.type)) fail(`the peer is a ${JSON.stringify(found.type)} socket, which cannot feed a SUB (PUB or XPUB can)`)
        else {
          ready = true
          if (ping !== undefined) nextPingAt = now + ping.intervalMs
          on.send(subscription(topic, minor))
          on.ready(minor)
        }
      }
      return
    }
    // PONG needs nothing more: any frame already counted as traffic. SUBSCRIBE, CANCEL and
    // unknown commands mean nothing to a subscriber.
    if (name === 'PING' && data.length >= PING_TTL_BYTES) {
      const ttlMs = data.readUInt16BE(0) * 100
      if (ttlMs > 0) ttlDeadline = now + ttlMs
      const context = data.subarray(PING_TTL_BYTES, PING_TTL_BYTES + PING_CONTEXT_MAX)
      on.send(command('PONG', context))
    }
  }

  function onFrame (flags: number, body: Buffer, now: number): void {
    if (ready) {
      pingDeadline = null
      ttlDeadline = null
    }
    if ((flags & FLAG_COMMAND) !== 0) {
      onCommand(body, now)
      return
    }
    if (!ready) {
      fail('a message before the handshake completed')
      return
    }
    const more = (flags & FLAG_MORE) !== 0
    if (!inMessage) {
      inMessage = true
      // A message that does not match the subscription is skipped, frame by frame.
      const matches = body.length >= topic.length && body.subarray(0, topic.length).equals(topic)
      parts = matches ? [] : null
      partsBytes = 0
    }
    if (parts !== null) {
      partsBytes += body.length
      if (partsBytes > maxMessageBytes) {
        fail(`a message over the ${maxMessageBytes}-byte limit`)
        return
      }
      parts.push(Buffer.from(body)) // a copy: the chunk it lies in may be reused
    }
    if (more) return
    inMessage = false
    const done = parts
    parts = null
    if (done !== null) on.message(done)
  }

  /** Handles the unit at `off` if it is all there; returns the bytes it took (0: not yet). */
  function unit (buf: Buffer, off: number, now: number): number {
    const avail = buf.length - off
    if (!greeted) {
      const refusal = greetingRefusal(buf.subarray(off, off + Math.min(avail, GREETING_BYTES)))
      if (refusal !== null) {
        fail(refusal)
        return 0
      }
      if (avail < GREETING_BYTES) return 0
      greeted = true
      minor = buf[off + 11] === 0 ? 0 : 1
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
    if (size > maxFrameBytes) {
      fail(`a frame ${size === Infinity ? 'over 4 GiB' : `of ${size} bytes`} is over the ${maxFrameBytes}-byte limit`)
      return 0
    }
    if (avail < head + size) return 0
    onFrame(flags, buf.subarray(off + head, off + head + size), now)
    return head + size
  }

  /** Handles every whole unit from `off` on; returns where the first unfinished one starts. */
  function units (buf: Buffer, off: number, now: number): number {
    for (;;) {
      if (failed) return buf.length
      const used = unit(buf, off, now)
      if (used === 0) return failed ? buf.length : off
      off += used
    }
  }

  return {
    hello: () => HELLO,

    receive (chunk, now) {
      if (failed) return
      let off = 0
      if (pending !== null) {
        // The unfinished unit ends within the next maxUnit bytes if the chunk has them: join
        // only those, not a whole 64 KiB read, to the few bytes kept from the last chunk.
        const kept = pending.length
        const head = Buffer.concat([pending, chunk.subarray(0, maxUnit)])
        pending = null
        const end = units(head, 0, now)
        if (failed) return
        if (end < kept) {
          // Still unfinished, so the chunk was shorter than maxUnit and `head` holds all of it.
          pending = Buffer.from(head.subarray(end))
          return
        }
        off = end - kept
      }
      const end = units(chunk, off, now)
      if (!failed && end < chunk.length) pending = Buffer.from(chunk.subarray(end))
    },

    tick (now) {
      if (failed || !ready) return
      if (pingDeadline !== null && now >= pingDeadline) {
        fail(`nothing received for ${ping?.timeoutMs} ms after a PING`)
      } else if (ttlDeadline !== null && now >= ttlDeadline) {
        fail('nothing received within the TTL of the peer\'s PING')
      } else if (ping !== undefined && nextPingAt !== null && now >= nextPingAt) {
        on.send(pingCommand(ping.ttlMs))
        nextPingAt = now + ping.intervalMs
        pingDeadline ??= now + ping.timeoutMs
      }
    },

    wakeAt () {
      if (failed || !ready) return null
      let at: number | null = null
      for (const t of [nextPingAt, pingDeadline, ttlDeadline]) if (t !== null && (at === null || t < at)) at = t
      return at
    },

    get ready () { return ready },
    get failed () { return failed }
  }
}
