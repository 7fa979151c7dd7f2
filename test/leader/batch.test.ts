// A batch (batch.ts) on a fake clock and without sockets or a database: what decideBatch commits
// and answers for the queued items (numbering, the batch's own earlier changes, the TTL rule,
// renewals, flap damping), that nothing reaches the term's registry before applyCommit, and what
// applyCommit does to the term's providers, workers and renewals.
import { describe, expect, it } from 'vitest'
import { applyCommit, decideBatch, refusedAnswer, resultMessages, STORE_UNAVAILABLE, type WriteAnswer } from '../../server/leader/batch.js'
import { DEFAULT_QUOTAS } from '../../server/leader/quota.js'
import { createTermState, endSettling, rebalance, takeAssigns, takeSeen, workerReady, type QueueItem, type TermState } from '../../server/leader/term-state.js'
import { BATCH_ITEMS, type WriteOp } from '../../server/protocol/messages.js'
import type { Provider, ProviderSpec } from '../../server/protocol/model.js'

const T0 = Date.parse('2026-12-01T10:00:00.000Z')
const iso = (ms: number): string => new Date(ms).toISOString()
const GW = Buffer.from('gateway-1')
const W1 = Buffer.from('worker-1')

const spec: ProviderSpec = { host: '10.0.0.5', port: 8080, protocol: 'http', heartbeat: 'tcp://10.0.0.5:9100' }
const ttlSpec: ProviderSpec = { host: '10.0.0.6', port: 8080, protocol: 'http', check: { type: 'ttl', ttlMs: 1000 } }

function provider (id: string, over: Partial<Provider> = {}): Provider {
  return {
    id, service: 'orders', host: '10.0.0.5', port: 8080, protocol: 'http', heartbeat: 'tcp://10.0.0.5:9100',
    heartbeatIntervalMs: 1000, tags: [], meta: {}, state: 'up', stateSince: iso(T0 - 60_000), lastSeen: iso(T0 - 500), revision: 3, ...over
  }
}

const ttlProvider = (id: string, over: Partial<Provider> = {}): Provider =>
  provider(id, { host: '10.0.0.6', heartbeat: undefined, check: { type: 'ttl', ttlMs: 1000 }, ...over })

function term (providers: Provider[]): TermState {
  return createTermState({ epoch: 2, revision: 10, providers, tokens: [] }, T0)
}

let requests = 0
const write = (op: WriteOp): QueueItem => ({ kind: 'write', op, identity: GW, requestId: `r${++requests}` })
const register = (id: string, s: ProviderSpec = spec): QueueItem => write({ type: 'register', service: 'orders', id, spec: s })
const renew = (id: string): QueueItem => write({ type: 'renew', service: 'orders', id })
const ttlExpiry = (id: string, lastRenewal: number): QueueItem =>
  ({ kind: 'observe', ttl: true, obs: { providerId: id, state: 'down', lastSeen: lastRenewal, reason: 'ttl-expired', detectedAfterMs: 1000 } })

