// The registry's data model, shared by every role and by the REST and WebSocket contracts
// (README.md › Every endpoint, The change feed). One TypeBox schema per shape; the static type carries the same name, so the
// wire format, the HTTP validation and the OpenAPI document cannot drift apart.
import { Kind, Type, TypeRegistry, type SchemaOptions, type Static, type StringOptions, type TUnsafe } from '@sinclair/typebox'

/**
 * Text Postgres can store: no NUL (text and jsonb refuse it) and no unpaired UTF-16 surrogate
 * (jsonb refuses its `\ud800` escape; a text parameter would silently become U+FFFD). Every
 * free-text field a client, a gateway or a worker sends has this pattern, so such input is a 400
 * naming the field at the gateway and a bad frame at the leader, never a refused commit. The
 * pattern means the same with and without the `u` flag: Ajv (the gateway) compiles it with `u`,
 * where a pair is one code point and matches the first branch; TypeBox (the leader's frame
 * checker) without, where a pair is two code units and matches the second.
 */
const UNSTORABLE = /\0|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g
const STORABLE_CHARACTER = '(?:[^\\0\\ud800-\\udfff]|[\\ud800-\\udbff][\\udc00-\\udfff])'
/** What every storable-text pattern starts with, so that validators can recognise the rule. */
export const STORABLE_TEXT_PREFIX = `^${STORABLE_CHARACTER}{`

/**
 * A string schema for storable text of `minLength`–`maxLength` characters. The length is part of
 * the pattern, not maxLength, because the two validators count differently: Ajv counts code
 * points, TypeBox UTF-16 units, so a 40-emoji tag passed the gateway and was then dropped by the
 * leader as a bad frame. A repetition of STORABLE_CHARACTER is one code point in both modes.
 */
export function StorableText ({ minLength = 0, maxLength, ...options }: StringOptions & { maxLength: number }) {
  return Type.String({ ...options, pattern: `${STORABLE_TEXT_PREFIX}${minLength},${maxLength}}$` })
}

/** The words for `value` breaking a StorableText `pattern` (the gateway's 400, the leader's log):
 *  what Postgres cannot store, or else its length, in the words of Ajv's length messages. */
export function storableTextProblem (pattern: string, value: unknown): string {
  const text = String(value)
  if (new RegExp(UNSTORABLE.source).test(text)) return 'must not contain NUL or unpaired surrogates'
  const [min = 0, max = 0] = pattern.slice(STORABLE_TEXT_PREFIX.length).split(/[,}]/).map(Number)
  const length = [...text].length
  return length > max ? `must NOT have more than ${max} characters` : `must NOT have fewer than ${min} characters`
}

/** `text` made storable, for text Roster produces itself from what others sent (a failed check's
 *  error message): NUL and unpaired surrogates become U+FFFD. */
export function toStorableText (text: string): string {
  return text.replace(UNSTORABLE, '\ufffd')
}

/** A meta key: 1–64 characters (code points in both validators: a pair is one repetition either
 *  way), none of them a control character or a line or paragraph separator (such a key vanished
 *  from REST answers, whose serializer matches keys against `^(.*)$`), NUL or an unpaired surrogate. */
export const META_KEY_PATTERN = '^(?:[^\\0-\\x1f\\x7f-\\x9f\\u2028\\u2029\\ud800-\\udfff]|[\\ud800-\\udbff][\\udc00-\\udfff]){1,64}$'

export const ServiceName = Type.String({
  minLength: 1,
  maxLength: 63,
  pattern: '^[a-z0-9][a-z0-9._-]*$',
  description: '1–63 of a-z 0-9 - . _, starting with a letter or digit'
})

export const ProviderId = Type.String({
  minLength: 1,
  maxLength: 128,
  pattern: '^[A-Za-z0-9._:-]+$',
  description: '1–128 of A-Z a-z 0-9 - . _ :, unique in the whole registry'
})

/** TypeBox's own kind for a string enum, checked by its frame checker (frames.ts) like any kind. */
const STRING_ENUM_KIND = 'StringEnum'
if (!TypeRegistry.Has(STRING_ENUM_KIND)) {
  TypeRegistry.Set<{ enum: readonly string[] }>(STRING_ENUM_KIND, (schema, value) => typeof value === 'string' && schema.enum.includes(value))
}

