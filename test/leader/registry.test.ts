import { describe, expect, it } from 'vitest'
import { decideObservation, decideReap, decideWrite, type Lookup } from '../../server/leader/registry.js'
import { registrationProblem, type Provider } from '../../server/protocol/model.js'

const spec = { host: '10.0.0.5', port: 8080, protocol: 'http' as const, heartbeat: 'tcp://10.0.0.5:9100' }
const T0 = Date.parse('2026-11-27T10:00:00.000Z')

function stored (over: Partial<Provider> = {}): Provider {
  return {
    id: 'orders-1', service: 'orders', ...spec, heartbeatIntervalMs: 1000, tags: [], meta: {},
    state: 'up', stateSince: new Date(T0).toISOString(), lastSeen: new Date(T0).toISOString(), revision: 7, ...over
  }
}
const lookupOf = (...ps: Provider[]): Lookup => (id) => ps.find((p) => p.id === id)

describe('decideWrite', () => {
  it('registers a new provider as pending with defaults filled in', () => {
    const d = decideWrite(lookupOf(), { type: 'register', service: 'orders', id: 'orders-1', spec }, T0)
    expect(d).toMatchObject({ ok: true, statusCode: 201, change: { event: 'registered' } })
    if (!d.ok || d.change === null) throw new Error('expected a change')
    expect(d.change.provider).toEqual({
      id: 'orders-1', service: 'orders', ...spec, heartbeatIntervalMs: 1000, tags: [], meta: {},
      state: 'pending', stateSince: '2026-11-27T10:00:00.000Z', lastSeen: null
    })
  })

  it('treats an identical re-registration as a no-op that returns the stored provider', () => {
    const p = stored()
    const d = decideWrite(lookupOf(p), { type: 'register', service: 'orders', id: 'orders-1', spec: { ...spec, meta: {} } }, T0 + 5)
    expect(d).toEqual({ ok: true, statusCode: 200, change: null, current: p })
  })

  it('keeps the state on an update that does not touch the heartbeat', () => {
    const d = decideWrite(lookupOf(stored()), { type: 'register', service: 'orders', id: 'orders-1', spec: { ...spec, tags: ['blue'] } }, T0 + 5)
    expect(d).toMatchObject({ ok: true, statusCode: 200, change: { event: 'updated', provider: { state: 'up', tags: ['blue'] } } })
  })

  it('makes the provider pending again when its heartbeat endpoint changes', () => {
    const d = decideWrite(lookupOf(stored()), { type: 'register', service: 'orders', id: 'orders-1', spec: { ...spec, heartbeat: 'tcp://10.0.0.5:9200' } }, T0 + 5)
    expect(d).toMatchObject({ ok: true, change: { event: 'updated', provider: { state: 'pending', lastSeen: null } } })
  })

  it('refuses the same id under another service with 409', () => {
    const d = decideWrite(lookupOf(stored()), { type: 'register', service: 'billing', id: 'orders-1', spec }, T0)
    expect(d).toMatchObject({ ok: false, statusCode: 409, code: 'ROSTER_ERR_PROVIDER_CONFLICT' })
  })

  it('deregisters a known provider and answers 404 for an unknown one or another service', () => {
    const p = stored()
    expect(decideWrite(lookupOf(p), { type: 'deregister', service: 'orders', id: 'orders-1' }, T0))
      .toMatchObject({ ok: true, statusCode: 200, change: { event: 'deregistered', provider: { id: 'orders-1' } } })
    expect(decideWrite(lookupOf(), { type: 'deregister', service: 'orders', id: 'orders-1' }, T0))
      .toMatchObject({ ok: false, statusCode: 404, code: 'ROSTER_ERR_PROVIDER_NOT_FOUND' })
    expect(decideWrite(lookupOf(p), { type: 'deregister', service: 'billing', id: 'orders-1' }, T0))
      .toMatchObject({ ok: false, statusCode: 404 })
  })
})