describe('decideBatch', () => {
  it('numbers the changes from the head, lets later items see earlier ones, and answers each write', () => {
    const s = term([provider('a')])
    const d = decideBatch(s, [
      register('b'),
      register('b'),
      write({ type: 'register', service: 'billing', id: 'b', spec }),
      write({ type: 'deregister', service: 'orders', id: 'a' }),
      { kind: 'ack', identity: W1, seq: 9 }
    ], T0, DEFAULT_QUOTAS)
    expect(d.changes.map((c) => [c.revision, c.event, c.provider.id])).toEqual([[11, 'registered', 'b'], [12, 'deregistered', 'a']])
    const [first, again, conflict, gone] = d.answers.map((a) => a.result)
    expect(first).toMatchObject({ ok: true, statusCode: 201, revision: 11, provider: { id: 'b', state: 'pending', revision: 11 } })
    // The same registration again in the batch is a no-op against the batch's own change.
    expect(again).toMatchObject({ ok: true, statusCode: 200, revision: 11, provider: { id: 'b' } })
    expect(conflict).toMatchObject({ ok: false, statusCode: 409, code: 'ROSTER_ERR_PROVIDER_CONFLICT' })
    expect(gone).toEqual({ ok: true, statusCode: 200, revision: 12 })
    expect(d.acks).toEqual([{ identity: W1, seq: 9 }])
    // Nothing is applied before the commit.
    expect(s.head).toBe(10)
    expect([...s.providers.keys()]).toEqual(['a'])
    expect(s.counts.total).toBe(1)
  })

  it('counts the batch’s own registrations against the quota', () => {
    const s = term([provider('a')])
    const d = decideBatch(s, [register('b'), register('c')], T0, { maxProvidersPerService: 2, maxProviders: 10 })
    expect(d.answers.map((a) => a.result.statusCode)).toEqual([201, 429])
    expect(d.changes).toHaveLength(1)
  })

  it('lets a renewal void a ttl expiry queued behind it, and takes an expiry with no renewal since', () => {
    const s = term([ttlProvider('t1'), ttlProvider('t2')])
    const d = decideBatch(s, [renew('t1'), ttlExpiry('t1', T0 - 1000), ttlExpiry('t2', T0 - 1000)], T0 + 2000, DEFAULT_QUOTAS)
    expect(d.changes.map((c) => [c.provider.id, c.event, c.provider.reason])).toEqual([['t2', 'down', 'ttl-expired']])
  })

  it('ignores a ttl expiry for a provider whose registration no longer has a ttl check', () => {
    const s = term([ttlProvider('t1')])
    const d = decideBatch(s, [register('t1', spec), ttlExpiry('t1', T0 - 1000)], T0 + 2000, DEFAULT_QUOTAS)
    expect(d.changes.map((c) => c.event)).toEqual(['updated'])
  })

  it('keeps the renewal of an up provider in memory: lastSeen moves, nothing is committed', () => {
    const s = term([ttlProvider('t1')])
    const d = decideBatch(s, [renew('t1')], T0 + 100, DEFAULT_QUOTAS)
    expect(d.changes).toEqual([])
    expect(d.answers[0]?.result).toEqual({ ok: true, statusCode: 200, revision: 3, provider: { ...ttlProvider('t1'), lastSeen: iso(T0 + 100) } })
    expect(s.providers.get('t1')?.lastSeen).toBe(iso(T0 + 100))
    expect(takeSeen(s)).toEqual([{ epoch: 2, seen: [['t1', T0 + 100]] }])
    expect(s.ttl.alive('t1', T0 + 1099)).toBe(T0 + 100)
  })

  it('brings a down ttl provider up with its renewal, as a change', () => {
    const s = term([ttlProvider('t1', { state: 'down', reason: 'ttl-expired' })])
    const d = decideBatch(s, [renew('t1')], T0 + 100, DEFAULT_QUOTAS)
    expect(d.changes.map((c) => [c.revision, c.event])).toEqual([[11, 'up']])
    expect(d.answers[0]?.result).toMatchObject({ ok: true, statusCode: 200, revision: 11, provider: { state: 'up', lastSeen: iso(T0 + 100) } })
  })

  it('holds a bouncing provider down as flapping, and publishes a released state as it is', () => {
    const s = term([provider('p1', { state: 'down', reason: 'disconnected' })])
    const bounce = (n: number): QueueItem => ({
      kind: 'observe',
      obs: n % 2 === 0 ? { providerId: 'p1', state: 'up', lastSeen: T0 + n } : { providerId: 'p1', state: 'down', lastSeen: T0 + n, reason: 'disconnected' }
    })
    const events: string[] = []
    for (let n = 0; n < 7; n++) {
      const d = decideBatch(s, [bounce(n)], T0 + n, DEFAULT_QUOTAS)
      applyCommit(s, d.changes, T0 + n)
      events.push(...d.changes.map((c) => `${c.event}${c.provider.reason === undefined ? '' : `:${c.provider.reason}`}`))
    }
    // Five changes are tolerated (DEFAULT_FLAP_DAMPING); the sixth makes it flapping, and held.
    expect(events).toEqual(['up', 'down:disconnected', 'up', 'down:disconnected', 'up', 'down:flapping'])
    const released = decideBatch(s, [{ kind: 'observe', released: true, obs: { providerId: 'p1', state: 'up', lastSeen: T0 + 10 } }], T0 + 40_000, DEFAULT_QUOTAS)
    expect(released.changes.map((c) => c.event)).toEqual(['up'])
  })
})

