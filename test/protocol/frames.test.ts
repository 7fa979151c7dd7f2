// The frame codec every role relies on (server/protocol/README.md §2): what encode() puts on the
// wire decodes to the same message, and anything a peer could send that breaks the contract —
// frame count, verb, verb on the wrong socket, JSON, schema — is refused with a ProtocolError
// whose message says what was wrong, before it can reach a role's logic.
import { describe, expect, it } from 'vitest'
import { decode, encode, ProtocolError } from '../../server/protocol/frames.js'
import { BATCH_ITEMS, Inbound, type Body, type Verb } from '../../server/protocol/messages.js'
import type { Provider } from '../../server/protocol/model.js'

const provider: Provider = {
  id: 'orders-1',
  service: 'orders',
  host: '10.0.0.5',
  port: 8080,
  protocol: 'http',
  heartbeat: 'tcp://10.0.0.5:9100',
  heartbeatIntervalMs: 1000,
  tags: ['blue'],
  meta: { version: '1.4.2' },
  state: 'up',
  stateSince: '2026-11-27T10:00:00.000Z',
  lastSeen: '2026-11-27T10:05:00.000Z',
  revision: 42
}

const frames = (verb: string, body: unknown): Buffer[] =>
  [Buffer.from(verb, 'ascii'), Buffer.from(typeof body === 'string' ? body : JSON.stringify(body))]

/** Decoding must throw a ProtocolError whose message matches `message`. */
function rejects (f: Buffer[], allowed: readonly Verb[], message: RegExp): void {
  let thrown: unknown
  try {
    decode(f, allowed)
  } catch (err) {
    thrown = err
  }
  expect(thrown, 'decode should have thrown').toBeInstanceOf(ProtocolError)
  expect((thrown as ProtocolError).code).toBe('ROSTER_ERR_PROTOCOL_BAD_FRAME')
  expect((thrown as ProtocolError).message).toMatch(message)
}

