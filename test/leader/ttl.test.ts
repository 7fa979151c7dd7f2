// TTL checks and check tasks through the real leader, on both backends: renewals (WRITE renew from
// a scripted gateway) make a provider up and keep it so without new revisions, a missed renewal
// makes it down (ttl-expired) within its TTL plus the tracker's tick, a takeover grants a full TTL
// (no false down), and http/tcp checks are handed to workers as probe tasks.
import { beforeAll, expect, it } from 'vitest'
import { context } from 'zeromq'
import { TTL_CHECK_INTERVAL_MS } from '../../server/leader/ttl-tracker.js'
import type { WriteOp, WriteResult } from '../../server/protocol/messages.js'
import type { ProviderSpec } from '../../server/protocol/model.js'
import { describeWithDatabase, type Backend } from '../helpers/postgres.js'
import { waitFor } from '../../harness/wait-for.js'
import { useLocalLeaders } from './local-leader.js'

beforeAll(() => { context.blocky = false })

/** Long enough that a renewal every TTL_MS / 4 stays in time on a loaded machine. */
const TTL_MS = 1000
const BASE = { host: '127.0.0.1', port: 8080, protocol: 'http' as const }
const TTL_SPEC: ProviderSpec = { ...BASE, check: { type: 'ttl', ttlMs: TTL_MS } }
const register = (id: string, spec: ProviderSpec): WriteOp => ({ type: 'register', service: 'orders', id, spec })
const renew = (id: string): WriteOp => ({ type: 'renew', service: 'orders', id })

function ok (r: WriteResult): Extract<WriteResult, { ok: true }> {
  if (!r.ok) throw new Error(`write refused: ${r.code} ${r.message}`)
  return r
}

