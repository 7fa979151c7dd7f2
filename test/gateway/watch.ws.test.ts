import { describe, expect, it } from 'vitest'
import { createReplica } from '../../server/gateway/replica.js'
import type { WatchMessage } from '../../server/gateway/schemas/watch.js'
import { waitFor } from '../../harness/wait-for.js'
import {
  applyAll,
  change,
  deferred,
  eventRevisions,
  history,
  noLeader,
  provider,
  range,
  replicaWithHistory,
  useWatchGateway
} from './helpers.js'

const { gateway, open } = useWatchGateway()

describe('/v1/watch', () => {
  it('sends a snapshot, then every change in revision order', async () => {
    const replica = createReplica()
    replica.loadSnapshot(10, [provider({ id: 'orders-1', revision: 4 }), provider({ id: 'billing-1', service: 'billing', revision: 9 })])
    const { base } = await gateway({ replica })
    const c = open(base)
    const [snapshot] = await c.received(1)
    expect(snapshot).toEqual({
      type: 'snapshot',
      revision: 10,
      providers: [provider({ id: 'billing-1', service: 'billing', revision: 9 }), provider({ id: 'orders-1', revision: 4 })]
    })
    const down = provider({ id: 'orders-1', state: 'down' })
    replica.apply(change(11, 'down', down))
    replica.apply(change(12, 'registered', provider({ id: 'orders-2' })))
    replica.apply(change(13, 'deregistered', provider({ id: 'billing-1', service: 'billing' })))
    const messages = await c.received(4)
    expect(messages[1]).toEqual({ type: 'event', revision: 11, event: 'down', provider: { ...down, revision: 11 } })
    expect(messages.slice(1).map((m) => m.type === 'event' && m.event)).toEqual(['down', 'registered', 'deregistered'])
    expect(eventRevisions(messages)).toEqual([11, 12, 13])
  })

  it('sends only the chosen services, in the snapshot and after it', async () => {
    const replica = createReplica()
    replica.loadSnapshot(1, [
      provider({ id: 'o-1', service: 'orders' }),
      provider({ id: 'b-1', service: 'billing' }),
      provider({ id: 's-1', service: 'shipping' })
    ])
    const { base } = await gateway({ replica })
    const c = open(base, '?service=orders&service=shipping')
    const all = open(base)
    const [snapshot] = await c.received(1)
    expect(snapshot?.type === 'snapshot' && snapshot.providers.map((p) => p.id)).toEqual(['o-1', 's-1'])
    replica.apply(change(2, 'down', provider({ id: 'b-1', service: 'billing' })))
    replica.apply(change(3, 'down', provider({ id: 's-1', service: 'shipping' })))
    replica.apply(change(4, 'down', provider({ id: 'b-1', service: 'billing' })))
    replica.apply(change(5, 'down', provider({ id: 'o-1', service: 'orders' })))
    await all.received(5)
    const messages = await c.received(3)
    expect(eventRevisions(messages)).toEqual([3, 5])
  })

  it('resumes with since from the ring: no snapshot, nothing missing', async () => {
    const { replica } = replicaWithHistory(30, 100)
    const { base } = await gateway({ replica })
    const c = open(base, '?since=25')
    await c.received(5)
    expect(c.messages.every((m) => m.type === 'event')).toBe(true)
    applyAll(replica, history(31, 2))
    const messages = await c.received(7)
    expect(eventRevisions(messages)).toEqual(range(26, 32))
    expect(messages).toHaveLength(7)
  })

  it('resumes with since equal to the current revision by sending nothing until the next change', async () => {
    const { replica } = replicaWithHistory(30, 100)
    const { base } = await gateway({ replica })
    const c = open(base, '?since=30')
    await new Promise<void>((resolve) => c.ws.once('open', () => resolve()))
    applyAll(replica, history(31, 1))
    const messages = await c.received(1)
    expect(messages).toEqual([expect.objectContaining({ type: 'event', revision: 31 })])
  })

  it('resumes from the leader log when since is older than the ring, in pages', async () => {
    const { replica, log } = replicaWithHistory(40, 5)
    const leader = noLeader({ log: { floor: 0, changes: log } })
    const { base } = await gateway({ replica, leader, watch: { leaderPageSize: 7 } })
    const c = open(base, '?since=3')
    const messages = await c.received(37)
    expect(messages.every((m) => m.type === 'event')).toBe(true)
    expect(eventRevisions(messages)).toEqual(range(4, 40))
    expect(leader.calls).toBeGreaterThan(1)
  })

  it('waits for a since ahead of this replica (the client came from a gateway further along)', async () => {
    const { replica } = replicaWithHistory(30, 100)
    const { base } = await gateway({ replica, watch: { sinceAheadWaitMs: 2000 } })
    const c = open(base, '?since=33')
    await new Promise<void>((resolve) => c.ws.once('open', () => resolve()))
    applyAll(replica, history(31, 5))
    const messages = await c.received(2)
    expect(messages).toHaveLength(2)
    expect(eventRevisions(messages)).toEqual([34, 35])
  })

  it('sends a reset snapshot for a since this replica does not reach in time', async () => {
    const { replica } = replicaWithHistory(30, 100)
    const { base } = await gateway({ replica, watch: { sinceAheadWaitMs: 100 } })
    const c = open(base, '?since=99')
    const [first] = await c.received(1)
    expect(first).toMatchObject({ type: 'snapshot', reset: true, revision: 30 })
  })

  it('sends a reset snapshot when since is older than anything retained', async () => {
    const { replica, log } = replicaWithHistory(40, 5)
    const { base } = await gateway({ replica, leader: noLeader({ log: { floor: 20, changes: log.slice(20) } }) })
    const c = open(base, '?since=3&service=orders')
    const [first] = await c.received(1)
    expect(first).toMatchObject({ type: 'snapshot', reset: true, revision: 40 })
    expect(first?.type === 'snapshot' && first.providers.length).toBe(40)
    applyAll(replica, history(41, 1))
    expect(eventRevisions(await c.received(2))).toEqual([41])
  })

  it('sends a reset snapshot when since is older than the ring and no leader can help', async () => {
    const { replica } = replicaWithHistory(40, 5)
    const { base } = await gateway({ replica, leader: noLeader() })
    const c = open(base, '?since=3')
    const [first] = await c.received(1)
    expect(first).toMatchObject({ type: 'snapshot', reset: true, revision: 40 })
  })

  it('neither loses nor repeats live changes that arrive during a catch-up', async () => {
    const { replica, log } = replicaWithHistory(40, 5, 40, 100)
    const leaderLog = { floor: 0, changes: log }
    const leader = noLeader({ log: leaderLog })
    const gate = deferred()
    leader.gate = gate.promise
    const { base } = await gateway({ replica, leader, watch: { leaderPageSize: 10 } })
    const c = open(base, '?since=10')
    await waitFor(() => leader.calls >= 1, { what: 'the catch-up to ask the leader' })
    // While the leader's answer is outstanding, the replica moves on (and so does the log).
    const more = history(41, 25)
    applyAll(replica, more)
    leaderLog.changes = [...log, ...more]
    gate.resolve()
    const messages = await c.received(55)
    expect(messages.every((m) => m.type === 'event')).toBe(true)
    expect(eventRevisions(messages)).toEqual(range(11, 65))
    applyAll(replica, history(66, 1))
    expect(eventRevisions(await c.received(56))).toEqual(range(11, 66))
  })

  it('skips live changes it already sent from a leader log that was ahead of this replica', async () => {
    const { replica, log } = replicaWithHistory(20, 3, 20, 100)
    const ahead = history(21, 10)
    const leader = noLeader({ log: { floor: 0, changes: [...log, ...ahead] } })
    const { base } = await gateway({ replica, leader, watch: { leaderPageSize: 100 } })
    const c = open(base, '?since=5')
    await c.received(25)
    // The replica now applies what the client already got from the leader, and then more.
    applyAll(replica, ahead)
    applyAll(replica, history(31, 3))
    const messages = await c.received(28)
    expect(eventRevisions(messages)).toEqual(range(6, 33))
  })

  it('closes a client that queues too much while catching up, with a resume hint', async () => {
    const { replica, log } = replicaWithHistory(40, 5)
    const leader = noLeader({ log: { floor: 0, changes: log } })
    leader.gate = deferred().promise // the leader never answers
    const { base } = await gateway({ replica, leader, watch: { maxPendingChanges: 5 } })
    const c = open(base, '?since=10')
    await waitFor(() => leader.calls >= 1)
    applyAll(replica, history(41, 6))
    expect(await c.closed).toEqual({ code: 4008, reason: 'too far behind; resume with since=10' })
  })

  it('closes a stalled client with 4008 while another keeps receiving', async () => {
    const replica = createReplica()
    replica.loadSnapshot(0, [])
    const { base } = await gateway({ replica, watch: { maxBufferedBytes: 256 * 1024 } })
    const stalled = open(base)
    const healthy = open(base)
    await stalled.received(1)
    await healthy.received(1)
    stalled.ws.pause() // stops reading its TCP socket: the server's send buffer fills
    // ~15 KB per event; 2400 events are ~36 MB, far beyond the kernel's socket buffers plus
    // the 256 KiB bound. Batches let the healthy client read as it goes, as a real one would.
    const meta = Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`k${i}`, 'x'.repeat(500)]))
    const total = 2400
    for (let from = 1; from <= total; from += 100) {
      applyAll(replica, history(from, 100, { meta, width: 50 }))
      await healthy.received(1 + from + 99, 10_000)
    }
    expect(eventRevisions(healthy.messages)).toEqual(range(1, total))
    stalled.ws.resume()
    const { code, reason } = await stalled.closed
    expect(code).toBe(4008)
    const hint = Number(/^too far behind; resume with since=(\d+)$/.exec(reason)?.[1])
    // Everything up to the hint arrived, in order, and nothing after it.
    expect(eventRevisions(stalled.messages)).toEqual(range(1, hint))
    expect(hint).toBeLessThan(total)
    expect(healthy.ws.readyState).toBe(healthy.ws.OPEN)
  })

  it('sends every client a reset snapshot when the replica is reset', async () => {
    const { replica } = replicaWithHistory(10, 100)
    const { base } = await gateway({ replica })
    const c = open(base, '?service=orders')
    await c.received(1)
    replica.loadSnapshot(500, [provider({ id: 'orders-7', revision: 499 }), provider({ id: 'b-1', service: 'billing' })])
    replica.apply(change(501, 'down', provider({ id: 'orders-7' })))
    const messages = await c.received(3)
    expect(messages[1]).toEqual({ type: 'snapshot', reset: true, revision: 500, providers: [provider({ id: 'orders-7', revision: 499 })] })
    expect(messages[2]).toMatchObject({ type: 'event', revision: 501 })
  })

  it('tells clients it is going away when the app closes', async () => {
    const replica = createReplica()
    replica.loadSnapshot(1, [])
    const { app, base } = await gateway({ replica })
    const c = open(base)
    await c.received(1)
    await app.close()
    expect(await c.closed).toEqual({ code: 1001, reason: 'going away' })
  })

  it('refuses a bad query before upgrading, naming the field', async () => {
    const replica = createReplica()
    replica.loadSnapshot(1, [])
    const { base } = await gateway({ replica })
    for (const [query, message] of [
      ['?since=-1', /^querystring\/since must be >= 0$/],
      ['?since=soon', /^querystring\/since must be integer$/],
      ['?service=Bad!', /^querystring\/service\/0 must match pattern/],
      ['?services=orders', /unknown field 'services'/]
    ] as const) {
      const refused = await open(base, query).refused
      expect(refused.statusCode, query).toBe(400)
      expect((JSON.parse(refused.body) as { message: string }).message, query).toMatch(message)
    }
  })

  it('answers a plain HTTP GET with 426 Upgrade Required', async () => {
    const replica = createReplica()
    replica.loadSnapshot(1, [])
    const { app } = await gateway({ replica })
    const res = await app.inject({ url: '/v1/watch' })
    expect(res.statusCode).toBe(426)
    expect(res.headers.upgrade).toBe('websocket')
    expect(res.json()).toMatchObject({ code: 'ROSTER_ERR_UPGRADE_REQUIRED' })
  })

  it('refuses with 503 and Retry-After before the first snapshot', async () => {
    const { base } = await gateway()
    const c = open(base)
    const refused = await c.refused
    expect(refused.statusCode).toBe(503)
    expect(refused.retryAfter).toBe('1')
    expect(JSON.parse(refused.body)).toMatchObject({ code: 'ROSTER_ERR_NOT_READY' })
  })

  it('sends JSON text frames with the documented fields, in order', async () => {
    const { replica } = replicaWithHistory(3, 100)
    const { base } = await gateway({ replica })
    const c = open(base)
    const binary: boolean[] = []
    c.ws.on('message', (_data, isBinary) => binary.push(isBinary))
    await c.received(1)
    applyAll(replica, history(4, 1))
    const messages: WatchMessage[] = await c.received(2)
    expect(binary).toEqual([false, false])
    expect(Object.keys(messages[0] ?? {})).toEqual(['type', 'revision', 'providers'])
    expect(Object.keys(messages[1] ?? {})).toEqual(['type', 'revision', 'event', 'provider'])
  })
})
