import { describe, expect, it } from 'vitest'
import { decideObservation, decideReap, decideWrite, type Lookup } from '../../server/leader/registry.js'
import type { Provider } from '../../server/protocol/model.js'

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

describe('decideWrite: deregisterAfterMs', () => {
  it('stores it, and changes it without touching the state', () => {
    const d = decideWrite(lookupOf(), { type: 'register', service: 'orders', id: 'orders-1', spec: { ...spec, deregisterAfterMs: 60_000 } }, T0)
    expect(d).toMatchObject({ ok: true, statusCode: 201, change: { provider: { deregisterAfterMs: 60_000, state: 'pending' } } })
    const p = stored()
    const changed = decideWrite(lookupOf(p), { type: 'register', service: 'orders', id: 'orders-1', spec: { ...spec, deregisterAfterMs: 5000 } }, T0 + 5)
    expect(changed).toMatchObject({ ok: true, change: { event: 'updated', provider: { state: 'up', deregisterAfterMs: 5000 } } })
    // Dropping it really removes it.
    const back = decideWrite(lookupOf({ ...p, deregisterAfterMs: 5000 }), { type: 'register', service: 'orders', id: 'orders-1', spec }, T0 + 5)
    if (!back.ok || back.change === null) throw new Error('expected a change')
    expect(back.change.provider).not.toHaveProperty('deregisterAfterMs')
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
