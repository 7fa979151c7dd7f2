import type { FastifyInstance } from 'fastify'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { buildGateway } from '../../server/gateway/app.js'
import { createReplica, type Replica } from '../../server/gateway/replica.js'
import { change, noLeader, provider } from './helpers.js'

let app: FastifyInstance
let replica: Replica

beforeEach(async () => {
  replica = createReplica()
  app = await buildGateway({ replica, leader: noLeader() }, { minRevisionWaitMs: 300 })
})

afterEach(async () => {
  await app.close()
})

function seed (): void {
  replica.loadSnapshot(40, [
    provider({ id: 'orders-1', service: 'orders', protocol: 'http', state: 'up', tags: ['blue', 'eu'], revision: 3 }),
    provider({ id: 'orders-2', service: 'orders', protocol: 'rpc', state: 'down', tags: ['blue'], revision: 7 }),
    provider({ id: 'orders-3', service: 'orders', protocol: 'http', state: 'pending', tags: ['green', 'eu'], revision: 9 }),
    provider({ id: 'billing-1', service: 'billing', protocol: 'pub', state: 'up', revision: 12 })
  ])
}

async function ids (url: string): Promise<string[]> {
  const res = await app.inject({ url })
  expect(res.statusCode).toBe(200)
  return (res.json() as { providers: { id: string }[] }).providers.map((p) => p.id)
}

describe('reads', () => {
  it('lists services with their provider and up counts, and says the revision', async () => {
    seed()
    const res = await app.inject({ url: '/v1/services' })
    expect(res.statusCode).toBe(200)
    expect(res.headers['x-roster-revision']).toBe('40')
    expect(res.json()).toEqual({
      revision: 40,
      services: [{ name: 'billing', providers: 1, up: 1 }, { name: 'orders', providers: 3, up: 1 }]
    })
  })

  it("lists a service's providers, filtered by state, protocol and every given tag", async () => {
    seed()
    const res = await app.inject({ url: '/v1/services/orders/providers' })
    expect(res.headers['x-roster-revision']).toBe('40')
    expect(res.json()).toMatchObject({ revision: 40 })
    expect(await ids('/v1/services/orders/providers')).toEqual(['orders-1', 'orders-2', 'orders-3'])
    expect(await ids('/v1/services/orders/providers?state=up')).toEqual(['orders-1'])
    expect(await ids('/v1/services/orders/providers?protocol=http')).toEqual(['orders-1', 'orders-3'])
    expect(await ids('/v1/services/orders/providers?tag=eu')).toEqual(['orders-1', 'orders-3'])
    expect(await ids('/v1/services/orders/providers?tag=blue&tag=eu')).toEqual(['orders-1'])
    expect(await ids('/v1/services/orders/providers?tag=blue&protocol=rpc&state=down')).toEqual(['orders-2'])
    expect(await ids('/v1/services/orders/providers?tag=red')).toEqual([])
  })

  it('answers an unknown service with an empty list', async () => {
    seed()
    const res = await app.inject({ url: '/v1/services/nobody/providers' })
    expect(res.statusCode).toBe(200)
    expect(res.json()).toEqual({ revision: 40, providers: [] })
  })

  it('returns one provider, whole, with the registry revision in the header', async () => {
    seed()
    const res = await app.inject({ url: '/v1/services/orders/providers/orders-2' })
    expect(res.statusCode).toBe(200)
    expect(res.headers['x-roster-revision']).toBe('40')
    expect(res.json()).toEqual(provider({ id: 'orders-2', service: 'orders', protocol: 'rpc', state: 'down', tags: ['blue'], revision: 7 }))
  })

  it('returns a provider watched by a check, with its check, deregisterAfterMs and failure detail', async () => {
    const checked = provider({ id: 'orders-7', state: 'down', reason: 'check-failed', detail: 'HTTP 503', detectedAfterMs: 12, deregisterAfterMs: 60_000 })
    delete checked.heartbeat
    const ttl = provider({ id: 'orders-8', check: { type: 'ttl', ttlMs: 1000 } })
    delete ttl.heartbeat
    replica.loadSnapshot(3, [
      { ...checked, check: { type: 'http', path: '/health', intervalMs: 1000, timeoutMs: 200 } },
      { ...provider({ id: 'orders-9' }), check: { type: 'tcp', intervalMs: 500, timeoutMs: 100 } },
      ttl
    ])
    const res = await app.inject({ url: '/v1/services/orders/providers' })
    expect(res.statusCode).toBe(200)
    const [http, renewed, tcp] = res.json().providers
    expect(http).toEqual({ ...checked, check: { type: 'http', path: '/health', intervalMs: 1000, timeoutMs: 200 } })
    expect(http).not.toHaveProperty('heartbeat')
    expect(tcp.check).toEqual({ type: 'tcp', intervalMs: 500, timeoutMs: 100 })
    expect(renewed.check).toEqual({ type: 'ttl', ttlMs: 1000 })
  })

  it('answers 404 for an unknown provider, and for one under another service', async () => {
    seed()
    const unknown = await app.inject({ url: '/v1/services/orders/providers/orders-9' })
    expect(unknown.statusCode).toBe(404)
    expect(unknown.json()).toEqual({
      statusCode: 404,
      code: 'ROSTER_ERR_PROVIDER_NOT_FOUND',
      error: 'Not Found',
      message: "provider 'orders-9' is not registered under service 'orders'"
    })
    const elsewhere = await app.inject({ url: '/v1/services/billing/providers/orders-1' })
    expect(elsewhere.statusCode).toBe(404)
    expect(elsewhere.json().message).toMatch(/not registered under service 'billing'.*registered under 'orders'/)
  })

  it('reflects changes as the replica applies them', async () => {
    seed()
    replica.apply(change(41, 'deregistered', provider({ id: 'billing-1', service: 'billing' })))
    replica.apply(change(42, 'up', provider({ id: 'orders-2', service: 'orders', state: 'up' })))
    const res = await app.inject({ url: '/v1/services' })
    expect(res.headers['x-roster-revision']).toBe('42')
    expect(res.json()).toEqual({ revision: 42, services: [{ name: 'orders', providers: 3, up: 2 }] })
  })

  it("answers a service's list as JSON at the latest revision after changes to it and to other services", async () => {
    seed()
    const read = async (): Promise<{ revision: number, providers: Array<{ id: string, state: string }> }> => {
      const res = await app.inject({ url: '/v1/services/orders/providers' })
      expect(res.statusCode).toBe(200)
      expect(res.headers['content-type']).toBe('application/json; charset=utf-8')
      expect(res.headers['x-roster-revision']).toBe(String(replica.revision))
      return res.json()
    }
    expect(await read()).toMatchObject({ revision: 40, providers: [{ id: 'orders-1' }, { id: 'orders-2', state: 'down' }, { id: 'orders-3' }] })
    expect(await read()).toMatchObject({ revision: 40 })
    replica.apply(change(41, 'up', provider({ id: 'billing-1', service: 'billing', state: 'up' })))
    expect(await read()).toMatchObject({ revision: 41, providers: [{ id: 'orders-1' }, { id: 'orders-2', state: 'down' }, { id: 'orders-3' }] })
    replica.apply(change(42, 'up', provider({ id: 'orders-2', service: 'orders', state: 'up' })))
    replica.apply(change(43, 'deregistered', provider({ id: 'orders-3', service: 'orders' })))
    expect(await read()).toEqual({ revision: 43, providers: [expect.objectContaining({ id: 'orders-1' }), expect.objectContaining({ id: 'orders-2', state: 'up' })] })
    expect(await ids('/v1/services/orders/providers?state=up')).toEqual(['orders-1', 'orders-2'])
  })

  it('shows a lastSeen refresh at once, in the cached list too, at the same revision', async () => {
    seed()
    const read = async (url: string): Promise<{ revision: number, lastSeen: string | null }> => {
      const res = await app.inject({ url })
      expect(res.statusCode).toBe(200)
      const body = res.json()
      return { revision: Number(res.headers['x-roster-revision']), lastSeen: (body.providers?.[0] ?? body).lastSeen }
    }
    const list = '/v1/services/orders/providers'
    expect(await read(list)).toEqual({ revision: 40, lastSeen: null })
    const at = Date.parse('2026-11-27T10:05:00.000Z')
    expect(replica.refreshLastSeen([['orders-1', at]])).toBe(1)
    for (const url of [list, `${list}/orders-1`, `${list}?state=up`]) {
      expect(await read(url)).toEqual({ revision: 40, lastSeen: '2026-11-27T10:05:00.000Z' })
    }
  })

  it('answers 503 with Retry-After before the first snapshot', async () => {
    for (const url of ['/v1/services', '/v1/services/orders/providers', '/v1/services/orders/providers/orders-1']) {
      const res = await app.inject({ url })
      expect(res.statusCode).toBe(503)
      expect(res.headers['retry-after']).toBe('1')
      expect(res.json()).toMatchObject({ code: 'ROSTER_ERR_NOT_READY' })
    }
  })
})

