// The registry's data model, shared by every role and by the REST and WebSocket contracts
// (design.md §3). One TypeBox schema per shape; the static type carries the same name, so the
// wire format, the HTTP validation and the OpenAPI document cannot drift apart.
import { Type, type Static } from '@sinclair/typebox'

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

export const ProviderProtocol = Type.Union(
  [Type.Literal('http'), Type.Literal('rpc'), Type.Literal('pub')],
  { description: 'http, rpc (an RPC server) or pub (an RPC publisher)' }
)
export type ProviderProtocol = Static<typeof ProviderProtocol>

export const ProviderState = Type.Union(
  [Type.Literal('pending'), Type.Literal('up'), Type.Literal('down'), Type.Literal('maintenance')],
  { description: 'pending until the first heartbeat, then up or down; maintenance while an operator holds it out of rotation' }
)
export type ProviderState = Static<typeof ProviderState>

export const EventKind = Type.Union([
  Type.Literal('registered'),
  Type.Literal('updated'),
  Type.Literal('up'),
  Type.Literal('down'),
  Type.Literal('maintenance'),
  Type.Literal('deregistered')
])
export type EventKind = Static<typeof EventKind>

/** Heartbeat intervals a provider may ask for: 50 ms is the fastest a worker's timer resolves
 *  usefully on a shared machine; 60 s keeps three silent intervals under about three minutes. */
export const HEARTBEAT_INTERVAL_MIN_MS = 50
export const HEARTBEAT_INTERVAL_MAX_MS = 60_000
export const HEARTBEAT_INTERVAL_DEFAULT_MS = 1000

/** A provider down this long is removed (Consul's deregister_critical_service_after): at least
 *  one second, so that a restart is never mistaken for an abandoned instance by accident, at
 *  most seven days. */
export const DEREGISTER_AFTER_MIN_MS = 1000
export const DEREGISTER_AFTER_MAX_MS = 7 * 24 * 3_600_000
/** Bounds an operator's maintenance note. */
export const REASON_MAX_LENGTH = 256

/** The writable part of a provider: the body of a registration. */
export const ProviderSpec = Type.Object(
  {
    host: Type.String({
      minLength: 1,
      maxLength: 253,
      pattern: '^[A-Za-z0-9._:\\[\\]-]+$',
      description: 'a host name or an IP address'
    }),
    port: Type.Integer({ minimum: 1, maximum: 65535 }),
    protocol: ProviderProtocol,
    heartbeat: Type.String({
      maxLength: 300,
      pattern: '^tcp://(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9._-]+):[0-9]{1,5}$',
      description: "the provider's ZeroMQ PUB endpoint, tcp://host:port"
    }),
    heartbeatIntervalMs: Type.Optional(
      Type.Integer({
        minimum: HEARTBEAT_INTERVAL_MIN_MS,
        maximum: HEARTBEAT_INTERVAL_MAX_MS,
        default: HEARTBEAT_INTERVAL_DEFAULT_MS
      })
    ),
    tags: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { maxItems: 32, uniqueItems: true, default: [] })
    ),
    meta: Type.Optional(
      Type.Record(Type.String({ maxLength: 64 }), Type.String({ maxLength: 512 }), {
        maxProperties: 32,
        default: {}
      })
    ),
    deregisterAfterMs: Type.Optional(Type.Integer({
      minimum: DEREGISTER_AFTER_MIN_MS,
      maximum: DEREGISTER_AFTER_MAX_MS,
      description: 'remove the provider once it has been down this long (1000 ms to 7 days); the event is deregistered with reason down-too-long'
    }))
  },
  { additionalProperties: false }
)
export type ProviderSpec = Static<typeof ProviderSpec>

/** A registration with every default filled in, as the leader stores it. */
export type ProviderRecordSpec = Required<Omit<ProviderSpec, 'deregisterAfterMs'>> & Pick<ProviderSpec, 'deregisterAfterMs'>

export const Provider = Type.Object(
  {
    id: ProviderId,
    service: ServiceName,
    host: Type.String(),
    port: Type.Integer(),
    protocol: ProviderProtocol,
    heartbeat: Type.String(),
    heartbeatIntervalMs: Type.Integer(),
    tags: Type.Array(Type.String()),
    meta: Type.Record(Type.String(), Type.String()),
    deregisterAfterMs: Type.Optional(Type.Integer()),
    state: ProviderState,
    stateSince: Type.String({ format: 'date-time' }),
    lastSeen: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    reason: Type.Optional(Type.String({
      description: 'why the provider is in its state: disconnected, silent or flapping when down; ' +
        'the operator\'s note in maintenance; down-too-long on the deregistered event of a provider removed by deregisterAfterMs'
    })),
    detectedAfterMs: Type.Optional(Type.Integer({
      minimum: 0,
      description: 'on down: milliseconds from the last heartbeat to the decision, how stale the last good news was'
    })),
    revision: Type.Integer({ description: 'the revision of the last change to this provider' })
  },
  { $id: 'Provider', additionalProperties: false }
)
export type Provider = Static<typeof Provider>

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
