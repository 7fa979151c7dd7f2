// The gateway's Clone client (createLeaderClient + createReplica) against a scripted leader over
// real loopback sockets (test/helpers/scripted-clone-leader.ts): what the replica ends up with,
// and in which order its listeners (the WebSocket feed) see changes, when events arrive in
// order, are lost in the middle or at the tail, come from a fenced epoch, or are garbage; how
// writes resolve or fail; and how the client notices a silent leader and follows another one.
// Absence is always bounded by a later message on the same socket, which cannot overtake it.
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { context } from 'zeromq'
import { LeaderUnavailableError } from '../../server/gateway/errors.js'
import { createLeaderClient, type LeaderClient } from '../../server/gateway/leader-client.js'
import { createReplica, type Replica } from '../../server/gateway/replica.js'
import { encode } from '../../server/protocol/frames.js'
import { BATCH_ITEMS, type WriteOp, type WriteResult } from '../../server/protocol/messages.js'
import type { Change } from '../../server/protocol/model.js'
import { silentLog } from '../../server/common/log.js'
import { freeLeaderEndpoint } from '../../harness/ports.js'
import { startCloneLeader, type ScriptedCloneLeader } from '../helpers/scripted-clone-leader.js'
import { waitFor } from '../../harness/wait-for.js'
import { change, provider } from './helpers.js'

beforeAll(() => {
  context.blocky = false
})

const leaders: ScriptedCloneLeader[] = []
const clients: LeaderClient[] = []

afterEach(async () => {
  await Promise.all(clients.splice(0).map(async (c) => await c.stop()))
  for (const l of leaders.splice(0)) l.close()
})

/** Change `revision` of the test history: providers orders-1 and orders-2 registered at 1 and 2,
 *  then alternating updates whose meta names the revision, so every change is recognisable. */
function rev (revision: number, meta: Record<string, string> = {}): Change {
  const id = `orders-${((revision - 1) % 2) + 1}`
  return change(revision, revision <= 2 ? 'registered' : 'updated', provider({ id, state: 'pending', meta: { rev: String(revision), ...meta } }))
}
const revs = (from: number, to: number): Change[] => Array.from({ length: to - from + 1 }, (_, i) => rev(from + i))

async function leader (opts: Parameters<typeof startCloneLeader>[0] = {}): Promise<ScriptedCloneLeader> {
  const l = await startCloneLeader(opts)
  leaders.push(l)
  return l
}

interface Harness { client: LeaderClient, replica: Replica, seen: Array<number | 'reset'> }

function client (candidates: string[]): Harness {
  const replica = createReplica()
  const seen: Array<number | 'reset'> = []
  replica.subscribe({ change: (c) => { seen.push(c.revision) }, reset: () => { seen.push('reset') } })
  const c = createLeaderClient({ candidates, replica, log: silentLog })
  clients.push(c)
  c.start()
  return { client: c, replica, seen }
}

/** A client that has loaded the scripted leader's snapshot at its head and whose SUB is in. */
async function synced (opts: { epoch?: number, head?: number } = {}): Promise<Harness & { l: ScriptedCloneLeader }> {
  const l = await leader({ epoch: opts.epoch, log: revs(1, opts.head ?? 2) })
  const h = client([l.endpoint])
  await waitFor(() => h.replica.ready && h.replica.revision === l.head, { what: `a replica at ${l.head}` })
  await l.subscribed()
  return { ...h, l }
}

/** Resolves after the next PING the leader receives: the client has sent everything it queued
 *  on its DEALER before that PING (one socket, one queue, in order). */
async function nextPing (l: ScriptedCloneLeader): Promise<void> {
  const from = l.received.length
  await waitFor(() => l.messages('PING', from).length > 0, { what: 'a PING' })
}

const register: WriteOp = {
  type: 'register',
  service: 'orders',
  id: 'orders-9',
  spec: { host: '10.0.0.5', port: 8080, protocol: 'http', heartbeat: 'tcp://10.0.0.5:9100' }
}

