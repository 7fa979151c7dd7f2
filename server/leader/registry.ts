// The leader's pure decision core: given the current registry and one request (a write from a
// gateway, an observation from a worker or the leader's own TTL tracker, or a reaping of a
// provider down too long), decide the change it causes, if any. It never assigns revisions,
// touches storage or sockets: batch.ts › decideBatch numbers a batch's decisions, and the shell
// (term.ts) commits them and only then makes them visible.
import {
  HEARTBEAT_INTERVAL_DEFAULT_MS, registrationProblem, type EventKind, type Provider, type ProviderRecordSpec, type ProviderSpec
} from '../protocol/model.js'
import { Errors } from '../protocol/error-codes.js'
import type { Observation, WriteOp } from '../protocol/messages.js'
import { quotaRefusal, type ProviderCounts, type QuotaLimits } from './quota.js'

/** A provider as it will be stored once batch.ts gives the change its revision. */
export type Draft = Omit<Provider, 'revision'>
export interface PendingChange { event: EventKind, provider: Draft }
export type Lookup = (id: string) => Provider | undefined

export const ErrorCodes = {
  conflict: Errors.providerConflict.code,
  notFound: Errors.providerNotFound.code,
  invalid: Errors.invalidRegistration.code,
  noTtlCheck: Errors.noTtlCheck.code
} as const

/** The reason on the `deregistered` event of a provider removed by its deregisterAfterMs. */
export const REAPED_REASON = 'down-too-long'
/** The reason on the `down` event of a ttl-checked provider whose renewal did not come in time. */
export const TTL_EXPIRED_REASON = 'ttl-expired'

export type WriteDecision =
  | { ok: false, statusCode: number, code: string, message: string }
  /** `change` is null for an idempotent write; `current` is then the stored provider. */
  | { ok: true, statusCode: number, change: PendingChange | null, current?: Provider }

/** The quotas and the counts they are checked against (quota.ts), including the earlier
 *  changes of the batch being decided. */
export interface Quota { limits: QuotaLimits, counts: ProviderCounts }

export function decideWrite (lookup: Lookup, op: WriteOp, now: number, quota?: Quota): WriteDecision {
  const existing = lookup(op.id)
  if (existing !== undefined && existing.service !== op.service) {
    return {
      ok: false,
      statusCode: op.type === 'register' ? Errors.providerConflict.status : Errors.providerNotFound.status,
      code: op.type === 'register' ? ErrorCodes.conflict : ErrorCodes.notFound,
      message: op.type === 'register'
        ? `provider '${op.id}' is already registered under service '${existing.service}'`
        : `provider '${op.id}' is not registered under service '${op.service}'`
    }
  }
  if (op.type !== 'register' && existing === undefined) {
    return { ok: false, statusCode: Errors.providerNotFound.status, code: ErrorCodes.notFound, message: `provider '${op.id}' is not registered under service '${op.service}'` }
  }
  const stamp = new Date(now).toISOString()
  switch (op.type) {
    case 'deregister':
      return { ok: true, statusCode: 200, change: { event: 'deregistered', provider: withoutRevision(existing as Provider) } }
    case 'maintenance':
      return decideMaintenance(existing as Provider, op.enabled, op.reason, stamp)
    case 'renew':
      if ((existing as Provider).check?.type !== 'ttl') {
        return {
          ok: false,
          statusCode: Errors.noTtlCheck.status,
          code: ErrorCodes.noTtlCheck,
          message: `provider '${op.id}' has no ttl check to renew (register it with "check": { "type": "ttl", "ttlMs": … })`
        }
      }
      // Validation only: batch.ts renews the TTL in memory and, if the provider was not up,
      // decides the `up` through decideObservation like any other observation.
      return { ok: true, statusCode: 200, change: null, current: existing as Provider }
    case 'register':
      break
  }
  const problem = registrationProblem(op.spec)
  if (problem !== null) return { ok: false, statusCode: Errors.invalidRegistration.status, code: ErrorCodes.invalid, message: problem }
  const spec = withDefaults(op.spec)
  if (existing === undefined) {
    // Only a new provider is counted: an update of an existing one is never refused by a quota.
    const refusal = quota === undefined ? null : quotaRefusal(quota.counts, op.service, quota.limits)
    if (refusal !== null) return { ok: false, ...refusal }
    const provider: Draft = { id: op.id, service: op.service, ...spec, state: 'pending', stateSince: stamp, lastSeen: null }
    return { ok: true, statusCode: 201, change: { event: 'registered', provider } }
  }
  if (sameSpec(existing, spec)) return { ok: true, statusCode: 200, change: null, current: existing }
  // A new presence source (heartbeat endpoint or interval, or check) means what was known about
  // liveness no longer applies: the provider is pending again until its first sign of life there.
  // A provider in maintenance stays there: only the operator takes it out.
  const provider: Draft = { ...withoutSpec(existing), ...spec }
  if (!sameWatch(existing, spec) && existing.state !== 'maintenance') {
    Object.assign(provider, { state: 'pending', stateSince: stamp, lastSeen: null })
    clearPresenceDetail(provider)
  }
  return { ok: true, statusCode: 200, change: { event: 'updated', provider } }
}

/** Maintenance on: state `maintenance` (event `maintenance`) with the operator's note as reason.
 *  Off: `pending` (event `updated`), until the provider's watcher or its next renewal says
 *  where it really is. Either is a no-op when the provider is already in that mode. */
