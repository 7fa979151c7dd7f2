// One leader term's state and its rules about the followers (term-state.ts), on a fake clock and
// without sockets: which worker watches what and what its ASSIGN says, how a silent worker's
// providers move, which observations and summaries count, what the leader's own clocks queue,
// and the token list's rules. What a batch does with the queued items is batch.test.ts.
import { describe, expect, it } from 'vitest'
import {
  applyTokenChange, ASSIGN_FLUSH_MS, ASSIGN_PACE_MS_PER_TASK, assignDelay, createTermState, endSettling, expireTtls, expireWorkers,
  reapDown, snapshotPages, takeAssigns, takeSeen, tokenRefusal, workerBye, workerPing, workerReady, workerReport, workerSummary,
  type TermState
} from '../../server/leader/term-state.js'
import { WORKER_EXPIRY_MS } from '../../server/leader/worker-registry.js'
import type { Body, Observation } from '../../server/protocol/messages.js'
import type { Provider } from '../../server/protocol/model.js'
import { MAX_TOKENS, type TokenRecord } from '../../server/protocol/token-model.js'
import { replayAssigns } from './replay-assigns.js'

const T0 = Date.parse('2026-12-01T10:00:00.000Z')
const iso = (ms: number): string => new Date(ms).toISOString()
const W1 = Buffer.from('w1-identity')
const W2 = Buffer.from('w2-identity')

function provider (id: string, over: Partial<Provider> = {}): Provider {
  return {
    id, service: 'orders', host: '10.0.0.5', port: 8080, protocol: 'http', heartbeat: `tcp://10.0.0.5:${9000 + Number(id.slice(1))}`,
    heartbeatIntervalMs: 1000, tags: [], meta: {}, state: 'up', stateSince: iso(T0 - 60_000), lastSeen: iso(T0 - 500), revision: 1, ...over
  }
}

function term (providers: Provider[], over: { watchers?: number } = {}): TermState {
  return createTermState({ epoch: 4, revision: 10, providers, tokens: [], ...over }, T0)
}

const up = (providerId: string, lastSeen: number): Observation => ({ providerId, state: 'up', lastSeen })
const down = (providerId: string, lastSeen: number): Observation => ({ providerId, state: 'down', lastSeen, reason: 'disconnected', detectedAfterMs: 5 })

/** Each worker's task list as the ASSIGNs so far made it (a complete list, or a delta), per term. */
const lists = new WeakMap<TermState, Map<string, Body<'ASSIGN'>[]>>()

/** The task list of each worker that is owed ASSIGNs now, once it applied them. */
function assigned (s: TermState, now: number): Map<string, string[]> {
  const sent = lists.get(s) ?? new Map<string, Body<'ASSIGN'>[]>()
  lists.set(s, sent)
  const out = new Map<string, string[]>()
  for (const { identity, body } of takeAssigns(s, now)) {
    const key = identity.toString()
    sent.set(key, [...(sent.get(key) ?? []), body])
    out.set(key, [...replayAssigns(sent.get(key) ?? []).keys()].sort())
  }
  return out
}

