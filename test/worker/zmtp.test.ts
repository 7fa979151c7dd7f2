// The subscriber's ZMTP 3.x codec against byte streams written from RFC 23/37 (zmtp-bytes.ts, not
// the codec's own encoders): what it writes, what it accepts and refuses, and, with fast-check, that a
// stream cut anywhere (every chunking of it) is read exactly as the whole stream is. The real
// peers (libzmq through zeromq.js, pyzmq) are in heartbeat-conns.test.ts and worker.test.ts.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { createZmtpSub, type ZmtpSubOptions } from '../../server/worker/zmtp.js'
import { cmd, greeting, props, rawFrame, READY_PUB } from './zmtp-bytes.js'

const T0 = 1_000_000
const TOPIC = Buffer.from('hb')
const OPTS: ZmtpSubOptions = { topic: TOPIC, maxFrameBytes: 1024, maxMessageBytes: 4096 }

/** A PUB's greeting: it binds, so it is the server. */
function peerGreeting (opts: { major?: number, minor?: number, mechanism?: string } = {}): Buffer {
  return greeting({ ...opts, asServer: true })
}

function msg (frames: Array<string | Buffer>, long = false): Buffer {
  return Buffer.concat(frames.map((f, i) => rawFrame(i < frames.length - 1 ? 0x01 : 0x00, Buffer.from(f), long || Buffer.from(f).length > 255)))
}

function ping (ttlDeciseconds: number, context = Buffer.alloc(0)): Buffer {
  const ttl = Buffer.alloc(2)
  ttl.writeUInt16BE(ttlDeciseconds)
  return cmd('PING', Buffer.concat([ttl, context]))
}

// ---- a harness that records what the codec does -----------------------------------------------

function harness (opts: Partial<ZmtpSubOptions> = {}) {
  const sent: Buffer[] = []
  const messages: string[][] = []
  const events: string[] = []
  const sub = createZmtpSub({ ...OPTS, ...opts }, {
    send: (b) => sent.push(Buffer.from(b)),
    ready: (minor) => events.push(`ready 3.${minor}`),
    message: (frames) => { messages.push(frames.map((f) => f.toString('latin1'))); events.push('message') },
    fail: (reason) => events.push(`fail: ${reason}`)
  })
  return { sub, sent, messages, events, failure: () => events.find((e) => e.startsWith('fail: ')) }
}

describe('zmtp: what the subscriber writes', () => {
  it('greets as ZMTP 3.1, NULL, client, then says READY with Socket-Type SUB', () => {
    const { sub } = harness()
    const hello = sub.hello()
    expect(hello.subarray(0, 64)).toEqual(greeting())
    expect(hello.subarray(64)).toEqual(cmd('READY', props([['Socket-Type', 'SUB']])))
  })

  it('subscribes with a SUBSCRIBE command to a 3.1 peer and with a 0x01 message to a 3.0 peer, after its READY', () => {
    const v31 = harness()
    v31.sub.receive(peerGreeting({ minor: 1 }), T0)
    expect(v31.sent).toEqual([])
    v31.sub.receive(READY_PUB, T0)
    expect(v31.events).toEqual(['ready 3.1'])
    expect(v31.sent).toEqual([cmd('SUBSCRIBE', TOPIC)])

    const v30 = harness()
    v30.sub.receive(Buffer.concat([peerGreeting({ minor: 0 }), READY_PUB]), T0)
    expect(v30.events).toEqual(['ready 3.0'])
    expect(v30.sent).toEqual([rawFrame(0x00, Buffer.from('\x01hb'))])
  })

  it('takes a minor version above 1 (a newer 3.x) as 3.1, and an XPUB as a publisher', () => {
    const h = harness()
    h.sub.receive(Buffer.concat([peerGreeting({ minor: 7 }), cmd('READY', props([['Identity', ''], ['socket-type', 'XPUB']]))]), T0)
    expect(h.events).toEqual(['ready 3.1'])
  })
})

