// Generated requests for the REST and WebSocket fuzzers. Most are valid requests with one
// poisoned part (a registration with one hostile field, a read with one hostile parameter), so
// that they get past the schema to the leader and the database; the rest are junk of every
// kind (methods, paths, headers, bodies) sent byte for byte by the raw client.
import fc from 'fast-check'
import { hostileText, leftOut, percentEncode, storableText, wtf8 } from './hostile-text.js'
import type { RawRequest } from './raw-http.js'

/** A path segment: `value` is what the server should decode (null for deliberately broken
 *  escapes), `encoded` what goes into the URL. */
export interface Segment { value: string | null, encoded: string }

export const SERVICES = ['orders', 'payments', 'fz.1_a-b']
export const IDS = ['p1', 'p2', 'p3', 'p4', 'p5:a', 'p6_B', 'p7-7', 'p8', 'ttl.1']

const BROKEN_ESCAPES = ['%', '%zz', '%0', '%00', '%C0%80', '%ED%A0%80', '%FF', '%2F', '%2f..', '..', '.', '%2e%2e', 'a%00b', '%E2%80', '%F4%90%80%80', '%25']

function segment (pool: string[], valid: fc.Arbitrary<string>, limit: number): fc.Arbitrary<Segment> {
  return fc.oneof(
    { weight: 16, arbitrary: fc.constantFrom(...pool).map((v) => ({ value: v, encoded: v })) },
    { weight: 2, arbitrary: valid.map((v) => ({ value: v, encoded: percentEncode(v) })) },
    { weight: 3, arbitrary: hostileText(limit).map((v) => ({ value: v, encoded: percentEncode(v) })) },
    { weight: 1, arbitrary: fc.constantFrom(...BROKEN_ESCAPES).map((e) => ({ value: null, encoded: e })) }
  )
}

export const serviceSegment = segment(SERVICES, fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,62}$/), 63)
export const idSegment = segment(IDS, fc.stringMatching(/^[A-Za-z0-9._:-]{1,128}$/), 128)

/** A provider's service and id: mostly a pool id under its own service, so that writes find
 *  the provider registered (an update, maintenance, a renewal) instead of a 409 or a 404. */
export const providerPath: fc.Arbitrary<{ service: Segment, id: Segment }> = fc.record({
  service: serviceSegment,
  id: idSegment,
  home: fc.oneof({ weight: 3, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) })
}).map(({ service, id, home }) => {
  const i = IDS.indexOf(id.value ?? '')
  const own = SERVICES[i % SERVICES.length] as string
  return home && i >= 0 ? { service: { value: own, encoded: own }, id } : { service, id }
})

// ---- registrations ------------------------------------------------------------------------

const validHost = fc.oneof(
  fc.constantFrom('10.0.0.5', '127.0.0.1', 'localhost', '[::1]', 'db-1.internal', '::1'),
  fc.stringMatching(/^[A-Za-z0-9._:[\]-]{1,253}$/)
)
// Never connected to (the fixture runs no worker), but loopback all the same.
const validHeartbeat = fc.tuple(fc.constantFrom('127.0.0.1', '[::1]', 'localhost', '127.0.0.2'), fc.integer({ min: 1, max: 65535 }))
  .map(([h, p]) => `tcp://${h}:${p}`)
const interval = fc.oneof(fc.integer({ min: 1000, max: 60_000 }), fc.integer({ min: 50, max: 60_000 }))
const validCheck = fc.oneof(
  fc.tuple(fc.stringMatching(/^\/[\x21-\x7e]{0,40}$/), interval).chain(([path, intervalMs]) =>
    fc.integer({ min: 1, max: intervalMs - 1 }).map((timeoutMs) => ({ type: 'http', path, intervalMs, timeoutMs }))),
  interval.chain((intervalMs) => fc.integer({ min: 1, max: intervalMs - 1 }).map((timeoutMs) => ({ type: 'tcp', intervalMs, timeoutMs }))),
  fc.integer({ min: 100, max: 86_400_000 }).map((ttlMs) => ({ type: 'ttl', ttlMs }))
)

type Body = Record<string, unknown>