describe('decideWrite: checks and deregisterAfterMs', () => {
  const { heartbeat: _heartbeat, ...noHeartbeat } = spec
  const http = { type: 'http' as const, path: '/health', intervalMs: 1000, timeoutMs: 200 }

  it('registers a provider watched by a check instead of a heartbeat, with its deregisterAfterMs', () => {
    const d = decideWrite(lookupOf(), { type: 'register', service: 'orders', id: 'orders-1', spec: { ...noHeartbeat, check: http, deregisterAfterMs: 60_000 } }, T0)
    if (!d.ok || d.change === null) throw new Error('expected a change')
    expect(d.change.provider).toEqual({
      id: 'orders-1', service: 'orders', ...noHeartbeat, heartbeatIntervalMs: 1000, tags: [], meta: {}, check: http,
      deregisterAfterMs: 60_000, state: 'pending', stateSince: '2026-11-27T10:00:00.000Z', lastSeen: null
    })
  })

  it('refuses a registration with neither a heartbeat nor a check, or with both, naming the field', () => {
    expect(decideWrite(lookupOf(), { type: 'register', service: 'orders', id: 'orders-1', spec: noHeartbeat }, T0))
      .toMatchObject({ ok: false, statusCode: 400, code: 'ROSTER_ERR_INVALID_REGISTRATION', message: expect.stringContaining("'heartbeat'") })
    expect(decideWrite(lookupOf(), { type: 'register', service: 'orders', id: 'orders-1', spec: { ...spec, check: http } }, T0))
      .toMatchObject({ ok: false, statusCode: 400, message: expect.stringMatching(/^body\/check /) })
  })

  it('treats a re-registration with the same check in another key order as a no-op', () => {
    const p = stored({ heartbeat: undefined, check: http })
    delete p.heartbeat
    const reordered = { timeoutMs: 200, intervalMs: 1000, path: '/health', type: 'http' as const }
    expect(decideWrite(lookupOf(p), { type: 'register', service: 'orders', id: 'orders-1', spec: { ...noHeartbeat, check: reordered } }, T0))
      .toEqual({ ok: true, statusCode: 200, change: null, current: p })
  })

  it('makes the provider pending again when its check changes, but not when only deregisterAfterMs does', () => {
    const p = stored({ check: http })
    delete p.heartbeat
    const changed = decideWrite(lookupOf(p), { type: 'register', service: 'orders', id: 'orders-1', spec: { ...noHeartbeat, check: { ...http, path: '/ready' } } }, T0 + 5)
    expect(changed).toMatchObject({ ok: true, change: { event: 'updated', provider: { state: 'pending', lastSeen: null, check: { path: '/ready' } } } })
    // An http or tcp check probes host:port: moving the provider is a new check too.
    const moved = decideWrite(lookupOf(p), { type: 'register', service: 'orders', id: 'orders-1', spec: { ...noHeartbeat, port: 9090, check: http } }, T0 + 5)
    expect(moved).toMatchObject({ ok: true, change: { event: 'updated', provider: { state: 'pending', port: 9090 } } })
    const reaped = decideWrite(lookupOf(p), { type: 'register', service: 'orders', id: 'orders-1', spec: { ...noHeartbeat, check: http, deregisterAfterMs: 5000 } }, T0 + 5)
    expect(reaped).toMatchObject({ ok: true, change: { event: 'updated', provider: { state: 'up', deregisterAfterMs: 5000 } } })
    // Dropping an optional field really removes it.
    const back = decideWrite(lookupOf({ ...p, deregisterAfterMs: 5000 }), { type: 'register', service: 'orders', id: 'orders-1', spec: { ...noHeartbeat, check: http } }, T0 + 5)
    if (!back.ok || back.change === null) throw new Error('expected a change')
    expect(back.change.provider).not.toHaveProperty('deregisterAfterMs')
  })

  it('renews only a provider with a ttl check: 404 unknown, 409 without a ttl check', () => {
    const ttl = stored({ check: { type: 'ttl', ttlMs: 1000 }, state: 'pending' })
    delete ttl.heartbeat
    expect(decideWrite(lookupOf(ttl), { type: 'renew', service: 'orders', id: 'orders-1' }, T0)).toEqual({ ok: true, statusCode: 200, change: null, current: ttl })
    expect(decideWrite(lookupOf(stored()), { type: 'renew', service: 'orders', id: 'orders-1' }, T0))
      .toMatchObject({ ok: false, statusCode: 409, code: 'ROSTER_ERR_NO_TTL_CHECK' })
    expect(decideWrite(lookupOf(), { type: 'renew', service: 'orders', id: 'orders-1' }, T0)).toMatchObject({ ok: false, statusCode: 404 })
    expect(decideWrite(lookupOf(ttl), { type: 'renew', service: 'billing', id: 'orders-1' }, T0)).toMatchObject({ ok: false, statusCode: 404 })
  })
})

