// `roster/client`: the TypeScript client of Roster's REST API and change feed, for Node.js 20 or
// later. This module is the package's public surface for it: everything a caller may name is
// exported here, and nothing else is part of the contract. README.md › Clients shows it in use.
export { RosterClient, DEFAULT_ATTEMPT_TIMEOUT_MS, DEFAULT_TIMEOUT_MS, type ReadOptions, type RosterClientOptions } from './client.js'
export { RosterWatch, WATCH_RECONNECT_TIMEOUT_MS, type WatchOptions } from './watch.js'
export { RosterClientError, RosterHttpError, RosterResponseError, RosterUnavailableError, type AttemptFailure } from './errors.js'
export type { CallOptions, RetryInfo } from './transport.js'
export type {
  Deregistered, Deregistration, EventKind, GatewayHealth, Health, ListFilters, MaintenanceRequest, Provider,
  ProviderList, ProviderProtocol, ProviderSpec, ProviderState, ProviderResult, Registration, ServiceList, ServiceSummary,
  WatchEvent, WatchMessage, WatchSnapshot
} from './types.js'