describe('applyCommit', () => {
  it('moves the head, stores the providers, and gives a new watched provider to a worker', () => {
    const s = term([provider('a')])
    workerReady(s, 'w1', W1, [], T0)
    endSettling(s)
    takeAssigns(s, T0)
    const d = decideBatch(s, [register('b'), register('t', ttlSpec)], T0, DEFAULT_QUOTAS)
    applyCommit(s, d.changes, T0)
    expect(s.head).toBe(12)
    expect(s.providers.get('b')?.revision).toBe(11)
    expect(s.counts.total).toBe(3)
    // The heartbeat provider goes to the worker at the shell's rebalance after the commit; the
    // ttl one stays with the leader.
    rebalance(s)
    expect(takeAssigns(s, T0 + 100).map((a) => a.body)).toEqual([{ epoch: 2, seq: 2, delta: true, tasks: [expect.objectContaining({ providerId: 'b' })], removed: [] }])
  })

  it("removes a deregistered provider from the registry, its worker's tasks and the renewals", () => {
    const s = term([provider('a'), ttlProvider('t')])
    workerReady(s, 'w1', W1, [], T0)
    endSettling(s)
    takeAssigns(s, T0)
    const d = decideBatch(s, [renew('t'), write({ type: 'deregister', service: 'orders', id: 'a' }), write({ type: 'deregister', service: 'orders', id: 't' })], T0, DEFAULT_QUOTAS)
    applyCommit(s, d.changes, T0)
    expect([...s.providers.keys()]).toEqual([])
    expect(s.assignment.tasksOf('w1').size).toBe(0)
    expect(takeAssigns(s, T0 + 100)).toEqual([{ identity: W1, body: { epoch: 2, seq: 2, delta: true, tasks: [], removed: ['a'] } }])
    expect(s.ttl.size).toBe(0)
  })

  it('keeps a lastSeen accepted while the change was being committed', () => {
    const s = term([provider('a')])
    const d = decideBatch(s, [write({ type: 'register', service: 'orders', id: 'a', spec: { ...spec, tags: ['blue'] } })], T0, DEFAULT_QUOTAS)
    // A summary arrives during the commit.
    s.providers.set('a', { ...provider('a'), lastSeen: iso(T0 + 50) })
    applyCommit(s, d.changes, T0 + 60)
    expect(s.providers.get('a')).toMatchObject({ tags: ['blue'], revision: 11, lastSeen: iso(T0 + 50) })
    expect(takeSeen(s)).toEqual([{ epoch: 2, seen: [['a', T0 + 50]] }])
  })

  it('brings a ttl provider that kept renewing straight back up when its maintenance ends', () => {
    const s = term([ttlProvider('t', { state: 'maintenance', reason: 'deploy' })])
    decideBatch(s, [renew('t')], T0, DEFAULT_QUOTAS)
    const d = decideBatch(s, [write({ type: 'maintenance', service: 'orders', id: 't', enabled: false })], T0 + 10, DEFAULT_QUOTAS)
    applyCommit(s, d.changes, T0 + 10)
    expect(s.providers.get('t')?.state).toBe('pending')
    expect(s.queue).toEqual([{ kind: 'observe', obs: { providerId: 't', state: 'up', lastSeen: T0 } }])
  })
})

describe('answers', () => {
  it('sends one RESULT per gateway, in order, BATCH_ITEMS answers at most', () => {
    const gw2 = Buffer.from('gateway-2')
    const ok = (n: number): WriteAnswer => ({ identity: n % 2 === 0 ? GW : gw2, requestId: `q${n}`, result: { ok: true, statusCode: 200, revision: n } })
    const answers = Array.from({ length: 2 * BATCH_ITEMS + 2 }, (_, n) => ok(n))
    const messages = resultMessages(answers, 2)
    expect(messages.map((m) => [m.identity.toString(), m.body.results.length])).toEqual([
      ['gateway-1', BATCH_ITEMS], ['gateway-1', 1], ['gateway-2', BATCH_ITEMS], ['gateway-2', 1]
    ])
    expect(messages[0]?.body.results.slice(0, 2).map((r) => r.requestId)).toEqual(['q0', 'q2'])
    expect(messages.every((m) => m.body.epoch === 2)).toBe(true)
  })

  it('words a refused write as 400 with the database’s reason, and a failed commit as 503', () => {
    const item = register('x') as Extract<QueueItem, { kind: 'write' }>
    expect(refusedAnswer(item, 'a value the database cannot store')).toEqual({
      identity: GW,
      requestId: item.requestId,
      result: { ok: false, statusCode: 400, code: 'ROSTER_ERR_UNSTORABLE', message: "the registry's database refused this write (a value the database cannot store); nothing was stored" }
    })
    expect(STORE_UNAVAILABLE).toMatchObject({ ok: false, statusCode: 503, code: 'ROSTER_ERR_STORE_UNAVAILABLE' })
  })
})