/** A registration the schema accepts, with text fields over all storable characters. */
export const validSpec: fc.Arbitrary<Body> = fc.record({
  host: validHost,
  port: fc.integer({ min: 1, max: 65535 }),
  protocol: fc.constantFrom('http', 'rpc', 'pub'),
  presence: fc.oneof(
    { weight: 3, arbitrary: validHeartbeat.map((heartbeat) => ({ heartbeat })) },
    { weight: 2, arbitrary: validCheck.map((check) => ({ check })) }
  ),
  heartbeatIntervalMs: fc.option(fc.integer({ min: 50, max: 60_000 }), { nil: undefined }),
  tags: fc.option(fc.uniqueArray(storableText(1, 64), { maxLength: 32 }), { nil: undefined }),
  meta: fc.option(fc.uniqueArray(fc.tuple(storableText(0, 64), storableText(0, 512)), { maxLength: 32, selector: (e) => e[0] }), { nil: undefined }),
  deregisterAfterMs: fc.option(fc.integer({ min: 1000, max: 7 * 24 * 3_600_000 }), { nil: undefined })
}).map(({ presence, tags, meta, ...rest }) => {
  const body: Body = { ...rest, ...presence }
  if (tags !== undefined) body.tags = tags
  // fromEntries: a key named __proto__ becomes an own property, sent as it is.
  if (meta !== undefined) body.meta = Object.fromEntries(meta)
  for (const k of Object.keys(body)) if (body[k] === undefined) delete body[k]
  return body
})

const junkNumber = fc.constantFrom<unknown>(0, -1, 1.5, 65_536, 1e308, -0, 2 ** 53, 60_001, 49, '80', '', null, true, [], {}, [80])
const junkJson = fc.jsonValue({ maxDepth: 2 })

type Poison = [string, (body: Body) => fc.Arbitrary<Body>]

const withKey = (o: unknown, key: string, value: unknown): Body =>
  Object.fromEntries([...Object.entries(typeof o === 'object' && o !== null && !Array.isArray(o) ? o : {}), [key, value]])