describe('term state: workers and their tasks', () => {
  it('lets a worker join only with READY, keeps the providers it claims through the settling, then spreads the rest', () => {
    const s = term([provider('p1'), provider('p2'), provider('p3'), provider('p4')])
    // A PING from a worker that has not sent READY in this term gives it nothing.
    expect(workerPing(s, 'w1', W1, T0)).toBe(false)
    expect(assignDelay(s, T0)).toBeNull()

    expect(workerReady(s, 'w1', W1, [up('p1', T0), up('p2', T0)], T0)).toBe(true)
    expect(workerReady(s, 'w2', W2, [up('p3', T0)], T0)).toBe(true)
    // While the takeover settles, each keeps exactly what it claimed; p4 waits.
    expect(assigned(s, T0)).toEqual(new Map([['w1-identity', ['p1', 'p2']], ['w2-identity', ['p3']]]))

    // Once settled, p4 goes to the less loaded worker and nothing claimed moves: w1 is owed nothing.
    endSettling(s)
    expect(assigned(s, T0 + 1500)).toEqual(new Map([['w2-identity', ['p3', 'p4']]]))
  })

  it("sends each task with the provider's state and lastSeen, maintenance as a neutral pending start", () => {
    const s = term([provider('p1', { state: 'maintenance', lastSeen: iso(T0 - 100) })])
    endSettling(s)
    workerReady(s, 'w1', W1, [], T0)
    const [assign] = takeAssigns(s, T0)
    expect(assign?.identity).toBe(W1)
    expect(assign?.body).toEqual({
      epoch: 4,
      seq: 1,
      page: 0,
      more: false,
      tasks: [{ providerId: 'p1', heartbeat: 'tcp://10.0.0.5:9001', heartbeatIntervalMs: 1000, state: 'pending', lastSeen: T0 - 100, maintenance: true }]
    })
  })

  it('paces ASSIGNs by the tasks the last one carried', () => {
    const providers = Array.from({ length: 2000 }, (_, i) => provider(`p${i}`))
    const s = term(providers)
    endSettling(s)
    workerReady(s, 'w1', W1, [], T0)
    expect(assignDelay(s, T0)).toBe(ASSIGN_FLUSH_MS)
    expect(assigned(s, T0).get('w1-identity')).toHaveLength(2000)
    expect(assignDelay(s, T0)).toBeNull()
    // A change right after a flush of 2,000 tasks waits 2,000 × the pace, less the time since.
    workerBye(s, 'w1')
    workerReady(s, 'w2', W2, [], T0 + 40)
    expect(assignDelay(s, T0 + 40)).toBe(2000 * ASSIGN_PACE_MS_PER_TASK - 40)
    expect(assignDelay(s, T0 + 1000)).toBe(ASSIGN_FLUSH_MS)
  })

  it("moves a silent worker's providers to the live one, and not before its expiry", () => {
    const s = term([provider('p1'), provider('p2'), provider('p3'), provider('p4')])
    workerReady(s, 'w1', W1, [up('p1', T0), up('p2', T0)], T0)
    workerReady(s, 'w2', W2, [up('p3', T0), up('p4', T0)], T0)
    endSettling(s)
    assigned(s, T0)
    s.queue.length = 0
    // w2 keeps pinging; w1 falls silent.
    workerPing(s, 'w2', W2, T0 + WORKER_EXPIRY_MS)
    expect(expireWorkers(s, T0 + WORKER_EXPIRY_MS)).toEqual([])
    expect(expireWorkers(s, T0 + WORKER_EXPIRY_MS + 1)).toEqual(['w1'])
    expect(assigned(s, T0 + 2000)).toEqual(new Map([['w2-identity', ['p1', 'p2', 'p3', 'p4']]]))
    // A REPORT from w1 once it lost them overrules nobody.
    workerReport(s, 'w1', W1, 7, [down('p1', T0 + 1900)], T0 + 2000)
    expect(s.queue).toEqual([{ kind: 'ack', identity: W1, seq: 7 }])
  })

  it("queues a watcher's observations and their ACK after them", () => {
    const s = term([provider('p1')])
    workerReady(s, 'w1', W1, [], T0)
    endSettling(s)
    s.queue.length = 0
    workerReport(s, 'w1', W1, 3, [down('p1', T0 + 10)], T0 + 20)
    expect(s.queue).toEqual([{ kind: 'observe', obs: down('p1', T0 + 10) }, { kind: 'ack', identity: W1, seq: 3 }])
  })

  it('with two watchers, queues the down once the watcher that still saw the provider is gone', () => {
    const s = term([provider('p1')], { watchers: 2 })
    workerReady(s, 'w1', W1, [], T0)
    workerReady(s, 'w2', W2, [], T0)
    endSettling(s)
    s.queue.length = 0
    // w1 lost the provider; w2 (told `up`) has said nothing: no agreement yet.
    workerReport(s, 'w1', W1, 1, [down('p1', T0 + 10)], T0 + 20)
    expect(s.queue).toEqual([{ kind: 'ack', identity: W1, seq: 1 }])
    // w2 leaves: the remaining watcher's view is the verdict.
    workerBye(s, 'w2')
    expect(s.queue.at(-1)).toEqual({ kind: 'observe', obs: down('p1', T0 + 10) })
  })
})

