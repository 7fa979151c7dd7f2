import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildGateway } from '../../server/gateway/app.js'
import { createReplica } from '../../server/gateway/replica.js'
import { decideWrite } from '../../server/leader/registry.js'
import { noLeader } from './helpers.js'

let app: FastifyInstance

beforeAll(async () => {
  const replica = createReplica()
  replica.loadSnapshot(1, [])
  app = await buildGateway({ replica, leader: noLeader() }, { minCheckIntervalMs: 50 })
})

afterAll(async () => {
  await app.close()
})

const spec = { host: '10.0.0.5', port: 8080, protocol: 'http', heartbeat: 'tcp://10.0.0.5:9100' }
const noHeartbeat = { host: '10.0.0.5', port: 8080, protocol: 'http' }

async function put (body: unknown, path = '/v1/services/orders/providers/orders-1') {
  const res = await app.inject({ method: 'PUT', url: path, payload: body as object })
  return { statusCode: res.statusCode, body: res.json() as { statusCode: number, code: string, error: string, message: string }, headers: res.headers }
}

describe('bad input is a 400 that names the field', () => {
  const cases: [string, unknown, RegExp][] = [
    ['port 0', { ...spec, port: 0 }, /^body\/port must be >= 1$/],
    ['port 70000', { ...spec, port: 70000 }, /^body\/port must be <= 65535$/],
    ['port as text', { ...spec, port: 'eighty' }, /^body\/port must be integer$/],
    ['a missing field', { host: 'h', port: 1, heartbeat: 'tcp://h:1' }, /^body must have required property 'protocol'$/],
    ['neither a heartbeat nor a check', { host: 'h', port: 1, protocol: 'http' }, /^body must have required property 'heartbeat' or 'check' \(a provider needs a heartbeat endpoint or a check\)$/],
    ['both a heartbeat and a check', { ...spec, check: { type: 'ttl', ttlMs: 1000 } }, /^body\/check must not be given with body\/heartbeat/],
    ['an unknown check type', { ...noHeartbeat, check: { type: 'grpc' } }, /^body\/check\/type must be one of: http, tcp, ttl$/],
    ['a check without a type', { ...noHeartbeat, check: { ttlMs: 1000 } }, /^body\/check must have required property 'type' \(one of: http, tcp, ttl\)$/],
    ['a check interval below 50 ms', { ...noHeartbeat, check: { type: 'tcp', intervalMs: 10, timeoutMs: 5 } }, /^body\/check\/intervalMs must be >= 50$/],
    ['a check interval above 60 s', { ...noHeartbeat, check: { type: 'http', path: '/', intervalMs: 60_001, timeoutMs: 5 } }, /^body\/check\/intervalMs must be <= 60000$/],
    ['a check timeout not below its interval', { ...noHeartbeat, check: { type: 'http', path: '/', intervalMs: 100, timeoutMs: 100 } }, /^body\/check\/timeoutMs must be less than body\/check\/intervalMs \(100\), got 100$/],
    ['an http check without a path', { ...noHeartbeat, check: { type: 'http', intervalMs: 100, timeoutMs: 50 } }, /^body\/check must have required property 'path'$/],
    ['an http check path not starting with /', { ...noHeartbeat, check: { type: 'http', path: 'health', intervalMs: 100, timeoutMs: 50 } }, /^body\/check\/path must match pattern .*starting with '\/'/],
    ['a tcp check with a path', { ...noHeartbeat, check: { type: 'tcp', path: '/', intervalMs: 100, timeoutMs: 50 } }, /^body\/check must NOT have additional properties \(unknown field 'path'\)$/],
    ['a ttl below 100 ms', { ...noHeartbeat, check: { type: 'ttl', ttlMs: 99 } }, /^body\/check\/ttlMs must be >= 100$/],
    ['a ttl above one day', { ...noHeartbeat, check: { type: 'ttl', ttlMs: 86_400_001 } }, /^body\/check\/ttlMs must be <= 86400000$/],
    ['a ttl check without ttlMs', { ...noHeartbeat, check: { type: 'ttl' } }, /^body\/check must have required property 'ttlMs'$/],
    ['deregisterAfterMs below 1 s', { ...spec, deregisterAfterMs: 999 }, /^body\/deregisterAfterMs must be >= 1000$/],
    ['deregisterAfterMs above 7 days', { ...spec, deregisterAfterMs: 604_800_001 }, /^body\/deregisterAfterMs must be <= 604800000$/],
    ['an unknown protocol', { ...spec, protocol: 'grpc' }, /^body\/protocol must be one of: http, rpc, pub$/],
    ['a heartbeat that is not tcp://host:port', { ...spec, heartbeat: 'http://10.0.0.5:9100' }, /^body\/heartbeat must match pattern .*tcp:\/\/host:port/],
    ['a heartbeat without a port', { ...spec, heartbeat: 'tcp://10.0.0.5' }, /^body\/heartbeat must match pattern/],
    ['a heartbeat port of 70000', { ...spec, heartbeat: 'tcp://10.0.0.5:70000' }, /^body\/heartbeat port must be between 1 and 65535, got 70000$/],
    ['a heartbeat port of 0', { ...spec, heartbeat: 'tcp://10.0.0.5:0' }, /^body\/heartbeat port must be between 1 and 65535, got 0$/],
    ['a heartbeat interval below 50 ms', { ...spec, heartbeatIntervalMs: 10 }, /^body\/heartbeatIntervalMs must be >= 50$/],
    ['33 tags', { ...spec, tags: Array.from({ length: 33 }, (_, i) => `t${i}`) }, /^body\/tags must NOT have more than 32 items$/],
    ['a repeated tag', { ...spec, tags: ['a', 'a'] }, /^body\/tags must NOT have duplicate items/],
    ['33 meta entries', { ...spec, meta: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, 'v'])) }, /^body\/meta must NOT have more than 32 properties$/],
    ['a meta value over 512 characters', { ...spec, meta: { version: 'x'.repeat(513) } }, /^body\/meta\/version must NOT have more than 512 characters$/],
    ['an unknown field', { ...spec, colour: 'blue' }, /^body must NOT have additional properties \(unknown field 'colour'\)$/]
  ]
  for (const [what, body, message] of cases) {
    it(what, async () => {
      const res = await put(body)
      expect(res.statusCode).toBe(400)
      expect(res.body.statusCode).toBe(400)
      expect(res.body.error).toBe('Bad Request')
      expect(res.body.message).toMatch(message)
    })
  }

  it('valid checks reach the leader', async () => {
    for (const check of [
      { type: 'http', path: '/health?full=1', intervalMs: 50, timeoutMs: 49 },
      { type: 'tcp', intervalMs: 60_000, timeoutMs: 1 },
      { type: 'ttl', ttlMs: 100 }
    ]) {
      const res = await put({ ...noHeartbeat, check, deregisterAfterMs: 1000 })
      expect(res.statusCode, JSON.stringify(check)).toBe(503)
    }
  })

  it('a rule a schema cannot say is one answer, whether the gateway or the leader applies it', async () => {
    // The gateway refuses these before writing; the leader refuses them in any WRITE it gets.
    for (const body of [
      { ...spec, heartbeat: 'tcp://10.0.0.5:70000' },
      { ...spec, heartbeat: 'tcp://10.0.0.5:0' },
      noHeartbeat,
      { ...spec, check: { type: 'ttl', ttlMs: 1000 } },
      { ...noHeartbeat, check: { type: 'tcp', intervalMs: 100, timeoutMs: 100 } }
    ]) {
      const res = await put(body)
      const leader = decideWrite(() => undefined, { type: 'register', service: 'orders', id: 'orders-1', spec: body as never }, 0)
      expect(res.body, JSON.stringify(body)).toMatchObject({ statusCode: 400, code: 'ROSTER_ERR_INVALID_REGISTRATION' })
      expect(leader).toEqual({ ok: false, statusCode: res.body.statusCode, code: res.body.code, message: res.body.message })
    }
  })

  it('a bad maintenance body, and a bad provider id on the maintenance and heartbeat routes', async () => {
    const url = '/v1/services/orders/providers/orders-1/maintenance'
    const cases: [unknown, RegExp][] = [
      [{}, /^body must have required property 'enabled'$/],
      [{ enabled: 'yes' }, /^body\/enabled must be boolean$/],
      [{ enabled: true, reason: 'x'.repeat(257) }, /^body\/reason must NOT have more than 256 characters$/],
      [{ enabled: true, until: 'tomorrow' }, /^body must NOT have additional properties \(unknown field 'until'\)$/]
    ]
    for (const [body, message] of cases) {
      const res = await app.inject({ method: 'PUT', url, payload: body as object })
      expect(res.statusCode, JSON.stringify(body)).toBe(400)
      expect(res.json().message).toMatch(message)
    }
    for (const path of ['maintenance', 'heartbeat']) {
      const res = await app.inject({ method: 'PUT', url: `/v1/services/orders/providers/orders%201/${path}`, payload: { enabled: true } })
      expect(res.statusCode).toBe(400)
      expect(res.json().message).toMatch(/^params\/id must match pattern/)
    }
  })

  it('a service name with bad characters, or too long', async () => {
    for (const service of ['Orders', 'orders!', '-orders', 'o'.repeat(64)]) {
      const res = await put(spec, `/v1/services/${service}/providers/orders-1`)
      expect(res.statusCode).toBe(400)
      expect(res.body.message).toMatch(/^params\/service must /)
    }
    const read = await app.inject({ url: '/v1/services/Orders/providers' })
    expect(read.statusCode).toBe(400)
    expect(read.json().message).toMatch(/^params\/service must match pattern/)
  })

  it('a provider id with bad characters, or too long', async () => {
    const bad = await put(spec, '/v1/services/orders/providers/orders%201')
    expect(bad.statusCode).toBe(400)
    expect(bad.body.message).toMatch(/^params\/id must match pattern/)
    const long = await put(spec, `/v1/services/orders/providers/${'a'.repeat(129)}`)
    expect(long.statusCode).toBe(400)
    expect(long.body.message).toBe('params/id must NOT have more than 128 characters')
  })

  it('a 128-character id is valid (it reaches the leader)', async () => {
    const res = await put(spec, `/v1/services/orders/providers/${'a'.repeat(128)}`)
    expect(res.statusCode).toBe(503)
    const read = await app.inject({ url: `/v1/services/orders/providers/${'a'.repeat(128)}` })
    expect(read.statusCode).toBe(404)
  })

  it('invalid JSON', async () => {
    const res = await app.inject({
      method: 'PUT',
      url: '/v1/services/orders/providers/orders-1',
      headers: { 'content-type': 'application/json' },
      payload: '{"host": "10.0.0.5",'
    })
    expect(res.statusCode).toBe(400)
    expect(res.json()).toMatchObject({ statusCode: 400, code: 'FST_ERR_CTP_INVALID_JSON_BODY', error: 'Bad Request' })
    expect(res.json().message).toMatch(/body is not valid JSON/i)
  })

  it('a body over 64 KiB is 413', async () => {
    const res = await put({ ...spec, meta: { big: 'x'.repeat(70 * 1024) } })
    expect(res.statusCode).toBe(413)
    expect(res.body).toEqual({
      statusCode: 413,
      code: 'FST_ERR_CTP_BODY_TOO_LARGE',
      error: 'Payload Too Large',
      message: 'body is larger than the 64 KiB limit'
    })
  })

  it('bad query parameters on reads', async () => {
    const cases: [string, RegExp][] = [
      ['/v1/services/orders/providers?state=sleeping', /^querystring\/state must be one of: pending, up, down, maintenance$/],
      ['/v1/services/orders/providers?protocol=grpc', /^querystring\/protocol must be one of: http, rpc, pub$/],
      ['/v1/services/orders/providers?tags=blue', /^querystring must NOT have additional properties \(unknown field 'tags'\)$/],
      [`/v1/services/orders/providers?${Array.from({ length: 33 }, (_, i) => `tag=t${i}`).join('&')}`, /^querystring\/tag must NOT have more than 32 items$/],
      ['/v1/services?minRevision=-1', /^querystring\/minRevision must be >= 0$/],
      ['/v1/services?minRevision=soon', /^querystring\/minRevision must be integer$/]
    ]
    for (const [url, message] of cases) {
      const res = await app.inject({ url })
      expect(res.statusCode, url).toBe(400)
      expect(res.json().message, url).toMatch(message)
    }
  })
})