describe('registrationProblem', () => {
  const base = { host: 'h', port: 1, protocol: 'http' as const }
  it('names the field that breaks a cross-field rule', () => {
    expect(registrationProblem({ ...base, heartbeat: 'tcp://h:1' })).toBeNull()
    expect(registrationProblem({ ...base, check: { type: 'ttl', ttlMs: 1000 } })).toBeNull()
    expect(registrationProblem(base)).toMatch(/^body must have required property 'heartbeat' or 'check'/)
    expect(registrationProblem({ ...base, heartbeat: 'tcp://h:70000' })).toBe('body/heartbeat port must be between 1 and 65535, got 70000')
    expect(registrationProblem({ ...base, check: { type: 'tcp', intervalMs: 100, timeoutMs: 100 } }))
      .toBe('body/check/timeoutMs must be less than body/check/intervalMs (100), got 100')
  })
})

describe('maintenance', () => {
  const on = { type: 'maintenance' as const, service: 'orders', id: 'orders-1', enabled: true, reason: 'kernel upgrade' }
  const off = { type: 'maintenance' as const, service: 'orders', id: 'orders-1', enabled: false }

  it('puts a provider in maintenance with the operator\'s reason, and is a no-op when it already is', () => {
    const d = decideWrite(lookupOf(stored({ state: 'down', reason: 'silent', detectedAfterMs: 3000 })), on, T0 + 5)
    if (!d.ok || d.change === null) throw new Error('expected a change')
    expect(d.change.event).toBe('maintenance')
    expect(d.change.provider).toMatchObject({ state: 'maintenance', reason: 'kernel upgrade', stateSince: new Date(T0 + 5).toISOString(), lastSeen: new Date(T0).toISOString() })
    expect(d.change.provider).not.toHaveProperty('detectedAfterMs')
    const held = stored({ state: 'maintenance', reason: 'kernel upgrade' })
    expect(decideWrite(lookupOf(held), { ...on, reason: 'another note' }, T0)).toEqual({ ok: true, statusCode: 200, change: null, current: held })
    expect(decideWrite(lookupOf(stored()), off, T0)).toEqual({ ok: true, statusCode: 200, change: null, current: stored() })
  })

  it('takes a provider out of maintenance to pending (event updated), without the note', () => {
    const d = decideWrite(lookupOf(stored({ state: 'maintenance', reason: 'kernel upgrade' })), off, T0 + 9)
    if (!d.ok || d.change === null) throw new Error('expected a change')
    expect(d.change.event).toBe('updated')
    expect(d.change.provider).toMatchObject({ state: 'pending', stateSince: new Date(T0 + 9).toISOString() })
    expect(d.change.provider).not.toHaveProperty('reason')
  })

  it('answers 404 for an unknown provider or another service', () => {
    expect(decideWrite(lookupOf(), on, T0)).toMatchObject({ ok: false, statusCode: 404, code: 'ROSTER_ERR_PROVIDER_NOT_FOUND' })
    expect(decideWrite(lookupOf(stored()), { ...on, service: 'billing' }, T0)).toMatchObject({ ok: false, statusCode: 404 })
  })

  it('keeps maintenance and its note through a re-registration that moves the heartbeat', () => {
    const d = decideWrite(lookupOf(stored({ state: 'maintenance', reason: 'kernel upgrade' })),
      { type: 'register', service: 'orders', id: 'orders-1', spec: { ...spec, heartbeat: 'tcp://10.0.0.5:9200' } }, T0 + 5)
    expect(d).toMatchObject({ ok: true, change: { event: 'updated', provider: { state: 'maintenance', reason: 'kernel upgrade', heartbeat: 'tcp://10.0.0.5:9200' } } })
  })
})