/** Each way to poison one field of a valid registration. */
const POISONS: Poison[] = [
  ['host', (b) => hostileText(253).map((host) => ({ ...b, host }))],
  ['protocol', (b) => hostileText(8).map((protocol) => ({ ...b, protocol }))],
  ['heartbeat', (b) => fc.oneof(hostileText(300), hostileText(40).map((h) => `tcp://${h}:9`))
    .map((heartbeat) => { const { check: _c, ...rest } = b; return { ...rest, heartbeat } })],
  ['tags', (b) => fc.tuple(hostileText(64), fc.nat()).map(([t, at]) => {
    const tags = [...(Array.isArray(b.tags) ? b.tags as string[] : [])]
    tags.splice(at % (tags.length + 1), 0, t)
    return { ...b, tags }
  })],
  ['tags-many', (b) => fc.array(hostileText(64), { minLength: 0, maxLength: 40 }).map((tags) => ({ ...b, tags }))],
  ['meta-key', (b) => hostileText(64).map((k) => ({ ...b, meta: withKey(b.meta, leftOut('long-meta-keys') ? [...k].slice(0, 64).join('') : k, 'v') }))],
  ['meta-value', (b) => fc.tuple(storableText(0, 64), hostileText(512)).map(([k, v]) => ({ ...b, meta: withKey(b.meta, k, v) }))],
  ['meta-proto', (b) => fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString').map((k) => ({ ...b, meta: withKey(b.meta, k, 'v') }))],
  ['check-path', (b) => hostileText(1024).map((p) => { const { heartbeat: _h, ...rest } = b; return { ...rest, check: { type: 'http', path: `/${p}`, intervalMs: 2000, timeoutMs: 500 } } })],
  ['check-type', (b) => hostileText(8).map((type) => { const { heartbeat: _h, ...rest } = b; return { ...rest, check: { type, intervalMs: 2000, timeoutMs: 500, ttlMs: 5000 } } })],
  ['unknown-field', (b) => fc.tuple(hostileText(20), junkJson).map(([k, v]) => withKey(b, k, v))],
  ['proto-field', (b) => fc.constantFrom('__proto__', 'constructor').map((k) => withKey(b, k, { port: 1 }))],
  ['number', (b) => fc.tuple(fc.constantFrom('port', 'heartbeatIntervalMs', 'deregisterAfterMs'), junkNumber).map(([k, v]) => ({ ...b, [k]: v }))],
  ['wrong-type', (b) => fc.tuple(fc.constantFrom('host', 'protocol', 'heartbeat', 'tags', 'meta', 'check'), junkJson).map(([k, v]) => ({ ...b, [k]: v }))],
  ['not-an-object', () => junkJson.map((v) => ({ __notAnObject: v }))]
]

export interface Registration { kind: 'register', service: Segment, id: Segment, body: Body, poison: string }

export const registration: fc.Arbitrary<Registration> = fc.record({
  at: providerPath,
  spec: validSpec,
  // One registration in three is valid as generated, so that many reach the leader and Postgres.
  poison: fc.option(fc.constantFrom(...POISONS), { freq: 2, nil: null })
}).chain(({ at, spec, poison }) => (poison === null ? fc.constant(spec) : poison[1](spec))
  .map((body) => ({ kind: 'register' as const, ...at, body, poison: poison?.[0] ?? 'none' })))

/** The JSON text of a generated body ({ __notAnObject } stands for a bare JSON value). */
export function bodyText (body: Body): string {
  return '__notAnObject' in body ? JSON.stringify(body.__notAnObject) ?? 'null' : JSON.stringify(body)
}

// ---- other writes ---------------------------------------------------------------------

export interface Maintenance { kind: 'maintenance', service: Segment, id: Segment, body: unknown }
export const maintenance: fc.Arbitrary<Maintenance> = fc.record({
  kind: fc.constant('maintenance' as const),
  at: providerPath,
  body: fc.oneof(
    { weight: 4, arbitrary: fc.record({ enabled: fc.boolean(), reason: storableText(0, 256) }, { requiredKeys: ['enabled'] }) },
    { weight: 4, arbitrary: fc.record({ enabled: fc.boolean(), reason: hostileText(256) }) },
    { weight: 1, arbitrary: fc.record({ enabled: junkJson, reason: junkJson }, { requiredKeys: [] }) },
    { weight: 1, arbitrary: fc.tuple(hostileText(20), junkJson).map(([k, v]) => withKey({ enabled: true }, k, v)) }
  )
}).map(({ at, ...rest }) => ({ ...rest, ...at }))

export interface Renewal { kind: 'renew', service: Segment, id: Segment, body: string | undefined }
export const renewal: fc.Arbitrary<Renewal> = fc.record({
  kind: fc.constant('renew' as const),
  at: providerPath,
  body: fc.option(junkJson.map((v) => JSON.stringify(v)), { nil: undefined })
}).map(({ at, ...rest }) => ({ ...rest, ...at }))

export interface Deregistration { kind: 'deregister', service: Segment, id: Segment }
export const deregistration: fc.Arbitrary<Deregistration> = fc.record({
  kind: fc.constant('deregister' as const),
  at: providerPath
}).map(({ at, ...rest }) => ({ ...rest, ...at }))

// ---- raw requests -----------------------------------------------------------------------

const METHODS = ['GET', 'PUT', 'POST', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'TRACE', 'PROPFIND', 'get', 'PUT ', 'P\u0000T', 'PÜT', '']

const rawSegment = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom('v1', 'services', 'providers', 'watch', 'health', 'openapi.json', 'maintenance', 'heartbeat', 'tokens', 'documentation', ...SERVICES, ...IDS) },
  { weight: 2, arbitrary: hostileText(40).map(percentEncode) },
  // Unencoded: raw bytes in the request target (a space or a NUL, say).
  { weight: 1, arbitrary: hostileText(40) },
  { weight: 1, arbitrary: fc.constantFrom(...BROKEN_ESCAPES) }
)

const rawQuery = fc.array(fc.tuple(
  fc.oneof(fc.constantFrom('state', 'protocol', 'tag', 'minRevision', 'service', 'since', 'token', '__proto__'), hostileText(12)),
  hostileText(40)
).map(([k, v]) => `${percentEncode(k)}=${percentEncode(v)}`), { maxLength: 4 }).map((pairs) => (pairs.length === 0 ? '' : `?${pairs.join('&')}`))