/** Text Postgres cannot store (protocol/model.ts, StorableText): NUL, and a lone high or
 *  low surrogate, alone or next to good text. */
const UNSTORABLE = ['\u0000', 'a\u0000b', '\ud800', 'x\udbff', '\udc00y', '\ude00\ud83d']
const httpCheck = { type: 'http', path: '/health', intervalMs: 100, timeoutMs: 50 }

describe('text Postgres cannot store is a 400 naming the field', () => {
  it('in a tag, a meta value, a meta key and a maintenance reason', async () => {
    for (const bad of UNSTORABLE) {
      const cases: Array<[string, unknown, string]> = [
        ['/v1/services/orders/providers/orders-1', { ...spec, tags: ['ok', bad] }, 'body/tags/1 must not contain NUL or unpaired surrogates'],
        ['/v1/services/orders/providers/orders-1', { ...spec, meta: { version: bad } }, 'body/meta/version must not contain NUL or unpaired surrogates'],
        ['/v1/services/orders/providers/orders-1/maintenance', { enabled: true, reason: `upgrade ${bad}` }, 'body/reason must not contain NUL or unpaired surrogates']
      ]
      for (const [url, body, message] of cases) {
        const res = await app.inject({ method: 'PUT', url, payload: body as object })
        expect(res.statusCode, JSON.stringify(body)).toBe(400)
        expect(res.json().message, JSON.stringify(body)).toBe(message)
      }
      const key = await put({ ...spec, meta: { [`k${bad}`]: 'v' } })
      expect(key.statusCode).toBe(400)
      expect(key.body.message).toMatch(/^body\/meta has an invalid key "k.*" \(at most 32 entries; keys 1–64 characters without control characters/)
    }
  })

  it('in the host, the heartbeat endpoint and an http check path (their patterns admit printable ASCII only)', async () => {
    for (const bad of UNSTORABLE) {
      const cases: Array<[unknown, RegExp]> = [
        [{ ...spec, host: `h${bad}` }, /^body\/host must match pattern/],
        [{ ...spec, heartbeat: `tcp://h${bad}:9100` }, /^body\/heartbeat must match pattern/],
        [{ ...noHeartbeat, check: { ...httpCheck, path: `/h${bad}` } }, /^body\/check\/path must match pattern/]
      ]
      for (const [body, message] of cases) {
        const res = await put(body)
        expect(res.statusCode, JSON.stringify(body)).toBe(400)
        expect(res.body.message, JSON.stringify(body)).toMatch(message)
      }
    }
  })

  it('emoji and other astral characters, accents and CJK stay valid text (they reach the leader)', async () => {
    const good = ['😀', '\u{10ffff}', 'café', '注册', '𝔘𝔫𝔦', 'a😀b']
    for (const text of good) {
      const res = await put({ ...spec, tags: [text], meta: { [text]: text } })
      expect(res.statusCode, text).toBe(503)
      const m = await app.inject({ method: 'PUT', url: '/v1/services/orders/providers/orders-1/maintenance', payload: { enabled: true, reason: text } })
      expect(m.statusCode, text).toBe(503)
    }
    // 64 astral characters are a 64-character key; 65 are too many.
    expect((await put({ ...spec, meta: { ['😀'.repeat(64)]: 'v' } })).statusCode).toBe(503)
    expect((await put({ ...spec, meta: { ['😀'.repeat(65)]: 'v' } })).statusCode).toBe(400)
  })

  it('meta keys are 1–64 characters without control characters', async () => {
    for (const key of ['', 'k'.repeat(65), 'a\nb', 'tab\there', 'del\u007f', 'c1\u0085', 'line\u2028separator', 'para\u2029separator']) {
      const res = await put({ ...spec, meta: { [key]: 'v' } })
      expect(res.statusCode, JSON.stringify(key)).toBe(400)
      expect(res.body.message, JSON.stringify(key)).toMatch(/^body\/meta has an invalid key /)
    }
    for (const key of ['k', 'k'.repeat(64), 'app.kubernetes.io/name', 'with space']) {
      expect((await put({ ...spec, meta: { [key]: 'v' } })).statusCode, key).toBe(503)
    }
  })

  it('minRevision and since must be finite', async () => {
    for (const url of ['/v1/services?minRevision=Infinity', '/v1/services/orders/providers?minRevision=Infinity', '/v1/services?minRevision=1e400', '/v1/services?minRevision=9007199254740992']) {
      const res = await app.inject({ url })
      expect(res.statusCode, url).toBe(400)
      expect(res.json().message, url).toMatch(/^querystring\/minRevision must be (a finite number|<= 9007199254740991)$/)
    }
    const watch = await app.inject({ url: '/v1/watch?since=Infinity' })
    expect(watch.statusCode).toBe(400)
    expect(watch.json().message).toMatch(/^querystring\/since must be/)
  })
})

describe('writes without a leader', () => {
  it('register is 503 with Retry-After, and says nothing internal', async () => {
    const res = await put({ ...spec, tags: ['blue'], meta: { version: '1.4.2' } })
    expect(res.statusCode).toBe(503)
    expect(res.headers['retry-after']).toBe('1')
    expect(res.body).toEqual({
      statusCode: 503,
      code: 'ROSTER_ERR_LEADER_UNAVAILABLE',
      error: 'Service Unavailable',
      message: 'no leader is available to accept writes; retry shortly'
    })
  })

  it('maintenance and TTL renewals are 503 with Retry-After', async () => {
    for (const [path, payload] of [['maintenance', { enabled: true }], ['heartbeat', undefined]] as const) {
      const res = await app.inject({ method: 'PUT', url: `/v1/services/orders/providers/orders-1/${path}`, ...(payload === undefined ? {} : { payload }) })
      expect(res.statusCode, path).toBe(503)
      expect(res.headers['retry-after']).toBe('1')
      expect(res.json()).toMatchObject({ code: 'ROSTER_ERR_LEADER_UNAVAILABLE' })
    }
  })

  it('deregister is 503 with Retry-After', async () => {
    const res = await app.inject({ method: 'DELETE', url: '/v1/services/orders/providers/orders-1' })
    expect(res.statusCode).toBe(503)
    expect(res.headers['retry-after']).toBe('1')
    expect(res.json()).toMatchObject({ code: 'ROSTER_ERR_LEADER_UNAVAILABLE' })
  })

  it('validation comes before the leader: a bad body is 400 even with no leader', async () => {
    expect((await put({ ...spec, port: 0 })).statusCode).toBe(400)
  })
})

describe('server faults', () => {
  it('never show their internals: an unexpected error is a bare 500', async () => {
    const replica = createReplica()
    replica.loadSnapshot(1, [])
    const faulty = await buildGateway({
      replica,
      leader: { ...noLeader(), write: async () => { throw new Error('connect ECONNREFUSED 10.9.9.9:7071 (secret)') } }
    })
    try {
      const res = await faulty.inject({ method: 'PUT', url: '/v1/services/orders/providers/orders-1', payload: spec })
      expect(res.statusCode).toBe(500)
      expect(res.json()).toEqual({ statusCode: 500, code: 'ROSTER_ERR_INTERNAL', error: 'Internal Server Error', message: 'Internal Server Error' })
      expect(res.body).not.toContain('secret')
    } finally {
      await faulty.close()
    }
  })
})