describe('frames', () => {
  it('round-trips messages through encode and decode, verb in ASCII frame 0 and JSON in frame 1', () => {
    const cases: Array<{ verb: Verb, body: Body<Verb>, socket: readonly Verb[] }> = [
      { verb: 'PING', body: { peerId: 'worker-1', role: 'worker' }, socket: Inbound.leaderRouter },
      {
        verb: 'WRITE',
        body: {
          writes: [{
            requestId: 'r-1',
            op: {
              type: 'register',
              service: 'orders',
              id: 'orders-1',
              spec: { host: '10.0.0.5', port: 8080, protocol: 'http', heartbeat: 'tcp://10.0.0.5:9100', tags: ['blue'], meta: { a: 'b' } }
            }
          }, { requestId: 'r-1b', op: { type: 'deregister', service: 'orders', id: 'orders-2' } }]
        },
        socket: Inbound.leaderRouter
      },
      { verb: 'REPORT', body: { workerId: 'w', seq: 3, observations: [{ providerId: 'orders-1', state: 'down', lastSeen: 1_700_000_000_000, reason: 'silent' }] }, socket: Inbound.leaderRouter },
      { verb: 'EVENT', body: { epoch: 2, changes: [{ revision: 42, event: 'up', provider }, { revision: 43, event: 'down', provider }] }, socket: Inbound.gatewaySub },
      { verb: 'SNAPSHOT', body: { requestId: 'r-2', epoch: 2, revision: 42, providers: [provider, { ...provider, id: 'orders-2', lastSeen: null }] }, socket: Inbound.gatewayDealer },
      { verb: 'RESULT', body: { epoch: 2, results: [{ requestId: 'r-3', result: { ok: false, statusCode: 409, code: 'ROSTER_ERR_PROVIDER_CONFLICT', message: 'taken' } }] }, socket: Inbound.gatewayDealer },
      { verb: 'ASSIGN', body: { epoch: 1, seq: 1, tasks: [{ providerId: 'p', heartbeat: 'tcp://127.0.0.1:1', heartbeatIntervalMs: 100, state: 'pending', lastSeen: null }] }, socket: Inbound.workerDealer }
    ]
    for (const { verb, body, socket } of cases) {
      const encoded = encode(verb, body)
      expect(encoded).toHaveLength(2)
      expect(encoded[0].toString('ascii')).toBe(verb)
      expect(JSON.parse(encoded[1].toString('utf8'))).toEqual(body)
      expect(decode(encoded, socket)).toEqual({ verb, body })
    }
  })

  it('keeps non-ASCII text intact (UTF-8 body)', () => {
    const body = { epoch: 1, changes: [{ revision: 1, event: 'registered' as const, provider: { ...provider, meta: { owner: 'Zoë — 東京' } } }] }
    expect(decode(encode('EVENT', body), Inbound.gatewaySub).body).toEqual(body)
  })

  it('rejects a wrong frame count', () => {
    const ping = encode('PING', { peerId: 'w', role: 'worker' })
    rejects([ping[0]], Inbound.leaderRouter, /expected 2 frames.*got 1/)
    rejects([...ping, Buffer.from('extra')], Inbound.leaderRouter, /expected 2 frames.*got 3/)
    rejects([], Inbound.leaderRouter, /got 0/)
  })

  it('rejects an unknown verb, and a real verb that the receiving socket does not accept', () => {
    rejects(frames('HELLO', {}), Inbound.leaderRouter, /unexpected verb "HELLO"/)
    rejects(frames('ping', { peerId: 'w', role: 'worker' }), Inbound.leaderRouter, /unexpected verb "ping"/)
    // EVENT is a feed verb: a leader's ROUTER must not take it, nor a gateway's DEALER.
    const event = encode('EVENT', { epoch: 1, changes: [{ revision: 1, event: 'up', provider }] })
    rejects(event, Inbound.leaderRouter, /unexpected verb "EVENT"/)
    rejects(event, Inbound.gatewayDealer, /unexpected verb "EVENT"/)
    // A worker's DEALER takes no SNAPSHOT; a gateway's SUB no PONG.
    rejects(encode('SNAPSHOT', { requestId: 'r', epoch: 1, revision: 0, providers: [] }), Inbound.workerDealer, /unexpected verb "SNAPSHOT"/)
    rejects(encode('PONG', { epoch: 1, revision: 0 }), Inbound.gatewaySub, /unexpected verb "PONG"/)
  })

  it('rejects a body that is not JSON', () => {
    rejects(frames('PING', '{"peerId": "w",'), Inbound.leaderRouter, /PING: body is not valid JSON/)
    rejects([Buffer.from('BEAT'), Buffer.from([0xff, 0xfe, 0x00])], Inbound.gatewaySub, /BEAT: body is not valid JSON/)
    rejects(frames('BEAT', ''), Inbound.gatewaySub, /not valid JSON/)
  })

  it('rejects a body that breaks its schema, naming the field', () => {
    // missing field
    rejects(frames('PING', { peerId: 'w' }), Inbound.leaderRouter, /^PING: body\/role Expected required property/)
    // wrong type
    rejects(frames('BEAT', { epoch: 1, revision: '7', tokens: 0 }), Inbound.gatewaySub, /^BEAT: body\/revision Expected integer/)
    rejects(frames('SINCE_REQ', { requestId: 'r', revision: 1.5, limit: 10 }), Inbound.leaderRouter, /^SINCE_REQ: body\/revision /)
    // out of range: epochs start at 1, a WRITE's port stops at 65535
    rejects(frames('PONG', { epoch: 0, revision: 0 }), Inbound.workerDealer, /^PONG: body\/epoch /)
    rejects(frames('WRITE', {
      writes: [{
        requestId: 'r',
        op: { type: 'register', service: 'orders', id: 'o-1', spec: { host: 'h', port: 70000, protocol: 'http', heartbeat: 'tcp://h:1' } }
      }]
    }), Inbound.leaderRouter, /^WRITE: body\/writes\/0\/op/)
    // a WRITE carries at least one write and at most BATCH_ITEMS
    rejects(frames('WRITE', { writes: [] }), Inbound.leaderRouter, /^WRITE: body\/writes /)
    rejects(frames('WRITE', { writes: Array.from({ length: BATCH_ITEMS + 1 }, (_v, i) => ({ requestId: `r${i}`, op: { type: 'deregister', service: 'orders', id: 'o-1' } })) }), Inbound.leaderRouter, /^WRITE: body\/writes /)
    // bad date-time in a provider
    rejects(
      encode('EVENT', { epoch: 1, changes: [{ revision: 1, event: 'up', provider: { ...provider, stateSince: 'yesterday' } }] }),
      Inbound.gatewaySub,
      /^EVENT: body\/changes\/0\/provider\/stateSince Expected string to match 'date-time' format/
    )
    rejects(
      encode('EVENT', { epoch: 1, changes: [{ revision: 1, event: 'up', provider: { ...provider, lastSeen: '2026-13-45T99:00:00Z' } }] }),
      Inbound.gatewaySub,
      /^EVENT: body\/changes\/0\/provider\/lastSeen/
    )
    // extra property
    rejects(frames('BYE', { workerId: 'w', extra: true }), Inbound.leaderRouter, /^BYE: body\/extra Unexpected property/)
    rejects(
      frames('EVENT', { epoch: 1, changes: [{ revision: 1, event: 'up', provider: { ...provider, secret: 'x' } }] }),
      Inbound.gatewaySub,
      /^EVENT: body\/changes\/0\/provider\/secret Unexpected property/
    )
    // a JSON value that is not an object
    rejects(frames('BEAT', [1, 2]), Inbound.gatewaySub, /^BEAT: body Expected object/)
    rejects(frames('BEAT', 'null'), Inbound.gatewaySub, /^BEAT: body Expected object/)
  })

  it('names the field that is wrong inside a union, not just the union (a WRITE whose port is 70000)', () => {
    // WriteOp is a union (register | deregister): the message must reach the field a human
    // reading the leader's log needs to see, as it does outside unions.
    const write = (op: unknown): Buffer[] => frames('WRITE', { writes: [{ requestId: 'r', op }] })
    rejects(write({ type: 'register', service: 'orders', id: 'o-1', spec: { host: 'h', port: 70000, protocol: 'http', heartbeat: 'tcp://h:1' } }),
      Inbound.leaderRouter, /^WRITE: body\/writes\/0\/op\/spec\/port Expected integer to be less or equal to 65535/)
    rejects(write({ type: 'deregister', service: 'orders', id: 'o 1' }), Inbound.leaderRouter, /^WRITE: body\/writes\/0\/op\/id Expected string to match/)
  })

  it('names the values a string enum allows (a WRITE whose protocol is ftp)', () => {
    const write = (op: unknown): Buffer[] => frames('WRITE', { writes: [{ requestId: 'r', op }] })
    const spec = { host: 'h', port: 80, protocol: 'ftp', heartbeat: 'tcp://h:1' }
    rejects(write({ type: 'register', service: 'orders', id: 'o-1', spec }), Inbound.leaderRouter, /^WRITE: body\/writes\/0\/op\/spec\/protocol must be one of: http, rpc, pub$/)
    rejects(write({ type: 'register', service: 'orders', id: 'o-1', spec: { ...spec, protocol: 'toString' } }), Inbound.leaderRouter, /protocol must be one of/)
  })
})