describe('zmtp: what it refuses, and says why', () => {
  const cases: Array<[string, Buffer, RegExp]> = [
    ['an HTTP server', Buffer.from('HTTP/1.1 400 Bad Request\r\n'), /does not start with 0xFF/],
    ['a ZMTP 1.0 peer (0xFF then a length, no 0x7F)', Buffer.from([0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0]), /0x7F/],
    ['a ZMTP 2.0 peer (libzmq 3)', peerGreeting({ major: 1 }).subarray(0, 12), /ZMTP 1\.x is not supported/],
    ['a ZMTP 4 peer', peerGreeting({ major: 4 }), /ZMTP 4\.x is not supported/],
    ['a CURVE publisher', peerGreeting({ mechanism: 'CURVE' }), /mechanism "CURVE" is not supported/],
    ['a PLAIN publisher', peerGreeting({ mechanism: 'PLAIN' }), /mechanism "PLAIN"/],
    ['a ROUTER', Buffer.concat([peerGreeting(), cmd('READY', props([['Socket-Type', 'ROUTER']]))]), /"ROUTER" socket, which cannot feed a SUB/],
    ['a READY without Socket-Type', Buffer.concat([peerGreeting(), cmd('READY', props([['Identity', 'x']]))]), /without a Socket-Type/],
    ['a READY with truncated metadata', Buffer.concat([peerGreeting(), cmd('READY', props([['Socket-Type', 'PUB']]).subarray(0, 15))]), /malformed READY metadata/],
    ['an ERROR', Buffer.concat([peerGreeting(), cmd('ERROR', Buffer.from('\x0bnot allowed'))]), /refused the handshake: "not allowed"/],
    ['another command first', Buffer.concat([peerGreeting(), cmd('HELLO')]), /unexpected "HELLO" command/],
    ['a message first', Buffer.concat([peerGreeting(), msg(['hb', 'p1'])]), /a message before the handshake/],
    ['a frame over the limit, as soon as its size is read', Buffer.concat([peerGreeting(), READY_PUB, Buffer.from([0x02, 0, 0, 0, 0, 0, 0, 0x04, 0x01])]), /a frame of 1025 bytes is over the 1024-byte limit/],
    ['a frame of 4 GiB or more', Buffer.concat([peerGreeting(), READY_PUB, Buffer.from([0x02, 0, 0, 0, 1, 0, 0, 0, 0])]), /over 4 GiB/],
    ['a command over the limit during the handshake', Buffer.concat([peerGreeting(), rawFrame(0x04, Buffer.alloc(1025))]), /1025 bytes is over/],
    ['a message over its limit', Buffer.concat([peerGreeting(), READY_PUB, msg(['hb', ...Array(5).fill(Buffer.alloc(1000, 0x41))])]), /message over the 4096-byte limit/]
  ]
  for (const [what, bytes, reason] of cases) {
    it(`refuses ${what}`, () => {
      const h = harness()
      h.sub.receive(bytes, T0)
      expect(h.failure()).toMatch(reason)
      expect(h.sub.failed).toBe(true)
      // Nothing more happens on a failed connection.
      const before = h.events.length
      h.sub.receive(Buffer.concat([READY_PUB, msg(['hb', 'p1'])]), T0)
      h.sub.tick(T0 + 60_000)
      expect(h.events.length).toBe(before)
      expect(h.messages).toEqual([])
    })
  }

  it('refuses a non-ZMTP peer at its first byte, before a whole greeting', () => {
    const h = harness()
    h.sub.receive(Buffer.from('G'), T0)
    expect(h.failure()).toMatch(/does not start with 0xFF/)
  })
})

describe('zmtp: messages', () => {
  function connected (opts: Partial<ZmtpSubOptions> = {}): ReturnType<typeof harness> {
    const h = harness(opts)
    h.sub.receive(Buffer.concat([peerGreeting(), READY_PUB]), T0)
    h.sent.length = 0
    h.events.length = 0
    return h
  }

  it('delivers messages that match the subscription, skips the others whole, and ignores stray commands', () => {
    const h = connected()
    h.sub.receive(Buffer.concat([
      msg(['hb', 'p1']),
      msg(['xx', 'p1', 'more']), // not subscribed
      msg(['h']), // shorter than the topic
      msg(['hbx', 'p2']), // a prefix match is a match (a SUB's rule)
      cmd('PONG'), cmd('SUBSCRIBE', TOPIC), cmd('WHATEVER'), rawFrame(0x04, Buffer.from([9, 0x41])), // malformed: ignored
      msg(['hb', 'p3', 'reserved', '']),
      msg(['hb', 'long-form'], true), // long sizes for small frames are valid
      msg(['hb', 'x'.repeat(300)])
    ]), T0)
    expect(h.messages).toEqual([['hb', 'p1'], ['hbx', 'p2'], ['hb', 'p3', 'reserved', ''], ['hb', 'long-form'], ['hb', 'x'.repeat(300)]])
    expect(h.failure()).toBeUndefined()
    expect(h.sent).toEqual([])
  })

  it('gives frames that stay valid when the chunk they came in is reused', () => {
    const chunk = msg(['hb', 'p1'])
    const frames: Buffer[] = []
    const sub = createZmtpSub(OPTS, { send: () => {}, ready: () => {}, message: (f) => frames.push(...f), fail: () => {} })
    sub.receive(Buffer.concat([peerGreeting(), READY_PUB]), T0)
    sub.receive(chunk, T0)
    chunk.fill(0)
    expect(frames.map(String)).toEqual(['hb', 'p1'])
  })

  it('reads a stream cut at any points exactly as the whole stream (fast-check)', () => {
    const frameArb = fc.oneof(fc.constant(Buffer.from('hb')), fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)))
    const item = fc.oneof(
      { weight: 5, arbitrary: fc.tuple(fc.array(frameArb, { minLength: 1, maxLength: 4 }), fc.boolean()).map(([fs, long]) => msg(fs, long)) },
      { weight: 1, arbitrary: fc.uint8Array({ maxLength: 16 }).map((c) => ping(0, Buffer.from(c))) },
      { weight: 1, arbitrary: fc.constant(cmd('PONG')) }
    )
    fc.assert(fc.property(
      fc.constantFrom(0, 1), fc.array(item, { maxLength: 30 }), fc.array(fc.nat(), { maxLength: 40 }),
      (minor, items, cuts) => {
        const stream = Buffer.concat([peerGreeting({ minor }), READY_PUB, ...items])
        const whole = harness()
        whole.sub.receive(stream, T0)
        const pieces = harness()
        const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b)
        let at = 0
        for (const p of [...points, stream.length]) {
          // A fresh copy per chunk, zeroed afterwards: the codec must keep nothing by reference.
          const chunk = Buffer.from(stream.subarray(at, p))
          pieces.sub.receive(chunk, T0)
          chunk.fill(0)
          at = p
        }
        expect(pieces.events).toEqual(whole.events)
        expect(pieces.messages).toEqual(whole.messages)
        expect(Buffer.concat(pieces.sent)).toEqual(Buffer.concat(whole.sent))
        expect(whole.failure()).toBeUndefined()
      }
    ), { numRuns: 300 })
  })

  it('fails a too-big frame whatever the chunking, before its body arrives', () => {
    fc.assert(fc.property(fc.integer({ min: 1025, max: 100_000 }), fc.array(fc.nat(), { maxLength: 10 }), (size, cuts) => {
      const head = Buffer.alloc(9)
      head[0] = 0x02
      head.writeBigUInt64BE(BigInt(size), 1)
      const stream = Buffer.concat([peerGreeting(), READY_PUB, msg(['hb', 'ok']), head])
      const h = harness()
      const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b)
      let at = 0
      for (const p of [...points, stream.length]) {
        h.sub.receive(stream.subarray(at, p), T0)
        at = p
      }
      expect(h.messages).toEqual([['hb', 'ok']])
      expect(h.failure()).toBe(`fail: a frame of ${size} bytes is over the 1024-byte limit`)
    }))
  })
})