export const rawTarget: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.tuple(serviceSegment, idSegment, fc.constantFrom('', '/maintenance', '/heartbeat', '/', '/x'), rawQuery)
      .map(([s, i, suffix, q]) => `/v1/services/${s.encoded}/providers/${i.encoded}${suffix}${q}`)
  },
  { weight: 3, arbitrary: fc.tuple(fc.array(rawSegment, { maxLength: 6 }), rawQuery).map(([segs, q]) => `/${segs.join('/')}${q}`) },
  { weight: 1, arbitrary: fc.constantFrom('*', 'http://127.0.0.1/v1/health', '//v1//services', '/v1/services?', '/v1/health#frag', '/%', '/v1/services/orders/providers/p1/../p2') }
)

const CONTENT_TYPES = [
  'application/json', 'application/json; charset=utf-8', 'application/json; charset=latin1', 'APPLICATION/JSON',
  'application/json;charset=utf-16', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x',
  'application/octet-stream', 'application/merge-patch+json', '', ';', 'application/json; charset="\u0000"'
]
const HEADER_NAMES = ['accept', 'accept-encoding', 'accept-language', 'origin', 'cookie', 'x-forwarded-for', 'x-request-id', 'user-agent', 'if-none-match', 'range', 'x-roster-revision']

/** Headers a hostile client may send: content types, credentials of every shape, and more. */
export const rawHeaders: fc.Arbitrary<Array<[string, string]>> = fc.record({
  contentType: fc.option(fc.oneof(fc.constantFrom(...CONTENT_TYPES), hostileText(60)), { nil: undefined }),
  authorization: fc.option(fc.oneof(
    fc.constantFrom('Bearer', 'Bearer ', 'Basic dXNlcjpwYXNz', 'bearer x', 'Bearer a b', 'Bearer ' + 'A'.repeat(10_000)),
    hostileText(200).map((s) => `Bearer ${s}`),
    hostileText(200)
  ), { nil: undefined }),
  extra: fc.array(fc.tuple(fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...HEADER_NAMES) }, { weight: 1, arbitrary: hostileText(20) }), hostileText(100)), { maxLength: 3 })
}).map(({ contentType, authorization, extra }) => [
  ...(contentType === undefined ? [] : [['content-type', contentType] as [string, string]]),
  ...(authorization === undefined ? [] : [['authorization', authorization] as [string, string]]),
  ...extra
])

/** JSON whose `\uXXXX` escapes of surrogates and controls are written out raw: invalid UTF-8
 *  (a lone surrogate as WTF-8) and invalid JSON (a raw control character in a string). */
function rawEscapes (json: string): Buffer {
  return wtf8(json.replace(/\\u([0-9a-f]{4})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16))))
}

export const rawBody: fc.Arbitrary<Buffer | undefined> = fc.oneof(
  { weight: 2, arbitrary: fc.constant(undefined) },
  { weight: 3, arbitrary: validSpec.map((b) => Buffer.from(JSON.stringify(b))) },
  { weight: 3, arbitrary: registration.map((r) => rawEscapes(bodyText(r.body))) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 2000 }).map((a) => Buffer.from(a)) },
  { weight: 1, arbitrary: fc.tuple(validSpec, fc.nat()).map(([b, cut]) => { const s = JSON.stringify(b); return Buffer.from(s.slice(0, cut % s.length)) }) },
  { weight: 1, arbitrary: fc.constantFrom('{"enabled":true}', 'null', '[]', '""', '{}', '{"__proto__":{"x":1}}', '\uFEFF{}', '{"host":"a","host":"b"}').map((s) => Buffer.from(s)) },
  { weight: 1, arbitrary: fc.integer({ min: 64 * 1024 - 8, max: 70_000 }).map((n) => Buffer.from(`{"host":"${'a'.repeat(n)}"}`)) }
)

export interface Raw { kind: 'raw', request: RawRequest }
export const rawRequest: fc.Arbitrary<Raw> = fc.record({
  method: fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...METHODS) }, { weight: 1, arbitrary: hostileText(10) }),
  target: rawTarget,
  headers: rawHeaders,
  body: rawBody
}).map(({ method, target, headers, body }) => ({ kind: 'raw' as const, request: { method, target, headers, ...(body === undefined ? {} : { body }) } }))

export type WriteRequest = Registration | Maintenance | Renewal | Deregistration | Raw

export const writeRequest: fc.Arbitrary<WriteRequest> = fc.oneof(
  { weight: 10, arbitrary: registration },
  { weight: 3, arbitrary: maintenance },
  { weight: 1, arbitrary: renewal },
  { weight: 1, arbitrary: deregistration },
  { weight: 4, arbitrary: rawRequest }
)

