// The leader's pure decision core: given the current registry and one request (a write from a
// gateway or an observation from a worker), decide the change it causes, if any. It never
// assigns revisions, touches storage or sockets: the shell batches decisions, numbers them,
// commits them, and only then makes them visible.
import {
  HEARTBEAT_INTERVAL_DEFAULT_MS, type EventKind, type Provider, type ProviderSpec
} from '../protocol/model.js'
import type { Observation, WriteOp } from '../protocol/messages.js'

/** A provider as it will be stored once the shell gives the change its revision. */
export type Draft = Omit<Provider, 'revision'>
export interface PendingChange { event: EventKind, provider: Draft }
export type Lookup = (id: string) => Provider | undefined

export const ErrorCodes = {
  conflict: 'ROSTER_ERR_PROVIDER_CONFLICT',
  notFound: 'ROSTER_ERR_PROVIDER_NOT_FOUND'
} as const

export type WriteDecision =
  | { ok: false, statusCode: number, code: string, message: string }
  /** `change` is null for an idempotent re-registration; `current` is then the stored provider. */
  | { ok: true, statusCode: number, change: PendingChange | null, current?: Provider }

export function decideWrite (lookup: Lookup, op: WriteOp, now: number): WriteDecision {
  const existing = lookup(op.id)
  if (existing !== undefined && existing.service !== op.service) {
    return {
      ok: false,
      statusCode: op.type === 'register' ? 409 : 404,
      code: op.type === 'register' ? ErrorCodes.conflict : ErrorCodes.notFound,
      message: op.type === 'register'
        ? `provider '${op.id}' is already registered under service '${existing.service}'`
        : `provider '${op.id}' is not registered under service '${op.service}'`
    }
  }
  if (op.type === 'deregister') {
    if (existing === undefined) {
      return { ok: false, statusCode: 404, code: ErrorCodes.notFound, message: `provider '${op.id}' is not registered under service '${op.service}'` }
    }
    return { ok: true, statusCode: 200, change: { event: 'deregistered', provider: withoutRevision(existing) } }
  }
  const spec = withDefaults(op.spec)
  const stamp = new Date(now).toISOString()
  if (existing === undefined) {
    const provider: Draft = { id: op.id, service: op.service, ...spec, state: 'pending', stateSince: stamp, lastSeen: null }
    return { ok: true, statusCode: 201, change: { event: 'registered', provider } }
  }
  if (sameSpec(existing, spec)) return { ok: true, statusCode: 200, change: null, current: existing }
  // A new heartbeat endpoint or interval means what was known about liveness no longer
  // applies: the provider is pending again until its first heartbeat there.
  const rewatch = existing.heartbeat !== spec.heartbeat || existing.heartbeatIntervalMs !== spec.heartbeatIntervalMs
  const provider: Draft = { ...withoutRevision(existing), ...spec }
  if (rewatch && existing.state !== 'maintenance') {
    Object.assign(provider, { state: 'pending', stateSince: stamp, lastSeen: null })
    delete provider.reason
    delete provider.detectedAfterMs
  }
  return { ok: true, statusCode: 200, change: { event: 'updated', provider } }
}

/** What the leader concludes from a worker's observation: the same, or, for a flapping
 *  provider, `down` with reason `flapping` (flap-damping.ts). */
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
  const { reason: _reason, detectedAfterMs: _detected, ...rest } = withoutRevision(existing)
  const provider: Draft = { ...rest, state: obs.state, stateSince: new Date(now).toISOString(), lastSeen }
  if (obs.state === 'down') {
    if (obs.reason !== undefined) provider.reason = obs.reason
    if (obs.detectedAfterMs !== undefined) provider.detectedAfterMs = obs.detectedAfterMs
  }
  return { event: obs.state, provider }
}

export function withDefaults (spec: ProviderSpec): Required<ProviderSpec> {
  return {
    host: spec.host,
    port: spec.port,
    protocol: spec.protocol,
    heartbeat: spec.heartbeat,
    heartbeatIntervalMs: spec.heartbeatIntervalMs ?? HEARTBEAT_INTERVAL_DEFAULT_MS,
    tags: spec.tags ?? [],
    meta: spec.meta ?? {}
  }
}

function sameSpec (p: Provider, spec: Required<ProviderSpec>): boolean {
  return p.host === spec.host && p.port === spec.port && p.protocol === spec.protocol &&
    p.heartbeat === spec.heartbeat && p.heartbeatIntervalMs === spec.heartbeatIntervalMs &&
    JSON.stringify(p.tags) === JSON.stringify(spec.tags) &&
    JSON.stringify(sortKeys(p.meta)) === JSON.stringify(sortKeys(spec.meta))
}

function sortKeys (o: Record<string, string>): [string, string][] {
  return Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
}

function withoutRevision (p: Provider): Draft {
  const { revision: _revision, ...rest } = p
  return rest
}