describe('zmtp: heartbeats (PING/PONG)', () => {
  const PING_OPTS = { ping: { intervalMs: 1000, timeoutMs: 5000, ttlMs: 5000 } }

  function connected (opts: Partial<ZmtpSubOptions> = {}): ReturnType<typeof harness> {
    const h = harness(opts)
    h.sub.receive(Buffer.concat([peerGreeting(), READY_PUB]), T0)
    h.sent.length = 0
    return h
  }

  it('answers a PING with a PONG that carries its context, cut to 16 bytes', () => {
    const h = connected()
    h.sub.receive(Buffer.concat([ping(0), ping(0, Buffer.from('ctx')), ping(0, Buffer.from('0123456789abcdefXYZ'))]), T0)
    expect(h.sent).toEqual([cmd('PONG'), cmd('PONG', Buffer.from('ctx')), cmd('PONG', Buffer.from('0123456789abcdef'))])
    expect(h.sub.wakeAt()).toBeNull()
  })

  it('drops a peer whose PING asked for traffic within its TTL, unless something arrives', () => {
    const h = connected()
    h.sub.receive(ping(30), T0) // 3 s
    expect(h.sub.wakeAt()).toBe(T0 + 3000)
    h.sub.receive(msg(['hb', 'p1']), T0 + 2000) // traffic: the TTL no longer applies
    expect(h.sub.wakeAt()).toBeNull()
    h.sub.receive(ping(30), T0 + 2500)
    h.sub.tick(T0 + 5499)
    expect(h.failure()).toBeUndefined()
    h.sub.tick(T0 + 5500)
    expect(h.failure()).toMatch(/TTL/)
  })

  it('PINGs every interval from the handshake with its TTL, and fails when nothing arrives for the timeout after one', () => {
    const h = connected(PING_OPTS)
    expect(h.sub.wakeAt()).toBe(T0 + 1000)
    h.sub.tick(T0 + 999) // early: nothing
    expect(h.sent).toEqual([])
    h.sub.tick(T0 + 1000)
    expect(h.sent).toEqual([ping(50)])
    expect(h.sub.wakeAt()).toBe(T0 + 2000)
    // An answer (any traffic) cancels the timeout; the PINGs go on.
    h.sub.receive(cmd('PONG'), T0 + 1001)
    for (let t = T0 + 2000; t <= T0 + 6000; t += 1000) h.sub.tick(t)
    expect(h.sent).toHaveLength(6)
    expect(h.failure()).toBeUndefined()
    // No answer since the PING at T0 + 2000: the timeout counts from that first unanswered one.
    h.sub.tick(T0 + 6999)
    expect(h.failure()).toBeUndefined()
    h.sub.tick(T0 + 7000)
    expect(h.failure()).toBe('fail: nothing received for 5000 ms after a PING')
    expect(h.sub.wakeAt()).toBeNull()
  })

  it('does nothing on tick before the handshake', () => {
    const h = harness(PING_OPTS)
    h.sub.tick(T0 + 60_000)
    expect(h.sub.wakeAt()).toBeNull()
    expect(h.events).toEqual([])
  })
})