describe('minRevision', () => {
  it('waits until the replica reaches the revision, then answers from it', async () => {
    seed()
    const pending = app.inject({ url: '/v1/services/orders/providers?minRevision=42' })
    // Applied while the request waits: the answer must include both changes.
    setTimeout(() => {
      replica.apply(change(41, 'registered', provider({ id: 'orders-4', service: 'orders' })))
      replica.apply(change(42, 'registered', provider({ id: 'orders-5', service: 'orders' })))
    }, 20)
    const res = await pending
    expect(res.statusCode).toBe(200)
    expect(res.headers['x-roster-revision']).toBe('42')
    expect(res.json().providers.map((p: { id: string }) => p.id)).toEqual(['orders-1', 'orders-2', 'orders-3', 'orders-4', 'orders-5'])
  })

  it('answers at once when the revision is already reached', async () => {
    seed()
    const res = await app.inject({ url: '/v1/services?minRevision=40' })
    expect(res.statusCode).toBe(200)
  })

  it('gives up with 504 and says the revision reached', async () => {
    seed()
    const res = await app.inject({ url: '/v1/services?minRevision=45' })
    expect(res.statusCode).toBe(504)
    expect(res.json()).toEqual({
      statusCode: 504,
      code: 'ROSTER_ERR_REVISION_TIMEOUT',
      error: 'Gateway Timeout',
      message: 'minRevision 45 not reached within 300 ms; this gateway has reached revision 40'
    })
  })
})

describe('health', () => {
  it('is ok without a leader, and says so', async () => {
    const before = await app.inject({ url: '/v1/health' })
    expect(before.statusCode).toBe(200)
    expect(before.json()).toEqual({ status: 'ok', leader: 'unavailable', revision: 0 })
    seed()
    const after = await app.inject({ url: '/v1/health' })
    expect(after.json()).toEqual({ status: 'ok', leader: 'unavailable', revision: 40 })
    expect(after.headers['x-roster-revision']).toBe('40')
  })

  it('reports a connected leader', async () => {
    const connected = await buildGateway({ replica, leader: { ...noLeader(), connected: true } })
    try {
      expect((await connected.inject({ url: '/v1/health' })).json()).toMatchObject({ leader: 'connected' })
    } finally {
      await connected.close()
    }
  })
})