/**
 * `{ "type": "string", "enum": [...] }`, the form OpenAPI generators turn into one named enum
 * (Type.Union of literals is an `anyOf` of one-value enums, which they turn into one type per
 * value). Ajv validates it as it is (the gateway's 400 says "must be one of: …"); TypeBox's
 * checkers through the kind registered above.
 */
export function StringEnum<const T extends readonly string[]> (values: T, options: SchemaOptions = {}): TUnsafe<T[number]> {
  return Type.Unsafe<T[number]>({ ...options, [Kind]: STRING_ENUM_KIND, type: 'string', enum: [...values] })
}

export const ProviderProtocol = StringEnum(['http', 'rpc', 'pub'], {
  description: 'http, rpc (an RPC server) or pub (an RPC publisher)'
})
export type ProviderProtocol = Static<typeof ProviderProtocol>

export const ProviderState = StringEnum(['pending', 'up', 'down', 'maintenance'], {
  description: 'pending until the first heartbeat (or check result, or TTL renewal), then up or down; maintenance while an operator holds it out of rotation'
})
export type ProviderState = Static<typeof ProviderState>

export const EventKind = StringEnum(['registered', 'updated', 'up', 'down', 'maintenance', 'deregistered'])
export type EventKind = Static<typeof EventKind>

/** Heartbeat intervals a provider may ask for: 50 ms is the fastest a worker's timer resolves
 *  usefully on a shared machine; 60 s keeps three silent intervals under about three minutes. */
export const HEARTBEAT_INTERVAL_MIN_MS = 50
export const HEARTBEAT_INTERVAL_MAX_MS = 60_000
export const HEARTBEAT_INTERVAL_DEFAULT_MS = 1000

/** Checks probe at most every 50 ms (the fastest heartbeat) and at least every minute. */
export const CHECK_INTERVAL_MIN_MS = 50
export const CHECK_INTERVAL_MAX_MS = 60_000
/** TTLs from 100 ms (renewals then come ten times a second through a gateway, still cheap:
 *  they are kept in the leader's memory, never written to Postgres) to one day. */
export const TTL_MIN_MS = 100
export const TTL_MAX_MS = 86_400_000
/** A provider down this long is removed (Consul's deregister_critical_service_after): at least
 *  one second, so that a restart is never mistaken for an abandoned instance by accident, at
 *  most seven days. */
export const DEREGISTER_AFTER_MIN_MS = 1000
export const DEREGISTER_AFTER_MAX_MS = 7 * 24 * 3_600_000
/** Bounds an operator's maintenance note and a failed check's detail. */
export const REASON_MAX_LENGTH = 256
/** Tags: what a provider may carry, and what a list filter may ask for. */
export const TAG_MAX_LENGTH = 64
export const MAX_TAGS = 32

/** A TCP port: a provider's own, its heartbeat endpoint's (checked by registrationProblem, since
 *  the endpoint is one string), and a probe's. */
export const PORT_MIN = 1
export const PORT_MAX = 65535
export const Port = Type.Integer({ minimum: PORT_MIN, maximum: PORT_MAX })

const CheckIntervalMs = Type.Integer({
  minimum: CHECK_INTERVAL_MIN_MS,
  maximum: CHECK_INTERVAL_MAX_MS,
  description: 'how often a worker runs the check, 50–60000 ms'
})
const CheckTimeoutMs = Type.Integer({
  minimum: 1,
  maximum: CHECK_INTERVAL_MAX_MS - 1,
  description: 'a check that has not succeeded within this many ms has failed; must be less than intervalMs'
})

export const HttpCheck = Type.Object(
  {
    type: Type.Literal('http'),
    path: Type.String({
      minLength: 1,
      maxLength: 1024,
      pattern: '^/[\\x21-\\x7e]*$',
      description: "the path a worker GETs on http://host:port, starting with '/' (printable ASCII, no spaces)"
    }),
    intervalMs: CheckIntervalMs,
    timeoutMs: CheckTimeoutMs
  },
  { additionalProperties: false, description: 'a worker GETs http://host:port/path every intervalMs; a 2xx answer within timeoutMs is healthy' }
)
export const TcpCheck = Type.Object(
  { type: Type.Literal('tcp'), intervalMs: CheckIntervalMs, timeoutMs: CheckTimeoutMs },
  { additionalProperties: false, description: 'a worker connects to host:port every intervalMs; a connection within timeoutMs is healthy' }
)
export const TtlCheck = Type.Object(
  {
    type: Type.Literal('ttl'),
    ttlMs: Type.Integer({ minimum: TTL_MIN_MS, maximum: TTL_MAX_MS, description: 'the provider is down when no renewal came for this long, 100–86400000 ms' })
  },
  { additionalProperties: false, description: 'the provider renews itself with PUT /v1/services/{service}/providers/{id}/heartbeat at least every ttlMs' }
)