describe('text Postgres cannot store (protocol/model.ts, StorableText)', () => {
  const spec = { host: '10.0.0.5', port: 8080, protocol: 'http', heartbeat: 'tcp://10.0.0.5:9100' }
  const write = (op: unknown): Buffer[] => frames('WRITE', { writes: [{ requestId: 'r1', op }] })
  const register = (s: unknown): Buffer[] => write({ type: 'register', service: 'orders', id: 'orders-1', spec: s })
  const report = (obs: unknown): Buffer[] => frames('REPORT', { workerId: 'w1', seq: 1, observations: [obs] })
  const down = { providerId: 'orders-1', state: 'down', lastSeen: null, reason: 'check-failed' }

  it('is refused in every string field of a WRITE and of a worker\'s observation, naming the field', () => {
    for (const bad of ['\u0000', 'a\u0000b', '\ud800', 'x\udbff', '\udc00y', '\ude00\ud83d']) {
      rejects(register({ ...spec, tags: ['ok', bad] }), Inbound.leaderRouter, /^WRITE: body\/writes\/0\/op\/spec\/tags\/1 must not contain NUL or unpaired surrogates$/)
      rejects(register({ ...spec, meta: { version: bad } }), Inbound.leaderRouter, /^WRITE: body\/writes\/0\/op\/spec\/meta\/version must not contain NUL or unpaired surrogates$/)
      rejects(register({ ...spec, meta: { [`k${bad}`]: 'v' } }), Inbound.leaderRouter, /^WRITE: body\/writes\/0\/op\/spec\/meta/)
      rejects(register({ ...spec, host: `h${bad}` }), Inbound.leaderRouter, /^WRITE: body\/writes\/0\/op\/spec\/host /)
      rejects(register({ ...spec, heartbeat: `tcp://h${bad}:1` }), Inbound.leaderRouter, /^WRITE: body\/writes\/0\/op\/spec\/heartbeat /)
      rejects(register({ host: 'h', port: 1, protocol: 'http', check: { type: 'http', path: `/${bad}`, intervalMs: 100, timeoutMs: 50 } }), Inbound.leaderRouter, /^WRITE: body\/writes\/0\/op\/spec\/check/)
      rejects(write({ type: 'maintenance', service: 'orders', id: 'orders-1', enabled: true, reason: bad }), Inbound.leaderRouter, /^WRITE: body\/writes\/0\/op\/reason must not contain NUL or unpaired surrogates$/)
      rejects(report({ ...down, detail: bad }), Inbound.leaderRouter, /^REPORT: body\/observations\/0\/detail must not contain NUL or unpaired surrogates$/)
    }
  })

  it('meta keys are 1–64 characters (code points) without control characters', () => {
    for (const key of ['', 'k'.repeat(65), 'a\nb', 'del\u007f', '😀'.repeat(65)]) {
      rejects(register({ ...spec, meta: { [key]: 'v' } }), Inbound.leaderRouter, /^WRITE: body\/writes\/0\/op\/spec\/meta/)
    }
  })

  it('emoji and other astral characters, accents and CJK pass, as they do at the gateway', () => {
    for (const text of ['😀', '\u{10ffff}', 'café', '注册', 'a😀b']) {
      expect(() => decode(register({ ...spec, tags: [text], meta: { [text]: text, ['😀'.repeat(64)]: 'v' } }), Inbound.leaderRouter)).not.toThrow()
      expect(() => decode(write({ type: 'maintenance', service: 'orders', id: 'orders-1', enabled: true, reason: text }), Inbound.leaderRouter)).not.toThrow()
      expect(() => decode(report({ ...down, detail: text }), Inbound.leaderRouter)).not.toThrow()
    }
  })
})

it('counts storable text in characters (code points), as the gateway does: 64 emoji fit in a tag, 65 do not', () => {
  const write = (tag: string): Buffer[] => frames('WRITE', {
    writes: [{ requestId: 'r', op: { type: 'register', service: 's', id: 'i', spec: { host: 'h', port: 1, protocol: 'http', heartbeat: 'tcp://h:1', tags: [tag] } } }]
  })
  expect(decode(write('\u{1F600}'.repeat(64)), Inbound.leaderRouter).verb).toBe('WRITE')
  rejects(write('\u{1F600}'.repeat(65)), Inbound.leaderRouter, /^WRITE: body\/writes\/0\/op\/spec\/tags\/0 must NOT have more than 64 characters$/)
})

it('a too-long storable text is reported as too long, not as unstorable', () => {
  const spec = { host: 'h', port: 1, protocol: 'http', heartbeat: 'tcp://h:1', tags: ['x'.repeat(65)] }
  rejects(frames('WRITE', { writes: [{ requestId: 'r', op: { type: 'register', service: 's', id: 'i', spec } }] }), Inbound.leaderRouter, /^WRITE: body\/writes\/0\/op\/spec\/tags\/0 must NOT have more than 64 characters$/)
})