// ---- reads ------------------------------------------------------------------------------

const INFINITE = ['Infinity', '-Infinity', '9'.repeat(400), '1e400']
const NUMBERS_OF_SORTS = ['-1', '1.5', 'NaN', '', ' 2', '+1', '1_000', '0.0', '-0', 'true', 'null', '[]', '1e-3', '0b1', '0o1', '2 ', '٣']

const infinite = fc.constantFrom(...INFINITE).map((n) => (leftOut('infinite-numbers') ? '0' : n))

/** minRevision or since as text: mostly small integers (reached already), then every kind of
 *  number a parser may mistake for one. Values that are ahead of the registry (the read then
 *  waits up to 5 s for a 504) are rare, to keep the run short. */
export const revisionText: fc.Arbitrary<string> = fc.oneof(
  { weight: 50, arbitrary: fc.integer({ min: 0, max: 3 }).map(String) },
  { weight: 24, arbitrary: fc.constantFrom(...NUMBERS_OF_SORTS) },
  { weight: 6, arbitrary: infinite },
  { weight: 20, arbitrary: hostileText(20) },
  { weight: 1, arbitrary: fc.constantFrom('999999999', '1e9', '9007199254740993', '0x7fffffff') }
)

export type Query = Array<[string, string]>

export function queryString (q: Query): string {
  return q.length === 0 ? '' : `?${q.map(([k, v]) => `${percentEncode(k)}=${percentEncode(v)}`).join('&')}`
}

const listParam: fc.Arbitrary<[string, string]> = fc.oneof(
  fc.tuple(fc.constant('state'), fc.oneof(fc.constantFrom('pending', 'up', 'down', 'maintenance'), hostileText(12))),
  fc.tuple(fc.constant('protocol'), fc.oneof(fc.constantFrom('http', 'rpc', 'pub'), hostileText(8))),
  fc.tuple(fc.constant('tag'), fc.oneof(storableText(1, 64), hostileText(64))),
  fc.tuple(fc.constant('minRevision'), revisionText),
  fc.tuple(fc.oneof(fc.constantFrom('tags', 'service', 'since', '__proto__', 'constructor'), hostileText(12)), hostileText(20))
)

export type ReadRequest =
  | { kind: 'services', query: Query }
  | { kind: 'providers', service: Segment, query: Query }
  | { kind: 'provider', service: Segment, id: Segment, query: Query }
  | { kind: 'health' | 'openapi' }
  | Raw

const readOnlyRaw: fc.Arbitrary<Raw> = fc.record({
  method: fc.constantFrom('GET', 'HEAD', 'OPTIONS'),
  target: rawTarget,
  headers: rawHeaders
}).map(({ method, target, headers }) => ({ kind: 'raw' as const, request: { method, target, headers } }))

export const readRequest: fc.Arbitrary<ReadRequest> = fc.oneof(
  { weight: 2, arbitrary: fc.array(fc.tuple(fc.constant('minRevision'), revisionText), { maxLength: 2 }).map((query) => ({ kind: 'services' as const, query })) },
  { weight: 6, arbitrary: fc.record({ service: serviceSegment, query: fc.array(listParam, { maxLength: 4 }) }).map((r) => ({ kind: 'providers' as const, ...r })) },
  { weight: 3, arbitrary: fc.record({ service: serviceSegment, id: idSegment, query: fc.array(fc.tuple(fc.constant('minRevision'), revisionText), { maxLength: 1 }) }).map((r) => ({ kind: 'provider' as const, ...r })) },
  { weight: 1, arbitrary: fc.constantFrom({ kind: 'health' as const }, { kind: 'openapi' as const }) },
  { weight: 2, arbitrary: readOnlyRaw }
)

// ---- WebSocket handshakes ---------------------------------------------------------------

export interface Handshake {
  method: string
  path: string
  query: Query
  /** Sec-WebSocket-Key as sent, or undefined for none. */
  key: string | undefined
  headers: Array<[string, string]>
  /** The subprotocols offered, as sent in Sec-WebSocket-Protocol, or undefined. */
  protocols: string | undefined
}

