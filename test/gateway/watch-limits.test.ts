// The feed's bounds (issue 9, item 4): a cap on clients, a bound on the unsent bytes of all
// clients together (the slowest closed first), a reset snapshot instead of a replay longer than
// a snapshot, and resumes read from the leader one page at a time, in turn.
import { describe, expect, it } from 'vitest'
import { createReplica } from '../../server/gateway/replica.js'
import { waitFor } from '../../harness/wait-for.js'
import { applyAll, eventRevisions, history, noLeader, provider, range, replicaWithHistory, useWatchGateway } from './helpers.js'

const { gateway, open } = useWatchGateway()

describe('/v1/watch bounds', () => {
  it('refuses an upgrade beyond maxClients with 503, a code and Retry-After, and admits again below it', async () => {
    const replica = createReplica()
    replica.loadSnapshot(1, [])
    const { base } = await gateway({ replica, watch: { maxClients: 2 } })
    const a = open(base)
    const b = open(base)
    await a.received(1)
    await b.received(1)
    const third = open(base)
    const refused = await third.refused
    expect(refused.statusCode).toBe(503)
    expect(refused.retryAfter).toBe('1')
    expect(JSON.parse(refused.body)).toEqual({
      statusCode: 503,
      code: 'ROSTER_ERR_TOO_MANY_WATCHERS',
      error: 'Service Unavailable',
      message: 'this gateway serves its maximum of 2 feed clients; retry later or use another gateway'
    })
    a.ws.close()
    await a.closed
    // The hub forgets a client when its socket closes; the next upgrade is admitted.
    await waitFor(async () => {
      const next = open(base)
      const outcome = await Promise.race([next.received(1, 2000).then(() => 'open'), next.refused.then(() => 'refused')])
      return outcome === 'open'
    }, { what: 'an upgrade admitted once a client left' })
  })

  it('closes the slowest of the stalled clients first with 4008 when all together hold too much, while a fast client keeps receiving', async () => {
    const replica = createReplica()
    replica.loadSnapshot(0, [])
    // The per-client bound is set out of reach (64 MiB): only the bound on all clients acts.
    const { base } = await gateway({ replica, watch: { maxBufferedBytes: 64 * 1024 * 1024, maxTotalBufferedBytes: 1024 * 1024 } })
    const fast = open(base)
    const slowest = open(base)
    const slow = open(base)
    for (const c of [fast, slowest, slow]) await c.received(1)
    // ~15 KB per event; batches let the fast client read as it goes, as a real one would.
    const meta = Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`k${i}`, 'x'.repeat(500)]))
    let revision = 0
    const push = async (n: number): Promise<void> => {
      applyAll(replica, history(revision + 1, n, { meta, width: 50 }))
      revision += n
      await fast.received(1 + revision, 10_000)
    }
    // Both stop reading; the kernel buffers fill, then the server's. The slowest stops 200
    // events (~3 MB) earlier, so from then on it always holds more unsent bytes than the other.
    slowest.ws.pause()
    await push(200)
    slow.ws.pause()
    // ~36 MB: beyond what loopback's kernel buffers absorb for both, and the 1 MiB bound.
    for (let i = 0; i < 24; i++) await push(100)
    expect(eventRevisions(fast.messages)).toEqual(range(1, revision))
    slowest.ws.resume()
    slow.ws.resume()
    const [first, second] = await Promise.all([slowest.closed, slow.closed])
    expect(first.code).toBe(4008)
    expect(second.code).toBe(4008)
    const hint = (reason: string): number => Number(/^too far behind; resume with since=(\d+)$/.exec(reason)?.[1])
    // The slowest was closed first (at an earlier revision), each with everything before its
    // resume hint delivered and nothing after it.
    expect(hint(first.reason)).toBeLessThan(hint(second.reason))
    expect(eventRevisions(slowest.messages)).toEqual(range(1, hint(first.reason)))
    expect(eventRevisions(slow.messages)).toEqual(range(1, hint(second.reason)))
    expect(hint(second.reason)).toBeLessThan(revision)
    expect(fast.ws.readyState).toBe(fast.ws.OPEN)
  })

  it('sends a reset snapshot instead of replaying more events than a snapshot holds (every service)', async () => {
    const { replica } = replicaWithHistory(40, 100, 3)
    const { base } = await gateway({ replica, watch: {} })
    const c = open(base, '?since=10') // 30 events, 3 providers
    const [first] = await c.received(1)
    expect(first).toMatchObject({ type: 'snapshot', reset: true, revision: 40 })
    expect(first?.type === 'snapshot' && first.providers.map((p) => p.id)).toEqual(['orders-0', 'orders-1', 'orders-2'])
    applyAll(replica, history(41, 1, { width: 3 }))
    expect(eventRevisions(await c.received(2))).toEqual([41])
  })

  it('sends a reset snapshot, and no event before it, when a filtered replay from the leader outgrows the snapshot', async () => {
    const { replica, log } = replicaWithHistory(60, 5, 3)
    replica.apply({ revision: 61, event: 'registered', provider: provider({ id: 'b-1', service: 'billing', revision: 61 }) })
    const leader = noLeader({ log: { floor: 0, changes: log } })
    const { base } = await gateway({ replica, watch: { leaderPageSize: 7 }, leader })
    const c = open(base, '?since=2&service=orders') // 58 orders events, 3 orders providers
    const [first] = await c.received(1)
    expect(first).toMatchObject({ type: 'snapshot', reset: true, revision: 61 })
    expect(first?.type === 'snapshot' && first.providers.map((p) => p.id)).toEqual(['orders-0', 'orders-1', 'orders-2'])
    // The first page (7 events) already outgrew the 3-provider snapshot.
    expect(leader.calls).toBe(1)
  })

  it('serves concurrent resumes in pages, one leader read at a time, every event once and in order', async () => {
    const head = 300
    const { replica, log } = replicaWithHistory(head, 10, head)
    const leader = noLeader({ log: { floor: 0, changes: log } })
    let inFlight = 0
    let maxInFlight = 0
    const changesSince = leader.changesSince.bind(leader)
    leader.changesSince = async (revision, limit) => {
      inFlight++
      maxInFlight = Math.max(maxInFlight, inFlight)
      // A turn for the other catch-ups to try to read at the same time.
      await new Promise((resolve) => setImmediate(resolve))
      try { return await changesSince(revision, limit) } finally { inFlight-- }
    }
    const { base } = await gateway({ replica, watch: { leaderPageSize: 25, maxLeaderCatchUps: 1 }, leader })
    const resumers = [0, 17, 150].map((since) => ({ since, c: open(base, `?since=${since}`) }))
    for (const { since, c } of resumers) {
      const messages = await c.received(head - since)
      expect(messages.every((m) => m.type === 'event')).toBe(true)
      expect(eventRevisions(messages)).toEqual(range(since + 1, head))
    }
    expect(maxInFlight).toBe(1)
    expect(leader.calls).toBeGreaterThanOrEqual(Math.ceil((head - 10) / 25) * 2)
    applyAll(replica, history(head + 1, 2, { width: 2 }))
    for (const { since, c } of resumers) expect(eventRevisions(await c.received(head - since + 2))).toEqual(range(since + 1, head + 2))
  })
})