function decideMaintenance (existing: Provider, enabled: boolean, reason: string | undefined, stamp: string): WriteDecision {
  const inMaintenance = existing.state === 'maintenance'
  if (enabled === inMaintenance) return { ok: true, statusCode: 200, change: null, current: existing }
  const provider: Draft = withoutRevision(existing)
  clearPresenceDetail(provider)
  provider.stateSince = stamp
  if (enabled) {
    provider.state = 'maintenance'
    if (reason !== undefined && reason !== '') provider.reason = reason
    return { ok: true, statusCode: 200, change: { event: 'maintenance', provider } }
  }
  provider.state = 'pending'
  return { ok: true, statusCode: 200, change: { event: 'updated', provider } }
}

/** A provider with a deregisterAfterMs that has been down at least that long is removed, with
 *  reason `down-too-long` on its `deregistered` event. Time is measured from `stateSince`, which
 *  is stored, so a leader restart neither resets nor forgets the clock. */
export function decideReap (lookup: Lookup, id: string, now: number): PendingChange | null {
  const p = lookup(id)
  if (p === undefined || p.state !== 'down' || p.deregisterAfterMs === undefined) return null
  if (now - Date.parse(p.stateSince) < p.deregisterAfterMs) return null
  const provider = withoutRevision(p)
  provider.reason = REAPED_REASON
  delete provider.detail
  return { event: 'deregistered', provider }
}

/** What the leader concludes from an observation: the worker's, or for a flapping provider
 *  `down` with reason `flapping` (flap-damping.ts), or its TTL tracker's (`ttl-expired`). */
export type Judgement = Omit<Observation, 'reason'> & { reason?: string }

/** An observation changes the state only when it differs from what is stored (or turns a down
 *  provider into a flapping one); a repeated or stale report is a no-op, which makes the
 *  worker's resends safe. */
export function decideObservation (lookup: Lookup, obs: Judgement, now: number): PendingChange | null {
  const existing = lookup(obs.providerId)
  if (existing === undefined || existing.state === 'maintenance') return null
  if (obs.state === 'pending') return null
  // Entering or leaving a flapping hold while down changes the reason clients see.
  const flappingChanged = obs.state === 'down' && existing.state === 'down' &&
    (obs.reason === 'flapping') !== (existing.reason === 'flapping')
  if (obs.state === existing.state && !flappingChanged) return null
  const lastSeen = obs.lastSeen === null ? existing.lastSeen : new Date(obs.lastSeen).toISOString()
  const provider: Draft = withoutRevision(existing)
  clearPresenceDetail(provider)
  Object.assign(provider, { state: obs.state, stateSince: new Date(now).toISOString(), lastSeen })
  if (obs.state === 'down') {
    if (obs.reason !== undefined) provider.reason = obs.reason
    if (obs.detail !== undefined) provider.detail = obs.detail
    if (obs.detectedAfterMs !== undefined) provider.detectedAfterMs = obs.detectedAfterMs
  }
  return { event: obs.state, provider }
}

export function withDefaults (spec: ProviderSpec): ProviderRecordSpec {
  return {
    host: spec.host,
    port: spec.port,
    protocol: spec.protocol,
    ...(spec.heartbeat === undefined ? {} : { heartbeat: spec.heartbeat }),
    heartbeatIntervalMs: spec.heartbeatIntervalMs ?? HEARTBEAT_INTERVAL_DEFAULT_MS,
    tags: spec.tags ?? [],
    meta: spec.meta ?? {},
    ...(spec.check === undefined ? {} : { check: spec.check }),
    ...(spec.deregisterAfterMs === undefined ? {} : { deregisterAfterMs: spec.deregisterAfterMs })
  }
}

/** Whether the provider is watched the same way: same heartbeat endpoint and interval, same
 *  check, and for an http or tcp check (which probes host:port) the same host and port. */
export function sameWatch (p: Provider, spec: ProviderRecordSpec): boolean {
  const probed = spec.check !== undefined && spec.check.type !== 'ttl'
  return p.heartbeat === spec.heartbeat && p.heartbeatIntervalMs === spec.heartbeatIntervalMs &&
    canonical(p.check) === canonical(spec.check) && (!probed || (p.host === spec.host && p.port === spec.port))
}

function sameSpec (p: Provider, spec: ProviderRecordSpec): boolean {
  return p.host === spec.host && p.port === spec.port && p.protocol === spec.protocol &&
    sameWatch(p, spec) && p.deregisterAfterMs === spec.deregisterAfterMs &&
    JSON.stringify(p.tags) === JSON.stringify(spec.tags) &&
    canonical(p.meta) === canonical(spec.meta)
}

/** JSON with object keys sorted: equal for equal values whatever the key order. */
function canonical (value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v) ?? 'undefined'
}

/** Drops what described the previous state (why it was down, how late that was noticed). */
function clearPresenceDetail (p: Draft): void {
  delete p.reason
  delete p.detail
  delete p.detectedAfterMs
}

/** The provider without its registration's optional fields, so that an update that drops one
 *  (no more check, no more deregisterAfterMs) really removes it. */
function withoutSpec (p: Provider): Draft {
  const { revision: _revision, heartbeat: _heartbeat, check: _check, deregisterAfterMs: _after, ...rest } = p
  return rest
}

function withoutRevision (p: Provider): Draft {
  const { revision: _revision, ...rest } = p
  return rest
}
