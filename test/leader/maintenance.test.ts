// Operators' tools through the real leader, on both backends: maintenance (a WRITE from a scripted
// gateway, the owning worker's ASSIGN, observations ignored meanwhile) and deregisterAfterMs (a
// provider down too long removed with reason down-too-long, also when the leader restarts). The
// peers are real DEALERs and a real SUB (scripted-follower.ts); assertions are on what they see.
import { beforeAll, expect, it } from 'vitest'
import { context } from 'zeromq'
import { TAKEOVER_SETTLE_MS } from '../../server/leader/leader.js'
import { createRegistryStore } from '../../server/store/registry-store.js'
import type { WriteOp } from '../../server/protocol/messages.js'
import type { Provider, ProviderSpec } from '../../server/protocol/model.js'
import { describeWithDatabase, type Backend } from '../helpers/postgres.js'
import { useLocalLeaders } from './local-leader.js'

beforeAll(() => { context.blocky = false })

const SPEC: ProviderSpec = { host: '127.0.0.1', port: 8080, protocol: 'http', heartbeat: 'tcp://127.0.0.1:39001', heartbeatIntervalMs: 100 }
const register = (id: string, spec: ProviderSpec = SPEC): WriteOp => ({ type: 'register', service: 'orders', id, spec })
const maintenance = (id: string, enabled: boolean, reason?: string): WriteOp =>
  ({ type: 'maintenance', service: 'orders', id, enabled, ...(reason === undefined ? {} : { reason }) })