/** A heartbeat endpoint, `tcp://host:port`: checked at registration and again by the worker
 *  before it connects (heartbeat-conns.ts), since its task list comes over the network. */
export const HEARTBEAT_ENDPOINT_PATTERN = '^tcp://(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9._-]+):[0-9]{1,5}$'

/** How Roster learns a provider's presence when it has no ZeroMQ heartbeat endpoint. */
export const Check = Type.Union([HttpCheck, TcpCheck, TtlCheck], {
  description: 'instead of a ZeroMQ heartbeat: an http or tcp check run by a worker, or a ttl the provider renews over REST'
})
export type Check = Static<typeof Check>
export type TtlCheck = Static<typeof TtlCheck>

/** The writable part of a provider: the body of a registration. */
export const ProviderSpec = Type.Object(
  {
    host: Type.String({
      minLength: 1,
      maxLength: 253,
      pattern: '^[A-Za-z0-9._:\\[\\]-]+$',
      description: 'a host name or an IP address'
    }),
    port: Port,
    protocol: ProviderProtocol,
    heartbeat: Type.Optional(Type.String({
      maxLength: 300,
      pattern: HEARTBEAT_ENDPOINT_PATTERN,
      description: "the provider's ZeroMQ PUB endpoint, tcp://host:port; required unless a check is given"
    })),
    // No `default` keywords in this schema: a generator (openapi-typescript) makes a property
    // with one required, since a server that applies defaults always returns it, and this is a
    // request body. The leader fills the defaults in (leader/registry.ts, withDefaults).
    heartbeatIntervalMs: Type.Optional(
      Type.Integer({
        minimum: HEARTBEAT_INTERVAL_MIN_MS,
        maximum: HEARTBEAT_INTERVAL_MAX_MS,
        description: `how often the provider publishes a heartbeat, ${HEARTBEAT_INTERVAL_MIN_MS}–${HEARTBEAT_INTERVAL_MAX_MS} ms; absent: ${HEARTBEAT_INTERVAL_DEFAULT_MS}`
      })
    ),
    tags: Type.Optional(
      Type.Array(StorableText({ minLength: 1, maxLength: TAG_MAX_LENGTH }), {
        maxItems: MAX_TAGS,
        uniqueItems: true,
        description: `at most ${MAX_TAGS} distinct tags of 1–${TAG_MAX_LENGTH} characters; absent: none`
      })
    ),
    // additionalProperties: false makes the key pattern a rule in both validators: a key that
    // does not match it is an unknown property (without it, such a key was merely unchecked).
    meta: Type.Optional(
      Type.Record(Type.String({ pattern: META_KEY_PATTERN }), StorableText({ maxLength: 512 }), {
        maxProperties: 32,
        additionalProperties: false,
        description: 'at most 32 entries; keys 1–64 characters without control characters, values up to 512 characters'
      })
    ),
    check: Type.Optional(Check),
    deregisterAfterMs: Type.Optional(Type.Integer({
      minimum: DEREGISTER_AFTER_MIN_MS,
      maximum: DEREGISTER_AFTER_MAX_MS,
      description: 'remove the provider once it has been down this long (1000 ms to 7 days); the event is deregistered with reason down-too-long'
    }))
  },
  {
    additionalProperties: false,
    description: 'a provider has either a heartbeat endpoint or a check, not both'
  }
)
export type ProviderSpec = Static<typeof ProviderSpec>

/** A registration with every default filled in, as the leader stores it. */
export type ProviderRecordSpec = Required<Omit<ProviderSpec, 'heartbeat' | 'check' | 'deregisterAfterMs'>> &
  Pick<ProviderSpec, 'heartbeat' | 'check' | 'deregisterAfterMs'>

