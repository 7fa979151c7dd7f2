// The shapes the client sends and receives, each the static type of the schema the gateway
// validates and serializes with (server/protocol/model.ts, server/gateway/schemas/), so that the
// client cannot drift from the server. Type-only imports: none of the server's runtime (TypeBox
// builders, Fastify, ZeroMQ, pg) enters the client's import graph.
import type { EventKind, Provider, ProviderProtocol, ProviderSpec, ProviderState } from '../server/protocol/model.js'
import type {
  Deregistered, Health, MaintenanceRequest, ProviderList, ProviderListQuery, ProviderResult, ServiceList
} from '../server/gateway/schemas/services.js'
import type { WatchEvent, WatchMessage, WatchSnapshot } from '../server/gateway/schemas/watch.js'

export type {
  Deregistered, EventKind, Health, MaintenanceRequest, Provider, ProviderList, ProviderProtocol,
  ProviderSpec, ProviderState, ProviderResult, ServiceList, WatchEvent, WatchMessage, WatchSnapshot
}

/** One entry of `services()`: a service's name, its provider count and how many are up. */
export type ServiceSummary = ServiceList['services'][number]

/** Filters of `list()`; they combine. `tag` may be one tag or several, all of which must match. */
export type ListFilters = Omit<ProviderListQuery, 'minRevision' | 'tag'> & { tag?: string | readonly string[] }

/** The answer to `register()`: the provider as stored and the revision of the write. */
export interface Registration extends ProviderResult {
  /**
   * True when the gateway answered 201 (a new provider). A call that was retried on another
   * gateway after an attempt that may have been stored reports what the last attempt saw: false
   * if the first attempt had already created it.
   */
  created: boolean
}

/** The answer to `deregister()`. */
export interface Deregistration {
  /**
   * The revision of the removal; null when an earlier attempt of this call may have removed the
   * provider (its gateway failed mid-request) and the retry found it gone (404). The provider is
   * gone either way; the null says the client cannot tell which write removed it.
   */
  revision: number | null
}

/** `health()`'s answer, and which gateway gave it. */
export type GatewayHealth = Health & { gateway: string }
