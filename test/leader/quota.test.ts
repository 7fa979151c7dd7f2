// Provider quotas in the leader's pure core (server/leader/quota.ts, registry.ts decideWrite): a
// new provider beyond either quota is a 429 naming it; an update never is; the counts follow
// registrations and deregistrations, and a batch's overlay counts its own changes first.
import { describe, expect, it } from 'vitest'
import type { Provider } from '../../server/protocol/model.js'
import type { WriteOp } from '../../server/protocol/messages.js'
import { createProviderCounts, type QuotaLimits } from '../../server/leader/quota.js'
import { decideWrite, type Lookup } from '../../server/leader/registry.js'

const T0 = Date.parse('2026-11-27T10:00:00.000Z')
const spec = { host: '127.0.0.1', port: 8080, protocol: 'http' as const, heartbeat: 'tcp://127.0.0.1:9100' }
const register = (service: string, id: string, port = 8080): WriteOp => ({ type: 'register', service, id, spec: { ...spec, port } })
const limits: QuotaLimits = { maxProvidersPerService: 2, maxProviders: 3 }

function stored (service: string, id: string): Provider {
  return { id, service, ...spec, heartbeatIntervalMs: 1000, tags: [], meta: {}, state: 'up', stateSince: new Date(T0).toISOString(), lastSeen: null, revision: 1 }
}

describe('quotas', () => {
  const existing = [stored('a', 'a-1'), stored('a', 'a-2'), stored('b', 'b-1')]
  const lookup: Lookup = (id) => existing.find((p) => p.id === id)
  const counts = createProviderCounts(existing.map((p) => p.service))

  it('a new provider beyond the service quota is 429 ROSTER_ERR_QUOTA_SERVICE, naming the quota and its value', () => {
    expect(decideWrite(lookup, register('a', 'a-3'), T0, { limits, counts })).toEqual({
      ok: false,
      statusCode: 429,
      code: 'ROSTER_ERR_QUOTA_SERVICE',
      message: "service 'a' already has 2 providers, its quota (--max-providers-per-service 2); deregister one first"
    })
  })

  it('a new provider beyond the total quota is 429 ROSTER_ERR_QUOTA_TOTAL', () => {
    expect(decideWrite(lookup, register('c', 'c-1'), T0, { limits, counts })).toMatchObject({
      ok: false, statusCode: 429, code: 'ROSTER_ERR_QUOTA_TOTAL', message: expect.stringContaining('--max-providers 3')
    })
  })

  it('an update of an existing provider is never refused by a quota', () => {
    expect(decideWrite(lookup, register('a', 'a-1', 9999), T0, { limits, counts })).toMatchObject({ ok: true, statusCode: 200, change: { event: 'updated' } })
    expect(decideWrite(lookup, register('a', 'a-1'), T0, { limits, counts })).toMatchObject({ ok: true, statusCode: 200, change: null })
  })

  it("a batch's overlay counts its own registrations and deregistrations, and leaves the committed counts alone", () => {
    const base = createProviderCounts(['a'])
    const overlay = base.overlay()
    const roomy = { limits: { maxProvidersPerService: 2, maxProviders: 10 }, counts: overlay }
    expect(decideWrite(() => undefined, register('a', 'a-2'), T0, roomy)).toMatchObject({ ok: true, statusCode: 201 })
    overlay.note({ event: 'registered', provider: stored('a', 'a-2') })
    expect(decideWrite(() => undefined, register('a', 'a-3'), T0, roomy)).toMatchObject({ ok: false, code: 'ROSTER_ERR_QUOTA_SERVICE' })
    overlay.note({ event: 'deregistered', provider: stored('a', 'a-1') })
    expect(decideWrite(() => undefined, register('a', 'a-3'), T0, roomy)).toMatchObject({ ok: true, statusCode: 201 })
    expect([base.of('a'), base.total, overlay.of('a'), overlay.total]).toEqual([1, 1, 1, 1])
    overlay.note({ event: 'updated', provider: stored('a', 'a-2') })
    expect(overlay.total).toBe(1)
  })

  it('without quotas (the leader passes its defaults) nothing is counted', () => {
    expect(decideWrite(() => undefined, register('a', 'a-9'), T0)).toMatchObject({ ok: true, statusCode: 201 })
  })
})