describe('gateway leader client', () => {
  it('subscribes, loads a snapshot, applies events held meanwhile and then the live feed, in order', async () => {
    const l = await leader({ log: revs(1, 2) })
    l.answerSnapshots = false
    const { client: c, replica, seen } = client([l.endpoint])
    await waitFor(() => l.messages('SNAPSHOT_REQ').length === 1, { what: 'a SNAPSHOT_REQ' })
    // The SUB was connected before the snapshot was asked for (Clone: subscribe first).
    await l.subscribed()
    // Revision 3 is published while the snapshot (at 2) is still on its way: it must be held.
    l.publish(rev(3))
    await nextPing(l)
    expect(replica.ready).toBe(false)
    l.releaseSnapshots(2)
    await waitFor(() => replica.revision === 3, { what: 'revision 3 applied after the snapshot' })
    l.publish(rev(4))
    await waitFor(() => replica.revision === 4, { what: 'revision 4' })

    expect(seen).toEqual(['reset', 3, 4])
    expect(l.messages('SINCE_REQ')).toEqual([])
    expect(c.connected).toBe(true)
    expect(replica.providers().map((p) => [p.id, p.meta.rev, p.revision])).toEqual([['orders-1', '3', 3], ['orders-2', '4', 4]])
  })

  it('repairs a dropped event from the change log: 5 then 7 → SINCE_REQ 5 → 6 and 7, nothing twice', async () => {
    const { l, replica, seen, client: c } = await synced({ head: 4 })
    l.publish(rev(5))
    l.append(rev(6)) // lost on the way
    l.publish(rev(7))
    await waitFor(() => replica.revision === 7, { what: 'revision 7' })
    expect(l.messages('SINCE_REQ').map((m) => m.body.revision)).toEqual([5])
    expect(seen).toEqual(['reset', 5, 6, 7])
    expect(replica.provider('orders-2')?.meta.rev).toBe('6')
    expect(replica.provider('orders-1')?.meta.rev).toBe('7')
    expect(c.stats.repairs).toBe(1)
    // The live feed continues after the repair.
    l.publish(rev(8))
    await waitFor(() => replica.revision === 8, { what: 'revision 8' })
    expect(seen).toEqual(['reset', 5, 6, 7, 8])
  })

  it('repairs a lost tail when a BEAT announces a revision above the replica', async () => {
    const { l, replica, seen } = await synced({ head: 2 })
    l.append(rev(3))
    l.append(rev(4))
    l.beat()
    await waitFor(() => replica.revision === 4, { what: 'revision 4 from the BEAT' })
    expect(l.messages('SINCE_REQ').map((m) => m.body.revision)).toEqual([2])
    expect(seen).toEqual(['reset', 3, 4])
    // A BEAT at the replica's revision asks for nothing: EVENT 5 behind it on the same SUB is
    // applied, and a SINCE_REQ the BEAT caused would have been queued before the next PING.
    l.beat()
    l.publish(rev(5))
    await waitFor(() => replica.revision === 5, { what: 'revision 5' })
    await nextPing(l)
    expect(l.messages('SINCE_REQ')).toHaveLength(1)
    expect(seen).toEqual(['reset', 3, 4, 5])
  })

  it('asks for a new snapshot when the missing range is no longer available, and resets the replica', async () => {
    const { l, replica, seen, client: c } = await synced({ head: 2 })
    l.append(rev(3))
    l.append(rev(4))
    l.append(rev(5))
    l.floor = 4
    l.publish(rev(6))
    await waitFor(() => replica.revision === 6, { what: 'revision 6' })
    expect(l.messages('SINCE_REQ').map((m) => m.body.revision)).toEqual([2])
    expect(l.messages('SNAPSHOT_REQ')).toHaveLength(2)
    expect(c.stats.snapshots).toBe(2)
    expect(seen).toEqual(['reset', 'reset'])
    expect(replica.providers()).toEqual(l.providersAt(6))
    l.publish(rev(7))
    await waitFor(() => replica.revision === 7, { what: 'revision 7' })
    expect(seen).toEqual(['reset', 'reset', 7])
  })

  it('repairs a long gap page by page, until it reaches the head', async () => {
    const { l, replica, seen } = await synced({ head: 2 })
    for (let r = 3; r <= 5010; r++) l.append(rev(r))
    l.beat()
    await waitFor(() => replica.revision === 5010, { timeoutMs: 10_000, what: 'revision 5010' })
    // Pages of at most 5000 (REPAIR_PAGE): the second request starts where the first ended.
    expect(l.messages('SINCE_REQ').map((m) => [m.body.revision, m.body.limit])).toEqual([[2, 5000], [5002, 5000]])
    expect(seen.slice(1)).toEqual(Array.from({ length: 5008 }, (_, i) => i + 3))
  })

  it('asks again for a snapshot the leader did not answer in time', async () => {
    const l = await leader({ log: revs(1, 2) })
    l.answerSnapshots = false
    const { replica } = client([l.endpoint])
    await waitFor(() => l.messages('SNAPSHOT_REQ').length === 1, { what: 'a first SNAPSHOT_REQ' })
    const firstAt = l.messages('SNAPSHOT_REQ')[0]!.at
    l.answerSnapshots = true // the held request stays unanswered
    await waitFor(() => replica.ready, { timeoutMs: 5000, what: 'a replica from the second request' })
    const asks = l.messages('SNAPSHOT_REQ')
    expect(asks).toHaveLength(2)
    // REQUEST_TIMEOUT_MS = 2 s
    expect(asks[1]!.at - firstAt).toBeGreaterThanOrEqual(1900)
    expect(asks[1]!.at - firstAt).toBeLessThan(3000)
    expect(replica.revision).toBe(2)
  })

  it('passes change-log queries to the leader, and fails them without one', async () => {
    const { l, client: c } = await synced({ head: 6 })
    l.floor = 3
    expect(await c.changesSince(4, 10)).toEqual({ available: true, changes: revs(5, 6) })
    expect(await c.changesSince(4, 1)).toEqual({ available: true, changes: revs(5, 5) })
    expect(await c.changesSince(1, 10)).toEqual({ available: false, changes: [] })
    expect(l.messages('SINCE_REQ').map((m) => m.body.limit)).toEqual([10, 1, 10])
    const { client: lonely } = client([await freeLeaderEndpoint()])
    await expect(lonely.changesSince(0, 10)).rejects.toBeInstanceOf(LeaderUnavailableError)
  })

  it('ignores feed messages from an older epoch than one already seen', async () => {
    const { l, replica, seen, client: c } = await synced({ epoch: 5, head: 2 })
    // A deposed leader's EVENT for the next revision, and its BEAT far ahead.
    l.publish(rev(3, { from: 'deposed' }), 4)
    l.beat(50, 4)
    l.publish(rev(3))
    await waitFor(() => replica.revision === 3, { what: 'revision 3 from the current leader' })
    expect(replica.provider('orders-1')?.meta).toEqual({ rev: '3' })
    expect(seen).toEqual(['reset', 3])
    expect(c.stats.fencedEvents).toBe(2)
    // The fenced BEAT triggered no repair: any SINCE_REQ it caused would precede this PING.
    await nextPing(l)
    expect(l.messages('SINCE_REQ')).toEqual([])
  })

  it('applies LAST_SEEN to the replica without a revision or a listener call, and ignores an older epoch\'s', async () => {
    const { l, replica, seen } = await synced({ epoch: 5, head: 2 })
    const t = Date.parse('2026-11-27T10:00:00.000Z')
    l.publish(change(3, 'up', provider({ id: 'orders-1', state: 'up', lastSeen: new Date(t).toISOString() })))
    await waitFor(() => replica.revision === 3, { what: 'the up at 3' })
    l.publishRaw(encode('LAST_SEEN', { epoch: 4, seen: [['orders-1', t + 900]] }))
    l.publishRaw(encode('LAST_SEEN', { epoch: 5, seen: [['orders-1', t + 500], ['orders-2', t + 500]] }))
    // Bounded by a later EVENT on the same SUB, which cannot overtake them.
    l.publish(rev(4))
    await waitFor(() => replica.revision === 4, { what: 'revision 4' })
    expect(replica.provider('orders-1')).toMatchObject({ lastSeen: new Date(t + 500).toISOString(), revision: 3 })
    // orders-2 is pending: its lastSeen comes with its events.
    expect(replica.provider('orders-2')?.lastSeen).toBeNull()
    expect(seen).toEqual(['reset', 3, 4])
  })

  it('ignores a reply from an older epoch on its DEALER', async () => {
    const { l, client: c } = await synced({ epoch: 5 })
    l.onWrite = (_op, requestId) => {
      l.reply('RESULT', { epoch: 4, results: [{ requestId, result: { ok: true, statusCode: 201, revision: 666 } }] })
      l.reply('RESULT', { epoch: 5, results: [{ requestId, result: { ok: true, statusCode: 201, revision: 3 } }] })
    }
    expect(await c.write(register)).toEqual({ ok: true, statusCode: 201, revision: 3 })
  })

  it('counts and drops bad frames on the feed and on the DEALER, and keeps working', async () => {
    const { l, replica, seen, client: c } = await synced({ head: 2 })
    const raw = (verb: string, body: unknown): Buffer[] =>
      [Buffer.from(verb, 'ascii'), Buffer.from(typeof body === 'string' ? body : JSON.stringify(body))]
    const feed: Buffer[][] = [
      [Buffer.from('EVENT')],
      raw('HELLO', {}),
      raw('EVENT', '{"epoch": 1, "change": '),
      raw('EVENT', { epoch: 1, change: { revision: 3, event: 'updated' } }),
      raw('BEAT', { epoch: 1, revision: '9' }),
      encode('PONG', { epoch: 1, revision: 9 }) // a DEALER verb on the feed
    ]
    for (const f of feed) l.publishRaw(f)
    await waitFor(() => c.stats.badFrames >= feed.length, { what: `${feed.length} bad feed frames counted` })
    expect(c.stats.badFrames).toBe(feed.length)

    const dealer: Buffer[][] = [
      [Buffer.from('PONG')],
      raw('NOPE', {}),
      raw('RESULT', 'garbage'),
      raw('SNAPSHOT', { requestId: 'x', epoch: 1 }),
      encode('BEAT', { epoch: 1, revision: 9, tokens: 0 }) // a feed verb on the DEALER
    ]
    for (const f of dealer) l.sendRaw(f)

    // Still working: the feed applies the next event, writes resolve, and nothing bad got in.
    l.publish(rev(3))
    await waitFor(() => replica.revision === 3, { what: 'revision 3 after the bad frames' })
    expect(await c.write(register)).toMatchObject({ ok: true })
    expect(seen).toEqual(['reset', 3])
    expect(c.connected).toBe(true)
    expect(l.messages('SINCE_REQ')).toEqual([])
    // The dealer's bad frames were read before that RESULT (one socket, in order): all counted.
    expect(c.stats.badFrames).toBe(feed.length + dealer.length)
  })

  it('resolves write() with the leader\'s RESULT, whether it accepts or refuses', async () => {
    const { l, client: c } = await synced()
    const written: WriteOp[] = []
    let answer: WriteResult = { ok: true, statusCode: 201, revision: 3 }
    l.onWrite = (op, requestId) => {
      written.push(op)
      l.reply('RESULT', { epoch: l.epoch, results: [{ requestId, result: answer }] })
    }
    expect(await c.write(register)).toEqual({ ok: true, statusCode: 201, revision: 3 })
    answer = { ok: false, statusCode: 409, code: 'ROSTER_ERR_PROVIDER_CONFLICT', message: 'taken' }
    expect(await c.write(register)).toEqual(answer)
    expect(written).toEqual([register, register])
  })

  it('sends the writes of one event-loop turn as one WRITE, in order, and matches each RESULT entry to its write', async () => {
    const { l, client: c } = await synced()
    const ids: string[] = []
    l.onWrite = (_op, requestId) => { ids.push(requestId) }
    const ops: WriteOp[] = Array.from({ length: BATCH_ITEMS + 3 }, (_v, i) => ({ type: 'deregister', service: 'orders', id: `o-${i}` }))
    const answers = ops.map((op) => c.write(op))
    await waitFor(() => ids.length === ops.length, { what: 'every write at the leader' })
    // Two messages: BATCH_ITEMS writes, then the rest, in the order they were made.
    expect(l.messages('WRITE').map((m) => m.body.writes.length)).toEqual([BATCH_ITEMS, 3])
    expect(l.messages('WRITE').flatMap((m) => m.body.writes.map((w) => w.op))).toEqual(ops)
    // RESULTs that mix both WRITEs, in another order: each write gets its own answer.
    const results = ids.map((requestId, i) => ({ requestId, result: { ok: true as const, statusCode: 200, revision: 100 + i } })).reverse()
    l.reply('RESULT', { epoch: l.epoch, results: results.slice(0, BATCH_ITEMS) })
    l.reply('RESULT', { epoch: l.epoch, results: results.slice(BATCH_ITEMS) })
    expect((await Promise.all(answers)).map((r) => r.ok && r.revision)).toEqual(ops.map((_op, i) => 100 + i))
  })

  it('rejects write() with LeaderUnavailableError at once when there is no leader', async () => {
    const nobody = await freeLeaderEndpoint()
    const { client: c } = client([nobody])
    const startedAt = Date.now()
    const err = await c.write(register).then(() => null, (e: unknown) => e)
    expect(err).toBeInstanceOf(LeaderUnavailableError)
    expect((err as LeaderUnavailableError).code).toBe('ROSTER_ERR_LEADER_UNAVAILABLE')
    expect(Date.now() - startedAt).toBeLessThan(500)
    expect(c.connected).toBe(false)
  })

  it('rejects write() with LeaderUnavailableError when the leader never answers it, within the timeout', async () => {
    const { l, client: c } = await synced()
    l.answerWrites = false
    const startedAt = Date.now()
    const err = await c.write(register).then(() => null, (e: unknown) => e)
    const elapsed = Date.now() - startedAt
    expect(err).toBeInstanceOf(LeaderUnavailableError)
    expect((err as LeaderUnavailableError).code).toBe('ROSTER_ERR_LEADER_UNAVAILABLE')
    expect(l.messages('WRITE')).toHaveLength(1)
    // REQUEST_TIMEOUT_MS × 2 = 4 s; still connected all along (the leader PONGs).
    expect(elapsed).toBeGreaterThanOrEqual(3900)
    expect(elapsed).toBeLessThan(6000)
    expect(c.connected).toBe(true)
  }, 15_000)

  it('notices a leader silent for more than ~1.25 s: connected becomes false and pending writes fail; it recovers when the leader answers again', async () => {
    const { l, client: c, replica, seen } = await synced({ head: 2 })
    l.answering = false
    const silentAt = Date.now()
    const pending = c.write(register).then(() => null, (e: unknown) => e)
    await waitFor(() => !c.connected, { timeoutMs: 3000, what: 'connected = false' })
    const elapsed = Date.now() - silentAt
    // 4 missed 250 ms PINGs; the last PONG came at most 250 ms before the silence began.
    expect(elapsed).toBeGreaterThanOrEqual(700)
    expect(elapsed).toBeLessThan(2000)
    const err = await pending
    expect(err).toBeInstanceOf(LeaderUnavailableError)
    expect(Date.now() - silentAt).toBeLessThan(2500) // well before the write's own 4 s timeout

    // The leader answers again, 2 changes further on: the client follows it and repairs.
    l.append(rev(3))
    l.append(rev(4))
    l.answering = true
    await waitFor(() => c.connected && replica.revision === 4, { timeoutMs: 5000, what: 'reconnected and repaired to 4' })
    expect(seen).toEqual(['reset', 3, 4])
  })

  it('fails over: with the first candidate not listening, it follows the second within a few seconds', async () => {
    const nobody = await freeLeaderEndpoint()
    const l = await leader({ log: revs(1, 3) })
    const startedAt = Date.now()
    const { client: c, replica } = client([nobody, l.endpoint])
    await waitFor(() => c.connected && replica.revision === 3, { timeoutMs: 5000, what: 'following the second candidate' })
    // It first gave the silent candidate its full second.
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(900)
    await l.subscribed()
    l.publish(rev(4))
    await waitFor(() => replica.revision === 4, { what: "revision 4 from the second candidate's feed" })
  })

  it('fails over to a new leader with a higher epoch and repairs from its own revision, without a reset', async () => {
    const first = await leader({ epoch: 1, log: revs(1, 2) })
    const second = await leader({ epoch: 2, log: revs(1, 4) })
    const { client: c, replica, seen } = client([first.endpoint, second.endpoint])
    await waitFor(() => replica.revision === 2, { what: 'synced with the first leader' })
    first.answering = false
    await waitFor(() => c.connected && replica.revision === 4, { timeoutMs: 5000, what: 'repaired from the second leader' })
    expect(seen).toEqual(['reset', 3, 4])
    expect(second.messages('SINCE_REQ').map((m) => m.body.revision)).toEqual([2])
    expect(second.messages('SNAPSHOT_REQ')).toEqual([])
    // Its feed is now the second leader's; the first one's is no longer followed.
    await second.subscribed()
    first.publishRaw(encode('EVENT', { epoch: first.epoch, changes: [rev(5, { from: 'deposed' })] }))
    second.publish(rev(5))
    await waitFor(() => replica.revision === 5, { what: 'revision 5 from the second leader' })
    expect(replica.provider('orders-1')?.meta).toEqual({ rev: '5' })
  })
})