const watchParam: fc.Arbitrary<[string, string]> = fc.oneof(
  { weight: 6, arbitrary: fc.tuple(fc.constant('service'), serviceSegment.map((s) => s.value ?? s.encoded)) },
  { weight: 3, arbitrary: fc.tuple(fc.constant('since'), revisionText) },
  { weight: 1, arbitrary: fc.tuple(fc.constant('since'), infinite) },
  { weight: 1, arbitrary: fc.tuple(fc.oneof(fc.constantFrom('services', 'minRevision', 'token', 'access_token', '__proto__'), hostileText(12)), hostileText(20)) }
)

/** Either a handful of parameters, or more services than the 64 a feed may ask for. */
const watchQuery: fc.Arbitrary<Query> = fc.oneof(
  { weight: 6, arbitrary: fc.array(watchParam, { maxLength: 4 }) },
  {
    weight: 6,
    arbitrary: fc.tuple(fc.array(fc.constantFrom(...SERVICES), { maxLength: 3 }), fc.option(fc.integer({ min: 0, max: 20 }), { nil: undefined }))
      .map(([services, since]): Query => [...services.map((s): [string, string] => ['service', s]), ...(since === undefined ? [] : [['since', String(since)] as [string, string]])])
  },
  { weight: 1, arbitrary: fc.integer({ min: 63, max: 70 }).map((n) => Array.from({ length: n }, (_, i): [string, string] => ['service', `s${i}`])) }
)

const validKey = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((a) => Buffer.from(a).toString('base64'))
const usually = <T>(valid: fc.Arbitrary<T>, junk: fc.Arbitrary<T>): fc.Arbitrary<T> =>
  fc.oneof({ weight: 14, arbitrary: valid }, { weight: 1, arbitrary: junk })
const absent = fc.constant(undefined)

export const handshake: fc.Arbitrary<Handshake> = fc.record({
  method: usually(fc.constant('GET'), fc.constantFrom('POST', 'PUT', 'HEAD', 'OPTIONS', 'get')),
  path: usually(fc.constant('/v1/watch'), fc.constantFrom('/v1/watch/', '/v1/Watch', '/v1/watch%00', '//v1/watch', '/v1/watch/..', '/v1/watch;x', '/v1/watch%2F')),
  query: watchQuery,
  key: usually<string | undefined>(validKey, fc.oneof(absent, hostileText(40), fc.constantFrom('', 'AAAAAAAAAAAAAAAAAAAAAA==', '====', 'dGhlIHNhbXBsZSBub25jZQ'))),
  upgrade: usually<string | undefined>(fc.constant('websocket'), fc.oneof(absent, fc.constantFrom('WebSocket', 'h2c', 'websocket, h2c'), hostileText(20))),
  connection: usually<string | undefined>(fc.constantFrom('Upgrade', 'keep-alive, Upgrade'), fc.oneof(absent, fc.constantFrom('close', 'upgrade, close'), hostileText(20))),
  version: usually<string | undefined>(fc.constant('13'), fc.oneof(absent, fc.constantFrom('8', '14', '13, 8', ''), hostileText(8))),
  protocols: fc.oneof(
    { weight: 8, arbitrary: absent },
    { weight: 3, arbitrary: fc.constantFrom('roster.v1', 'bearer.abc, roster.v1', 'roster.v1, roster.v1', 'a,b', ',', ' ', 'bearer.') },
    { weight: 2, arbitrary: hostileText(100) },
    { weight: 1, arbitrary: fc.array(hostileText(30), { minLength: 1, maxLength: 5 }).map((ps) => ps.join(', ')) },
    { weight: 1, arbitrary: hostileText(30).map((s) => `bearer.${s}, roster.v1`) }
  ),
  extra: fc.oneof({ weight: 4, arbitrary: fc.constant([]) }, { weight: 1, arbitrary: rawHeaders })
}).map(({ method, path, query, key, upgrade, connection, version, protocols, extra }) => {
  const headers: Array<[string, string]> = []
  if (upgrade !== undefined) headers.push(['Upgrade', upgrade])
  if (connection !== undefined) headers.push(['Connection', connection])
  if (key !== undefined) headers.push(['Sec-WebSocket-Key', key])
  if (version !== undefined) headers.push(['Sec-WebSocket-Version', version])
  if (protocols !== undefined) headers.push(['Sec-WebSocket-Protocol', protocols])
  return { method, path, query, key, headers: [...headers, ...extra], protocols }
})