describe('decideReap', () => {
  it('removes a provider down at least its deregisterAfterMs, with reason down-too-long, and nothing else', () => {
    const down = stored({ state: 'down', reason: 'silent', stateSince: new Date(T0).toISOString(), deregisterAfterMs: 5000 })
    expect(decideReap(lookupOf(down), 'orders-1', T0 + 4999)).toBeNull()
    expect(decideReap(lookupOf(down), 'orders-1', T0 + 5000)).toMatchObject({ event: 'deregistered', provider: { id: 'orders-1', state: 'down', reason: 'down-too-long' } })
    expect(decideReap(lookupOf({ ...down, state: 'up' }), 'orders-1', T0 + 60_000)).toBeNull()
    expect(decideReap(lookupOf({ ...down, state: 'maintenance' }), 'orders-1', T0 + 60_000)).toBeNull()
    const { deregisterAfterMs: _d, ...forever } = down
    expect(decideReap(lookupOf(forever), 'orders-1', T0 + 60_000)).toBeNull()
    expect(decideReap(lookupOf(), 'orders-1', T0 + 60_000)).toBeNull()
  })
})

describe('decideObservation', () => {
  it('turns a differing observation into a state change carrying lastSeen', () => {
    const c = decideObservation(lookupOf(stored()), { providerId: 'orders-1', state: 'down', lastSeen: T0 + 100, reason: 'silent', detectedAfterMs: 3000 }, T0 + 3100)
    expect(c).toMatchObject({
      event: 'down',
      provider: { state: 'down', stateSince: new Date(T0 + 3100).toISOString(), lastSeen: new Date(T0 + 100).toISOString(), reason: 'silent', detectedAfterMs: 3000 }
    })
  })

  it('marks a down provider as flapping, and back to its real reason when the hold ends', () => {
    const down = stored({ state: 'down', reason: 'disconnected' })
    const held = decideObservation(lookupOf(down), { providerId: 'orders-1', state: 'down', lastSeen: T0, reason: 'flapping' }, T0)
    expect(held).toMatchObject({ event: 'down', provider: { reason: 'flapping' } })
    const flapping = stored({ state: 'down', reason: 'flapping' })
    expect(decideObservation(lookupOf(flapping), { providerId: 'orders-1', state: 'down', lastSeen: T0, reason: 'flapping' }, T0)).toBeNull()
    expect(decideObservation(lookupOf(flapping), { providerId: 'orders-1', state: 'down', lastSeen: T0, reason: 'silent' }, T0))
      .toMatchObject({ event: 'down', provider: { reason: 'silent' } })
  })

  it('carries a failed check\'s detail on down, and drops it when the provider comes back', () => {
    const c = decideObservation(lookupOf(stored()), { providerId: 'orders-1', state: 'down', lastSeen: T0, reason: 'check-failed', detail: 'HTTP 503', detectedAfterMs: 10 }, T0 + 10)
    expect(c?.provider).toMatchObject({ state: 'down', reason: 'check-failed', detail: 'HTTP 503', detectedAfterMs: 10 })
    const back = decideObservation(lookupOf(stored({ state: 'down', reason: 'check-failed', detail: 'HTTP 503' })), { providerId: 'orders-1', state: 'up', lastSeen: T0 + 20 }, T0 + 20)
    expect(back?.provider).not.toHaveProperty('detail')
  })

  it('clears the down reason when the provider comes back', () => {
    const down = stored({ state: 'down', reason: 'disconnected', detectedAfterMs: 40 })
    const c = decideObservation(lookupOf(down), { providerId: 'orders-1', state: 'up', lastSeen: T0 + 5000 }, T0 + 5000)
    expect(c?.provider).not.toHaveProperty('reason')
    expect(c?.provider).not.toHaveProperty('detectedAfterMs')
  })

  it('ignores repeats, pending observations, unknown providers and providers in maintenance', () => {
    const obs = { providerId: 'orders-1', state: 'up' as const, lastSeen: T0 }
    expect(decideObservation(lookupOf(stored()), obs, T0)).toBeNull()
    expect(decideObservation(lookupOf(stored()), { ...obs, state: 'pending' }, T0)).toBeNull()
    expect(decideObservation(lookupOf(), obs, T0)).toBeNull()
    expect(decideObservation(lookupOf(stored({ state: 'maintenance' })), { ...obs, state: 'down' }, T0)).toBeNull()
  })
})