describeWithDatabase('leader: maintenance and deregisterAfterMs', (backend: Backend) => {
  const { start, follower } = useLocalLeaders(backend)

  it('holds a provider in maintenance with the operator\'s note, ignores its watcher meanwhile, and releases it to pending', async () => {
    const { bind, gw, feed } = await start()
    const w = follower(bind, 'worker-m')
    await w.ready()
    expect(await gw.write(register('m-1'))).toMatchObject({ ok: true, statusCode: 201 })
    await w.next('ASSIGN', (b) => b.tasks.some((t) => t.providerId === 'm-1'), { timeoutMs: 5000 })
    w.report(1, [{ providerId: 'm-1', state: 'up', lastSeen: Date.now() }])
    await feed.nextChange((c) => c.provider.id === 'm-1' && c.event === 'up')

    const from = w.received.length
    const on = await gw.write(maintenance('m-1', true, 'kernel upgrade'))
    expect(on).toMatchObject({ ok: true, statusCode: 200, provider: { state: 'maintenance', reason: 'kernel upgrade' } })
    const held = await feed.nextChange((c) => c.event === 'maintenance')
    expect(on.ok && held.revision).toBe(on.ok && on.revision)
    // Its watcher is told, so that it does not report its own view merely because it differs.
    const assign = await w.next('ASSIGN', (b) => b.tasks.some((t) => t.providerId === 'm-1' && t.maintenance === true), { from })
    expect(assign.body.tasks.find((t) => t.providerId === 'm-1')).toMatchObject({ state: 'pending', maintenance: true })

    // The worker's reports change nothing while it is held; asking again changes nothing either.
    w.report(2, [{ providerId: 'm-1', state: 'down', lastSeen: Date.now(), reason: 'silent' }])
    await w.next('ACK', (b) => b.seq === 2)
    const again = await gw.write(maintenance('m-1', true, 'another note'))
    expect(again).toMatchObject({ ok: true, statusCode: 200, revision: on.ok ? on.revision : -1, provider: { reason: 'kernel upgrade' } })
    // A re-registration keeps it in maintenance.
    const updated = await gw.write(register('m-1', { ...SPEC, tags: ['blue'] }))
    expect(updated).toMatchObject({ ok: true, provider: { state: 'maintenance', reason: 'kernel upgrade', tags: ['blue'] } })
    expect(feed.changes().filter((c) => c.revision > (on.ok ? on.revision : 0)).map((c) => c.event)).toEqual(['updated'])

    const from2 = w.received.length
    const off = await gw.write(maintenance('m-1', false))
    expect(off).toMatchObject({ ok: true, statusCode: 200, provider: { state: 'pending' } })
    expect(off.ok && off.provider).not.toHaveProperty('reason')
    const released = await feed.nextChange((c) => c.revision === (off.ok ? off.revision : -1))
    expect(released.event).toBe('updated')
    const fresh = await w.next('ASSIGN', (b) => b.tasks.some((t) => t.providerId === 'm-1' && t.maintenance === undefined), { from: from2 })
    expect(fresh.body.tasks.find((t) => t.providerId === 'm-1')).toMatchObject({ state: 'pending' })
    // What the worker reports from now on counts again.
    w.report(3, [{ providerId: 'm-1', state: 'up', lastSeen: Date.now() }])
    await feed.nextChange((c) => c.provider.id === 'm-1' && c.event === 'up' && c.revision > released.revision)
    expect(await gw.write(maintenance('m-1', false))).toMatchObject({ ok: true, statusCode: 200, provider: { state: 'up' } })
    expect(await gw.write(maintenance('nobody', true))).toMatchObject({ ok: false, statusCode: 404, code: 'ROSTER_ERR_PROVIDER_NOT_FOUND' })
  })

  it('removes a provider that stayed down for its deregisterAfterMs, with reason down-too-long, and only then', async () => {
    const { bind, gw, feed } = await start()
    const w = follower(bind, 'worker-r')
    await w.ready()
    await gw.write(register('r-1', { ...SPEC, deregisterAfterMs: 1000 }))
    await gw.write(register('r-2', { ...SPEC, heartbeat: 'tcp://127.0.0.1:39002' }))
    await w.next('ASSIGN', (b) => b.tasks.length === 2, { timeoutMs: 5000 })
    // Both go down; only r-1 has a deregisterAfterMs.
    w.report(1, [
      { providerId: 'r-1', state: 'down', lastSeen: Date.now(), reason: 'disconnected' },
      { providerId: 'r-2', state: 'down', lastSeen: Date.now(), reason: 'disconnected' }
    ])
    const down = await feed.nextChange((c) => c.provider.id === 'r-1' && c.event === 'down')
    const gone = await feed.nextChange((c) => c.provider.id === 'r-1' && c.event === 'deregistered', { timeoutMs: 5000 })
    expect(gone.provider).toMatchObject({ state: 'down', reason: 'down-too-long', deregisterAfterMs: 1000 })
    const elapsed = Date.now() - Date.parse(down.provider.stateSince)
    expect(elapsed).toBeGreaterThanOrEqual(1000)
    const snap = await gw.snapshot()
    expect(snap.providers.map((p) => p.id)).toEqual(['r-2'])
    expect(w.tasks()).toEqual(['r-2'])
  })

  it('measures down time from the stored stateSince, so a restarted leader removes a provider that was down long before', async () => {
    // What a previous leader left: a provider down for a minute, and one down for a moment.
    const store = createRegistryStore(backend.db)
    const epoch = await store.claimEpoch()
    const base: Provider = {
      id: 'old', service: 'orders', ...SPEC, heartbeatIntervalMs: 100, tags: [], meta: {}, deregisterAfterMs: 30_000,
      state: 'down', stateSince: new Date(Date.now() - 60_000).toISOString(), lastSeen: null, reason: 'silent', revision: 1
    }
    await store.commit(epoch, [
      { revision: 1, event: 'registered', provider: base },
      { revision: 2, event: 'registered', provider: { ...base, id: 'recent', stateSince: new Date().toISOString(), revision: 2 } }
    ])
    const startedAt = Date.now()
    const { gw, feed } = await start()
    const gone = await feed.nextChange((c) => c.event === 'deregistered', { timeoutMs: 5000 })
    expect(gone.provider).toMatchObject({ id: 'old', reason: 'down-too-long' })
    // Not before the takeover settled: a worker's READY might still have brought it back.
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(TAKEOVER_SETTLE_MS - 100)
    expect((await gw.snapshot()).providers.map((p) => p.id)).toEqual(['recent'])
  })
})