/**
 * The rules JSON Schema cannot say: a provider's presence comes from exactly one source (its
 * heartbeat endpoint or its check), a heartbeat port is 1–65535, and a check times out before its
 * next run. Returns the message of a 400 that names the field, or null. The gateway answers with
 * it before writing; the leader applies it again to every WRITE, whoever sent it.
 */
export function registrationProblem (spec: ProviderSpec): string | null {
  if (spec.heartbeat === undefined && spec.check === undefined) {
    return "body must have required property 'heartbeat' or 'check' (a provider needs a heartbeat endpoint or a check)"
  }
  if (spec.heartbeat !== undefined && spec.check !== undefined) {
    return 'body/check must not be given with body/heartbeat (a provider\'s presence comes from one source: its heartbeat or its check)'
  }
  if (spec.heartbeat !== undefined) {
    const port = endpointPort(spec.heartbeat)
    if (port < PORT_MIN || port > PORT_MAX) return `body/heartbeat port must be between ${PORT_MIN} and ${PORT_MAX}, got ${port}`
  }
  if (spec.check !== undefined && spec.check.type !== 'ttl' && spec.check.timeoutMs >= spec.check.intervalMs) {
    return `body/check/timeoutMs must be less than body/check/intervalMs (${spec.check.intervalMs}), got ${spec.check.timeoutMs}`
  }
  return null
}

export const Provider = Type.Object(
  {
    id: ProviderId,
    service: ServiceName,
    host: Type.String(),
    port: Type.Integer(),
    protocol: ProviderProtocol,
    heartbeat: Type.Optional(Type.String()),
    heartbeatIntervalMs: Type.Integer(),
    tags: Type.Array(Type.String()),
    meta: Type.Record(Type.String(), Type.String()),
    check: Type.Optional(Check),
    deregisterAfterMs: Type.Optional(Type.Integer()),
    state: ProviderState,
    stateSince: Type.String({ format: 'date-time', description: 'when the provider entered its current state' }),
    lastSeen: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], {
      description: 'the provider\'s latest heartbeat, successful http/tcp check or ttl renewal; null before the first. ' +
        'Of an up provider it is at most its heartbeat interval plus about half a second old on every gateway: it moves ' +
        'without a revision and without a feed event (lastSeen moving is not a change), and every event carries the value ' +
        'current when the change was decided. Of a down provider it is the last sign of life before it went down'
    }),
    reason: Type.Optional(Type.String({
      description: 'why the provider is in its state: disconnected, silent, check-failed, ttl-expired or flapping when down; ' +
        'the operator\'s note in maintenance; down-too-long on the deregistered event of a provider removed by deregisterAfterMs'
    })),
    detail: Type.Optional(Type.String({
      description: "on down with reason check-failed: what failed, e.g. 'HTTP 503', 'ECONNREFUSED' or 'timeout after 500 ms'"
    })),
    detectedAfterMs: Type.Optional(Type.Integer({
      minimum: 0,
      description: 'on down: milliseconds from the last heartbeat (or check success, or renewal) to the decision, how stale the last good news was'
    })),
    revision: Type.Integer({ description: 'the revision of the last change to this provider' })
  },
  { $id: 'Provider', additionalProperties: false }
)
export type Provider = Static<typeof Provider>

/** Whether a heartbeat seen at `ms` is news for `p`'s lastSeen, the rule the leader (accepting a
 *  worker's summary) and every gateway (refreshing its replica) both apply: `p` is `up` or in
 *  `maintenance` (a pending or down provider gets its lastSeen from its next observation, and a
 *  late value must not reach a provider watched anew), and `ms` is later than what it holds. */
export function isNewerSighting (p: Provider, ms: number): boolean {
  if (p.state !== 'up' && p.state !== 'maintenance') return false
  return p.lastSeen === null || ms > Date.parse(p.lastSeen)
}

/** One entry of the change log: what happened to which provider at which revision. */
export const Change = Type.Object(
  { revision: Type.Integer(), event: EventKind, provider: Provider },
  { additionalProperties: false }
)
export type Change = Static<typeof Change>

/** Parses the port out of a `tcp://host:port` endpoint; the schema's pattern has checked the
 *  shape, so only the range is left to check. */
export function endpointPort (endpoint: string): number {
  return Number(endpoint.slice(endpoint.lastIndexOf(':') + 1))
}