describe('term state: lastSeen summaries', () => {
  it("keeps a watcher's later lastSeen in memory and owes it in one LAST_SEEN, ignoring others", () => {
    const s = term([provider('p1'), provider('p2')])
    workerReady(s, 'w1', W1, [up('p1', T0 - 500)], T0)
    workerReady(s, 'w2', W2, [up('p2', T0 - 500)], T0)
    workerSummary(s, 'w1', [['p1', T0 + 100], ['p2', T0 + 200]], T0 + 300)
    workerSummary(s, 'w1', [['p1', T0 + 50]], T0 + 300)
    expect(takeSeen(s)).toEqual([{ epoch: 4, seen: [['p1', T0 + 100]] }])
    expect(takeSeen(s)).toEqual([])
    expect(s.providers.get('p1')?.lastSeen).toBe(iso(T0 + 100))
    // Not committed: the provider's revision did not move.
    expect(s.providers.get('p1')?.revision).toBe(1)
    expect(s.providers.get('p2')?.lastSeen).toBe(iso(T0 - 500))
  })
})

describe("term state: the leader's own clocks", () => {
  it('gives an up ttl provider a full TTL from the takeover, then queues its ttl-expired down', () => {
    const s = term([provider('t1', { heartbeat: undefined, check: { type: 'ttl', ttlMs: 5000 }, lastSeen: iso(T0 - 4000) })])
    expireTtls(s, T0 + 4999)
    expect(s.queue).toEqual([])
    expireTtls(s, T0 + 5000)
    expect(s.queue).toEqual([{
      kind: 'observe',
      ttl: true,
      obs: { providerId: 't1', state: 'down', lastSeen: T0 - 4000, reason: 'ttl-expired', detectedAfterMs: 9000 }
    }])
  })

  it('reaps a provider down longer than its deregisterAfterMs, but not while the takeover settles', () => {
    const s = term([
      provider('p1', { state: 'down', stateSince: iso(T0 - 10_000), deregisterAfterMs: 10_000 }),
      provider('p2', { state: 'down', stateSince: iso(T0 - 5000), deregisterAfterMs: 10_000 }),
      provider('p3', { state: 'up', stateSince: iso(T0 - 60_000), deregisterAfterMs: 10_000 })
    ])
    reapDown(s, T0)
    expect(s.queue).toEqual([])
    endSettling(s)
    reapDown(s, T0)
    expect(s.queue).toEqual([{ kind: 'reap', providerId: 'p1' }])
  })
})

describe('term state: snapshots and tokens', () => {
  it('answers a snapshot at the head revision', () => {
    const s = term([provider('p1'), provider('p2')])
    expect(snapshotPages(s, 'r1')).toEqual([{ requestId: 'r1', epoch: 4, revision: 10, providers: [provider('p1'), provider('p2')], page: 0, more: false }])
  })

  it('refuses a token beyond MAX_TOKENS, 404s an unknown revocation, and moves the generation on each change', () => {
    const token = (id: string): TokenRecord => ({ id, name: id, scopes: ['read:*'], secretHash: id.padEnd(64, '0'), createdAt: iso(T0), expiresAt: null })
    const s = term([])
    expect(applyTokenChange(s, { type: 'create', token: token('a') }, true)).toEqual({ ok: true, statusCode: 201, generation: 1 })
    expect(applyTokenChange(s, { type: 'revoke', id: 'nope' }, false)).toMatchObject({ ok: false, statusCode: 404, code: 'ROSTER_ERR_TOKEN_NOT_FOUND' })
    expect(applyTokenChange(s, { type: 'revoke', id: 'a' }, true)).toEqual({ ok: true, statusCode: 200, generation: 2 })
    for (let i = 0; i < MAX_TOKENS; i++) s.tokens.set(`t${i}`, token(`t${i}`))
    expect(tokenRefusal(s, { type: 'create', token: token('b') })).toMatchObject({ ok: false, statusCode: 429, code: 'ROSTER_ERR_TOKEN_QUOTA' })
    expect(tokenRefusal(s, { type: 'revoke', id: 't0' })).toBeNull()
  })
})