describeWithDatabase('leader: ttl checks and check tasks', (backend: Backend) => {
  const { start, follower } = useLocalLeaders(backend)

  it('is up from the first renewal, stays up without new revisions while renewed, goes down ttl-expired, and up at the next renewal', async () => {
    const { gw, feed } = await start()
    const reg = ok(await gw.write(register('t-1', TTL_SPEC)))
    expect(reg.provider).toMatchObject({ state: 'pending', check: { type: 'ttl', ttlMs: TTL_MS } })
    expect(reg.provider).not.toHaveProperty('heartbeat')

    const first = ok(await gw.write(renew('t-1')))
    expect(first).toMatchObject({ statusCode: 200, revision: reg.revision + 1, provider: { state: 'up' } })
    const up = await feed.nextChange((c) => c.revision === first.revision)
    expect(up.event).toBe('up')

    // Renewed inside the TTL for two TTLs: no new revision at all, but lastSeen moves with each
    // renewal (in the answer, and to the gateways as LAST_SEEN), since a renewal is a sign of life.
    const until = Date.now() + 2 * TTL_MS
    let lastSeen = Date.parse(first.provider?.lastSeen as string)
    while (Date.now() < until) {
      const sentAt = Date.now()
      const renewed = ok(await gw.write(renew('t-1')))
      expect(renewed.revision).toBe(first.revision)
      const seen = Date.parse(renewed.provider?.lastSeen as string)
      expect(seen).toBeGreaterThan(lastSeen)
      expect(seen).toBeGreaterThanOrEqual(sentAt)
      lastSeen = seen
      await new Promise((resolve) => setTimeout(resolve, TTL_MS / 4))
    }
    await waitFor(() => feed.received.some((m) => m.verb === 'LAST_SEEN' && (m.body as { seen: Array<[string, number]> }).seen.some(([id, ms]) => id === 't-1' && ms === lastSeen)), {
      what: 'a LAST_SEEN with the latest renewal'
    })
    const lastRenewal = Date.now()
    ok(await gw.write(renew('t-1')))

    const down = await feed.nextChange((c) => c.provider.id === 't-1' && c.event === 'down', { timeoutMs: 5000 })
    expect(Date.now() - lastRenewal).toBeGreaterThanOrEqual(TTL_MS - 20)
    expect(down.revision).toBe(first.revision + 1)
    expect(down.provider).toMatchObject({ state: 'down', reason: 'ttl-expired' })
    expect(down.provider.detectedAfterMs).toBeGreaterThanOrEqual(TTL_MS)
    expect(down.provider.detectedAfterMs).toBeLessThan(TTL_MS + TTL_CHECK_INTERVAL_MS + 500)

    const back = ok(await gw.write(renew('t-1')))
    expect(back).toMatchObject({ revision: down.revision + 1, provider: { state: 'up' } })
    expect(back.provider).not.toHaveProperty('reason')
  })

  it('does not expire a renewal that came in time while the leader\'s event loop was stalled', async () => {
    const ttlMs = 300
    const { gw, feed } = await start()
    ok(await gw.write(register('t-3', { ...BASE, check: { type: 'ttl', ttlMs } })))
    const up = ok(await gw.write(renew('t-3')))
    const renewedAt = Date.now()
    await waitFor(() => Date.now() >= renewedAt + ttlMs - 60, { what: 'the TTL to nearly run out' })
    // The renewal reaches the leader's socket in time, but the leader (this process) is busy
    // past the deadline: the expiry check then runs before the renewal is read.
    gw.send('WRITE', { writes: [{ requestId: 'in-time', op: renew('t-3') }] })
    const stallUntil = Date.now() + 200
    while (Date.now() < stallUntil) { /* a long commit, a GC pause */ }
    const result = await gw.next('RESULT', (b) => b.results.some((r) => r.requestId === 'in-time'))
    expect(result.body.results.find((r) => r.requestId === 'in-time')?.result).toMatchObject({ ok: true, revision: up.revision, provider: { state: 'up' } })
    // And it really expires once renewals stop.
    const down = await feed.nextChange((c) => c.provider.id === 't-3' && c.revision > up.revision)
    expect(down).toMatchObject({ revision: up.revision + 1, event: 'down' })
  })

  it('refuses to renew an unknown provider (404) or one without a ttl check (409)', async () => {
    const { gw } = await start()
    ok(await gw.write(register('hb-1', { ...BASE, heartbeat: 'tcp://127.0.0.1:39003' })))
    expect(await gw.write(renew('hb-1'))).toMatchObject({ ok: false, statusCode: 409, code: 'ROSTER_ERR_NO_TTL_CHECK' })
    expect(await gw.write(renew('nobody'))).toMatchObject({ ok: false, statusCode: 404, code: 'ROSTER_ERR_PROVIDER_NOT_FOUND' })
    expect(await gw.write({ type: 'renew', service: 'billing', id: 'hb-1' })).toMatchObject({ ok: false, statusCode: 404 })
  })

  it('gives every up ttl provider a full TTL from a takeover: no false down, and a real expiry still caught', async () => {
    const ttlMs = 1500
    const first = await start()
    const reg = ok(await first.gw.write(register('t-2', { ...BASE, check: { type: 'ttl', ttlMs } })))
    const upRevision = ok(await first.gw.write(renew('t-2'))).revision
    const lastRenewal = Date.now()
    expect(upRevision).toBe(reg.revision + 1)
    // The old leader goes; the new one takes over two thirds of a TTL after the last renewal.
    await first.leader.stop()
    await new Promise((resolve) => setTimeout(resolve, 1000))
    const takeoverFrom = Date.now()
    const second = await start(first.bind)
    // The next renewal comes after the TTL counted from the last renewal, but within the TTL
    // counted from the takeover: it finds the provider up, and nothing was published meanwhile.
    await waitFor(() => Date.now() >= lastRenewal + ttlMs + 200, { timeoutMs: 5000, what: 'the old deadline to pass' })
    expect(Date.now()).toBeLessThan(takeoverFrom + ttlMs)
    expect(ok(await second.gw.write(renew('t-2'))).revision).toBe(upRevision)
    const renewedAt = Date.now()
    const down = await second.feed.nextChange((c) => c.provider.id === 't-2', { timeoutMs: 5000 })
    expect(down).toMatchObject({ revision: upRevision + 1, event: 'down', provider: { reason: 'ttl-expired' } })
    expect(Date.now() - renewedAt).toBeGreaterThanOrEqual(ttlMs - 20)
  })

  it('hands http and tcp checks to workers as probe tasks with the provider\'s host and port, and keeps ttl checks itself', async () => {
    const { bind, gw } = await start()
    const w = follower(bind, 'worker-c')
    await w.ready()
    ok(await gw.write(register('c-http', { ...BASE, port: 8081, check: { type: 'http', path: '/health', intervalMs: 200, timeoutMs: 100 } })))
    ok(await gw.write(register('c-tcp', { ...BASE, port: 8082, check: { type: 'tcp', intervalMs: 300, timeoutMs: 50 } })))
    ok(await gw.write(register('c-ttl', TTL_SPEC)))
    await waitFor(() => w.tasks().length === 2, { timeoutMs: 5000, what: 'two tasks' })
    expect(w.tasks().map((id) => w.task(id))).toEqual([
      { providerId: 'c-http', heartbeatIntervalMs: 1000, check: { type: 'http', host: '127.0.0.1', port: 8081, path: '/health', intervalMs: 200, timeoutMs: 100 }, state: 'pending', lastSeen: null },
      { providerId: 'c-tcp', heartbeatIntervalMs: 1000, check: { type: 'tcp', host: '127.0.0.1', port: 8082, intervalMs: 300, timeoutMs: 50 }, state: 'pending', lastSeen: null }
    ])
    // A check failure reported by the worker carries its detail to the feed.
    w.report(1, [{ providerId: 'c-http', state: 'down', lastSeen: null, reason: 'check-failed', detail: 'HTTP 503' }])
    const snap = await waitFor(async () => {
      const s = await gw.snapshot()
      return s.providers.find((p) => p.id === 'c-http' && p.state === 'down')
    }, { what: 'c-http down' })
    expect(snap).toMatchObject({ reason: 'check-failed', detail: 'HTTP 503' })
    // Switching a provider from a worker's check to a ttl takes it off the worker.
    ok(await gw.write(register('c-tcp', TTL_SPEC)))
    await w.next('ASSIGN', (b) => b.removed?.includes('c-tcp') === true)
    expect(w.tasks()).toEqual(['c-http'])
  })
})
