// The leader shell over real sockets and a real store, on both backends: scripted followers (a
// DEALER and a SUB in this process that speak RIP/1, see scripted-follower.ts) play gateways and
// workers, and every assertion is about what such a peer sees on the wire or what is committed.
// "Nothing happened" is always bounded by a later event: the feed is ordered and gap-free, so a
// marker write's EVENT proves that no EVENT was published before it that we did not see.
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { context } from 'zeromq'
import { createLeader, type Leader } from '../../server/leader/leader.js'
import { encode } from '../../server/protocol/frames.js'
import { BATCH_ITEMS, type Body, type Observation, type WriteOp, type WriteResult } from '../../server/protocol/messages.js'
import type { Change, ProviderSpec } from '../../server/protocol/model.js'
import { silentLog } from '../../server/common/log.js'
import { createPgLeaderLock } from '../../server/store/leader-lock.js'
import { createTokenStore } from '../../server/store/token-store.js'
import { createRegistryStore, type RegistryStore } from '../../server/store/registry-store.js'
import { freeLeaderEndpoint } from '../../harness/ports.js'
import { adminQuery } from '../../harness/postgres-admin.js'
import { describeWithDatabase, testDatabaseUrl, type Backend } from '../helpers/postgres.js'
import { waitFor } from '../../harness/wait-for.js'
import { replayAssigns } from './replay-assigns.js'
import { readLeaderFeed, startFollower, type FeedReader, type ScriptedFollower } from './scripted-follower.js'

beforeAll(() => {
  context.blocky = false
})

function spec (n: number, extra: Partial<ProviderSpec> = {}): ProviderSpec {
  return { host: '10.0.0.5', port: 8000 + n, protocol: 'http', heartbeat: `tcp://127.0.0.1:${30_000 + n}`, heartbeatIntervalMs: 100, ...extra }
}
const register = (service: string, id: string, s: ProviderSpec): WriteOp => ({ type: 'register', service, id, spec: s })
const deregister = (service: string, id: string): WriteOp => ({ type: 'deregister', service, id })

function frames (verb: string, body: unknown): Buffer[] {
  return [Buffer.from(verb, 'ascii'), Buffer.from(typeof body === 'string' ? body : JSON.stringify(body))]
}

/** Polls `check` for `ms`, failing at once if it is ever false: a bounded "stays so". */
async function holdsFor (ms: number, check: () => boolean, what: string): Promise<void> {
  const until = Date.now() + ms
  while (Date.now() < until) {
    if (!check()) throw new Error(`no longer true: ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

describeWithDatabase('leader', (backend: Backend) => {
  const leaders: Leader[] = []
  const followers: ScriptedFollower[] = []
  const feeds: FeedReader[] = []

  // Registered after the backend's own hooks, so it runs before they close the database.
  afterEach(async () => {
    for (const f of followers.splice(0)) f.close()
    for (const r of feeds.splice(0)) r.close()
    for (const l of leaders.splice(0)) await l.stop()
  })

  interface Started { leader: Leader, bind: string, store: RegistryStore, lockName: string }
  let lockNames = 0

  async function startLeader (opts: { bind?: string, wait?: boolean } = {}): Promise<Started> {
    const bind = opts.bind ?? await freeLeaderEndpoint()
    const store = createRegistryStore(backend.db)
    const lockName = `leader-test-${process.pid}-${++lockNames}`
    const lock = createPgLeaderLock({ databaseUrl: backend.url, applicationName: lockName })
    const leader = createLeader({ store, tokens: createTokenStore(backend.db), lock, log: silentLog, config: { bind } })
    leaders.push(leader)
    await leader.start()
    if (opts.wait !== false) await leader.whenActive()
    return { leader, bind, store, lockName }
  }

  function follower (bind: string, id?: string): ScriptedFollower {
    const f = startFollower(bind, id)
    followers.push(f)
    return f
  }

  async function feed (bind: string, onEvent?: (c: Change) => void): Promise<FeedReader> {
    const r = readLeaderFeed(bind, onEvent)
    feeds.push(r)
    await r.connected()
    return r
  }

  /** An `updated` write on provider `marker` (registered on first use); returns its revision
   *  once its EVENT is on `r`. Every EVENT published before it has then been received too. */
  let markers = 0
  async function marker (gw: ScriptedFollower, r: FeedReader): Promise<number> {
    const result = await gw.write(register('markers', 'marker', spec(999, { tags: [`m${++markers}`] })))
    if (!result.ok) throw new Error(`marker write failed: ${result.message}`)
    await r.nextChange((c) => c.revision === result.revision)
    return result.revision
  }

  /** The EVENTs on `r` with a revision in (after, before). */
  function eventsBetween (r: FeedReader, after: number, before: number): Change[] {
    return r.changes().filter((c) => c.revision > after && c.revision < before)
  }

  it('answers writes only after commit: 201, idempotent 200, updated 200, 409 conflict, 404 unknown, deregistered', async () => {
    const { bind, store } = await startLeader()
    const r = await feed(bind)
    const gw = follower(bind)

    const created = await gw.write(register('orders', 'o-1', spec(1)))
    expect(created).toEqual({
      ok: true,
      statusCode: 201,
      revision: 1,
      provider: {
        id: 'o-1', service: 'orders', host: '10.0.0.5', port: 8001, protocol: 'http', heartbeat: 'tcp://127.0.0.1:30001',
        heartbeatIntervalMs: 100, tags: [], meta: {}, state: 'pending', stateSince: expect.any(String), lastSeen: null, revision: 1
      }
    })
    expect((await store.changesSince(0, 10)).changes.map((c) => c.revision)).toEqual([1])

    // The same registration again: 200, the stored provider and its revision, nothing new.
    const again = await gw.write(register('orders', 'o-1', spec(1)))
    expect(again).toEqual({ ...created, statusCode: 200 })

    const updated = await gw.write(register('orders', 'o-1', spec(1, { tags: ['blue'] })))
    expect(updated).toMatchObject({ ok: true, statusCode: 200, revision: 2, provider: { id: 'o-1', tags: ['blue'], state: 'pending', revision: 2 } })
    await r.nextChange((c) => c.revision === 2)
    // The repeated registration published nothing: 2 directly follows 1.
    expect(r.changes().map((c) => [c.revision, c.event])).toEqual([[1, 'registered'], [2, 'updated']])

    const conflict = await gw.write(register('billing', 'o-1', spec(2)))
    expect(conflict).toEqual({
      ok: false, statusCode: 409, code: 'ROSTER_ERR_PROVIDER_CONFLICT', message: expect.stringMatching(/o-1.*orders/)
    })
    const unknown = await gw.write(deregister('orders', 'nope'))
    expect(unknown).toMatchObject({ ok: false, statusCode: 404, code: 'ROSTER_ERR_PROVIDER_NOT_FOUND' })
    const wrongService = await gw.write(deregister('billing', 'o-1'))
    expect(wrongService).toMatchObject({ ok: false, statusCode: 404, code: 'ROSTER_ERR_PROVIDER_NOT_FOUND' })

    const gone = await gw.write(deregister('orders', 'o-1'))
    expect(gone).toEqual({ ok: true, statusCode: 200, revision: 3 })
    const event = await r.nextChange((c) => c.revision === 3)
    expect(event).toMatchObject({ event: 'deregistered', provider: { id: 'o-1', service: 'orders' } })
    // Refusals took no revision and published nothing.
    expect(r.changes().map((c) => c.revision)).toEqual([1, 2, 3])
    expect(await gw.write(deregister('orders', 'o-1'))).toMatchObject({ ok: false, statusCode: 404 })
    const snap = await gw.snapshot()
    expect(snap).toMatchObject({ revision: 3, providers: [] })
    expect((await store.load()).revision).toBe(3)
  })

  it('publishes every EVENT after its commit, in strictly increasing revisions without gaps, and BEATs the head and epoch', async () => {
    const { bind, store } = await startLeader()
    // Started the moment each EVENT arrives: the change must already be in the store.
    const lookups: Array<Promise<{ revision: number, found: boolean }>> = []
    const r = await feed(bind, (c) => {
      lookups.push(store.changesSince(c.revision - 1, 1).then(({ changes }) => ({
        revision: c.revision,
        found: changes[0]?.revision === c.revision && changes[0]?.provider.id === c.provider.id
      })))
    })
    const gws = [follower(bind), follower(bind), follower(bind)]
    const { epoch } = await gws[0]!.pong()

    // Concurrent writers, so the leader commits several changes per batch.
    const results = await Promise.all(Array.from({ length: 60 }, async (_, i) => {
      const gw = gws[i % gws.length]!
      const id = `p-${i % 20}`
      return await gw.write(register('orders', id, spec(i % 20, { tags: [`t${Math.floor(i / 20)}`] })))
    }))
    expect(results.every((res) => res.ok)).toBe(true)
    const head = Math.max(...results.map((res) => (res.ok ? res.revision : 0)))
    expect(head).toBe(60)
    await r.nextChange((c) => c.revision === head)

    expect(r.changes().map((c) => c.revision)).toEqual(Array.from({ length: 60 }, (_, i) => i + 1))
    const checked = await Promise.all(lookups)
    expect(checked.filter((l) => !l.found)).toEqual([])
    expect(checked).toHaveLength(60)

    // A BEAT never announces a revision whose EVENT has not been published before it.
    let seen = 0
    for (const m of r.received) {
      if (m.verb === 'EVENT') seen = Math.max(seen, ...(m.body as Body<'EVENT'>).changes.map((c) => c.revision))
      else expect((m.body as Body<'BEAT'>).revision).toBeLessThanOrEqual(seen)
      expect(m.body.epoch).toBe(epoch)
    }
    const from = r.received.length
    const beat = await waitFor(() => r.received.slice(from).find((m) => m.verb === 'BEAT'), { what: 'a BEAT after the writes' })
    expect(beat.body).toEqual({ epoch, revision: 60, tokens: 0 })
  })

  it('takes a WRITE of many writes in order, answers each gateway with its own RESULTs, and publishes a commit as EVENTs of its changes', async () => {
    const { bind } = await startLeader()
    const r = await feed(bind)
    const [one, two] = [follower(bind), follower(bind)]
    const { epoch } = await one.pong()
    await two.pong()
    const n = BATCH_ITEMS + 6
    // The same provider registered and then updated within one message: order decides the outcome.
    const writes = (prefix: string): Array<{ requestId: string, op: WriteOp }> => Array.from({ length: n }, (_v, i) => ({
      requestId: `${prefix}-${i}`,
      op: register('orders', `${prefix}-${Math.floor(i / 2)}`, spec(i, { tags: [`v${i % 2}`] }))
    }))
    // Each in two messages (a WRITE holds at most BATCH_ITEMS), back to back.
    for (const [gw, prefix] of [[one, 'one'], [two, 'two']] as const) {
      gw.send('WRITE', { writes: writes(prefix).slice(0, BATCH_ITEMS) })
      gw.send('WRITE', { writes: writes(prefix).slice(BATCH_ITEMS) })
    }
    const answered = async (gw: ScriptedFollower, prefix: string): Promise<Array<{ requestId: string, result: WriteResult }>> => {
      await waitFor(() => gw.messages('RESULT').flatMap((m) => m.body.results).length >= n, { what: `${n} results at ${prefix}` })
      const messages = gw.messages('RESULT')
      expect(messages.every((m) => m.body.epoch === epoch && m.body.results.length <= BATCH_ITEMS)).toBe(true)
      return messages.flatMap((m) => m.body.results)
    }
    for (const [gw, prefix] of [[one, 'one'], [two, 'two']] as const) {
      const results = await answered(gw, prefix)
      // Every write answered once, to the gateway that sent it, in its order: new, then updated.
      expect(results.map((x) => x.requestId)).toEqual(writes(prefix).map((w) => w.requestId))
      expect(results.map((x) => x.result.statusCode)).toEqual(Array.from({ length: n }, (_v, i) => (i % 2 === 0 ? 201 : 200)))
    }
    await r.nextChange((c) => c.revision === 2 * n)
    const events = r.received.filter((m) => m.verb === 'EVENT').map((m) => (m.body as Body<'EVENT'>).changes)
    expect(events.flat().map((c) => c.revision)).toEqual(Array.from({ length: 2 * n }, (_v, i) => i + 1))
    // Batched: fewer EVENT messages than changes, none over BATCH_ITEMS.
    expect(events.length).toBeLessThan(2 * n)
    expect(Math.max(...events.map((e) => e.length))).toBeLessThanOrEqual(BATCH_ITEMS)
  })

  it('answers SNAPSHOT_REQ with the whole registry at the head, and SINCE_REQ with the range or available:false after a prune', async () => {
    const { bind, store } = await startLeader()
    const gw = follower(bind)
    for (let i = 1; i <= 5; i++) await gw.write(register('orders', `o-${i}`, spec(i)))
    await gw.write(register('orders', 'o-2', spec(2, { meta: { v: '2' } })))
    await gw.write(deregister('orders', 'o-3'))
    const { epoch } = await gw.pong()

    const snap = await gw.snapshot()
    expect(snap.epoch).toBe(epoch)
    expect(snap.revision).toBe(7)
    const byId = new Map(snap.providers.map((p) => [p.id, p]))
    expect([...byId.keys()].sort()).toEqual(['o-1', 'o-2', 'o-4', 'o-5'])
    expect(byId.get('o-2')).toMatchObject({ meta: { v: '2' }, revision: 6 })
    expect(byId.get('o-5')).toMatchObject({ port: 8005, revision: 5, state: 'pending' })
    expect(snap.providers).toEqual(expect.arrayContaining((await store.load()).providers))

    const all = await gw.since(0)
    expect(all).toMatchObject({ epoch, available: true, head: 7 })
    expect(all.events.map((c) => [c.revision, c.event, c.provider.id])).toEqual([
      [1, 'registered', 'o-1'], [2, 'registered', 'o-2'], [3, 'registered', 'o-3'], [4, 'registered', 'o-4'],
      [5, 'registered', 'o-5'], [6, 'updated', 'o-2'], [7, 'deregistered', 'o-3']
    ])
    expect((await gw.since(4, 2)).events.map((c) => c.revision)).toEqual([5, 6])
    expect(await gw.since(7)).toMatchObject({ available: true, events: [], head: 7 })

    // Keep the last two changes: history after 5 is complete, before it is not.
    await store.prune(2)
    expect(await gw.since(0)).toMatchObject({ available: false, events: [], head: 7 })
    expect(await gw.since(4)).toMatchObject({ available: false, events: [] })
    const tail = await gw.since(5)
    expect(tail.available).toBe(true)
    expect(tail.events.map((c) => c.revision)).toEqual([6, 7])
    // The snapshot is unaffected by the prune.
    expect((await gw.snapshot()).revision).toBe(7)
  })

  it('reads the change log one SINCE_REQ at a time, in arrival order, drops beyond its queue, and keeps committing', async () => {
    const { bind } = await startLeader()
    const gw = follower(bind)
    for (let i = 1; i <= 20; i++) await gw.write(register('orders', `o-${i}`, spec(i)))
    const ids = Array.from({ length: 300 }, (_, i) => `burst-${i}`)
    for (const requestId of ids) gw.send('SINCE_REQ', { requestId, revision: 0, limit: 1000 })
    // A write in the middle of the burst commits without waiting for the reads.
    expect(await gw.write(register('orders', 'o-21', spec(21)))).toMatchObject({ ok: true })
    // The last one sent is either answered or was dropped: wait until the reads have drained.
    await waitFor(async () => (await gw.since(0)).head === 21, { what: 'a read after the burst' })
    const answered = gw.messages('EVENTS').map((m) => m.body.requestId).filter((id) => id.startsWith('burst-'))
    expect(answered.length).toBeGreaterThanOrEqual(65)
    expect(answered.length).toBeLessThan(300)
    // Answered in the order asked: the queue is first come, first served.
    expect(answered).toEqual(ids.filter((id) => answered.includes(id)))
  })

  it('counts and drops bad frames on its ROUTER without replying, and keeps serving', async () => {
    const { leader, bind } = await startLeader()
    const gw = follower(bind)
    const bad: Buffer[][] = [
      [Buffer.from('PING')],
      [...encode('PING', { peerId: 'x', role: 'gateway' }), Buffer.from('{}')],
      frames('HELLO', {}),
      frames('PING', '{"peerId": "x", "role": '),
      frames('PING', { peerId: 'x' }),
      frames('SINCE_REQ', { requestId: 'r', revision: -1, limit: 10 }),
      frames('WRITE', { requestId: 'r', op: { type: 'register', service: 'orders', id: 'o-1', spec: spec(1, { port: 70000 }) } }),
      // A feed verb is not a request.
      encode('BEAT', { epoch: 1, revision: 0, tokens: 0 })
    ]
    for (const f of bad) gw.sendRaw(f)
    await waitFor(() => leader.stats.badFrames === bad.length, { what: `badFrames = ${bad.length}` })

    // Replies to one peer keep their order: had any bad frame been answered, that answer
    // would arrive before this snapshot.
    const snap = await gw.snapshot()
    expect(gw.received.map((m) => m.verb)).toEqual(['SNAPSHOT'])
    expect(snap).toMatchObject({ revision: 0, providers: [] })
    expect(leader.status).toBe('active')
    expect(await gw.write(register('orders', 'o-1', spec(1)))).toMatchObject({ ok: true, statusCode: 201, revision: 1 })
    expect(leader.stats.badFrames).toBe(bad.length)
  })

  describe('with workers', () => {
    interface Fleet { leader: Leader, bind: string, store: RegistryStore, gw: ScriptedFollower, r: FeedReader, a: ScriptedFollower, b: ScriptedFollower, ids: string[] }

    /** Two workers PING and READY, then ten providers are registered. */
    async function fleet (): Promise<Fleet> {
      const { leader, bind, store } = await startLeader()
      const r = await feed(bind)
      const gw = follower(bind)
      const a = follower(bind, 'worker-a')
      const b = follower(bind, 'worker-b')
      expect((await a.ready()).body.tasks).toEqual([])
      expect((await b.ready()).body.tasks).toEqual([])
      const ids = Array.from({ length: 10 }, (_, i) => `p-${i}`)
      for (const [i, id] of ids.entries()) await gw.write(register('orders', id, spec(i)))
      await waitFor(() => a.tasks().length === 5 && b.tasks().length === 5, {
        what: `an even spread (a: ${a.tasks().length}, b: ${b.tasks().length})`
      })
      return { leader, bind, store, gw, r, a, b, ids }
    }

    it('spreads providers evenly: each of two workers gets an ASSIGN with 5 tasks, together all 10', async () => {
      const { a, b, ids } = await fleet()
      expect([...a.tasks(), ...b.tasks()].sort()).toEqual([...ids].sort())
      const task = a.task(a.tasks()[0]!)
      const n = Number(a.tasks()[0]!.slice(2))
      expect(task).toEqual({ providerId: `p-${n}`, heartbeat: `tcp://127.0.0.1:${30_000 + n}`, heartbeatIntervalMs: 100, state: 'pending', lastSeen: null })
    })

    it('sends each new task once, in ASSIGNs paced by the tasks they carry (0.05 ms each), and every provider ends up assigned', async () => {
      const { bind } = await startLeader()
      const gw = follower(bind)
      const a = follower(bind, 'worker-a')
      await a.ready()
      // 3,000 registrations, 20 at a time: a burst of many commits, as from clients over REST.
      const n = 3000
      for (let i = 0; i < n; i += 20) {
        await Promise.all(Array.from({ length: 20 }, async (_, j) => await gw.write(register('burst', `b-${i + j}`, spec(i + j)))))
      }
      await waitFor(() => a.tasks().length === n, { timeoutMs: 30_000, what: `all ${n} providers assigned (${a.tasks().length})` })
      const assigns = a.messages('ASSIGN')
      // After its first (empty) list the worker hears only of what changed: each task once.
      // Complete lists each time carried ~20 times that here.
      expect(assigns.slice(1).every((m) => m.body.delta === true)).toBe(true)
      expect(assigns.reduce((sum, m) => sum + m.body.tasks.length, 0)).toBe(n)
      // Each ASSIGN after the first waited 0.05 ms for every task the previous one carried, but
      // at least 10 ms: all but the last fit in the time between the first and the last (plus
      // delivery jitter), and the burst's ASSIGNs were coalesced, not one per commit.
      const waited = assigns.slice(0, -1).reduce((sum, m) => sum + Math.max(10, m.body.tasks.length * 0.05), 0)
      const spanMs = (assigns.at(-1)?.at ?? 0) - (assigns[0]?.at ?? 0)
      expect(waited).toBeLessThanOrEqual(spanMs + 200)
      expect(replayAssigns(assigns.map((m) => m.body)).size).toBe(n)
    }, 60_000)

    it('turns a REPORT from the owning worker into an EVENT and ACKs it only after commit; repeats and foreign reports are no-ops', async () => {
      const { store, gw, r, a, b } = await fleet()
      const mine = a.tasks()[0]!
      const theirs = b.tasks()[0]!
      const lastSeen = Date.now() - 3

      // Started the moment the ACK arrives: by then the change must be committed.
      const atAck: Array<Promise<Change[]>> = []
      a.onReceive = (m) => { if (m.verb === 'ACK') atAck.push(store.changesSince(10, 100).then((x) => x.changes)) }

      a.report(1, [{ providerId: mine, state: 'up', lastSeen }])
      await a.next('ACK', (body) => body.seq === 1)
      const up = await r.nextChange((c) => c.provider.id === mine && c.event === 'up')
      expect(up).toMatchObject({ revision: 11, provider: { state: 'up', lastSeen: new Date(lastSeen).toISOString(), revision: 11 } })
      expect((await atAck[0]!).map((c) => [c.revision, c.event, c.provider.id])).toEqual([[11, 'up', mine]])

      // The same observation again (a resend): ACKed, nothing changes.
      a.report(2, [{ providerId: mine, state: 'up', lastSeen }])
      await a.next('ACK', (body) => body.seq === 2)
      // A report about a provider the other worker watches: ACKed (so it is not resent), ignored.
      a.report(3, [{ providerId: theirs, state: 'up', lastSeen }])
      await a.next('ACK', (body) => body.seq === 3)
      const m = await marker(gw, r)
      expect(eventsBetween(r, 11, m)).toEqual([])
      const snap = await gw.snapshot()
      expect(snap.providers.find((p) => p.id === theirs)?.state).toBe('pending')
      expect(snap.providers.find((p) => p.id === mine)?.state).toBe('up')
    })

    it('keeps a watcher\'s SEEN in memory and forwards it as LAST_SEEN, without a revision; ignores foreign, future and older entries; every later answer carries it', async () => {
      const { leader, gw, r, a, b } = await fleet()
      const mine = a.tasks()[0]!
      const theirs = b.tasks()[0]!
      const t0 = Date.now() - 1000
      const iso = (ms: number): string => new Date(ms).toISOString()
      const lastSeens = (): Array<[string, number]> => r.received.flatMap((m) => (m.verb === 'LAST_SEEN' ? (m as { body: Body<'LAST_SEEN'> }).body.seen : []))
      a.report(1, [{ providerId: mine, state: 'up', lastSeen: t0 }])
      const up = await r.nextChange((c) => c.provider.id === mine && c.event === 'up')

      a.send('SEEN', { workerId: 'worker-a', seen: [[mine, t0 + 100]] })
      await waitFor(() => lastSeens().some(([id]) => id === mine), { what: 'a LAST_SEEN for the provider' })
      expect(lastSeens()).toEqual([[mine, t0 + 100]])
      let snap = await gw.snapshot()
      expect(snap.revision).toBe(up.revision)
      expect(snap.providers.find((p) => p.id === mine)).toMatchObject({ lastSeen: iso(t0 + 100), revision: up.revision })

      // Hostile or stale: another worker's word on it, a value a minute ahead, an older one, a
      // provider that worker does not watch, an unknown one. Then a good one, as a marker: the
      // leader publishes a LAST_SEEN per turn, so an accepted bad entry would show up before it.
      b.send('SEEN', { workerId: 'worker-b', seen: [[mine, t0 + 200]] })
      a.send('SEEN', { workerId: 'worker-a', seen: [[mine, Date.now() + 60_000], [mine, t0 + 50], [theirs, t0 + 200], ['nobody', t0 + 200]] })
      // A SEEN is the word of the worker it names (as a REPORT is), and worker-b does not watch it.
      a.send('SEEN', { workerId: 'worker-b', seen: [[mine, t0 + 250]] })
      a.send('SEEN', { workerId: 'worker-a', seen: [[mine, t0 + 300]] })
      await waitFor(() => lastSeens().length === 2, { what: 'the marker LAST_SEEN' })
      expect(lastSeens()).toEqual([[mine, t0 + 100], [mine, t0 + 300]])
      // Broken bodies are bad frames, counted and dropped.
      const badBefore = leader.stats.badFrames
      a.sendRaw(frames('SEEN', { workerId: 'worker-a', seen: [[mine, -1]] }))
      a.sendRaw(frames('SEEN', { workerId: 'worker-a', seen: Array.from({ length: 1001 }, () => [mine, t0 + 400]) }))
      a.sendRaw(frames('SEEN', { workerId: 'worker-a', seen: [] }))
      await waitFor(() => leader.stats.badFrames === badBefore + 3, { what: 'three bad frames' })

      // No revision moved: the marker write is the next one after the up.
      const m = await marker(gw, r)
      expect(eventsBetween(r, up.revision, m)).toEqual([])
      // The next change of the provider carries the current lastSeen, and so do its answer and its
      // change-log entry, which, being the provider's latest, keeps following it.
      const held = await gw.write({ type: 'maintenance', service: 'orders', id: mine, enabled: true })
      expect(held).toMatchObject({ ok: true, provider: { state: 'maintenance', lastSeen: iso(t0 + 300) } })
      expect((await r.nextChange((c) => c.provider.id === mine && c.event === 'maintenance')).provider.lastSeen).toBe(iso(t0 + 300))
      a.send('SEEN', { workerId: 'worker-a', seen: [[mine, t0 + 400]] })
      await waitFor(() => lastSeens().length === 3, { what: 'a LAST_SEEN in maintenance' })
      const since = await gw.since(up.revision - 1)
      expect(since.events.filter((c) => c.provider.id === mine).map((c) => [c.event, c.provider.lastSeen])).toEqual([['up', iso(t0)], ['maintenance', iso(t0 + 400)]])
      snap = await gw.snapshot()
      expect(snap.providers.find((p) => p.id === mine)?.lastSeen).toBe(iso(t0 + 400))
    })

    it('moves a silent worker\'s providers to a live one within ~1.5 s, carrying their state, without any false down', async () => {
      const { gw, r, a, b } = await fleet()
      const mine = a.tasks()[0]!
      const lastSeen = Date.now() - 3
      a.report(1, [{ providerId: mine, state: 'up', lastSeen }])
      await a.next('ACK', (body) => body.seq === 1)
      const before = await marker(gw, r) // registers 'marker', which goes to one of the workers
      await waitFor(() => a.tasks().length + b.tasks().length === 11, { what: 'the marker provider assigned' })
      const aTasks = a.tasks()
      const everything = [...aTasks, ...b.tasks()].sort()

      const stoppedAt = Date.now()
      a.stopPinging()
      // b. hears only of a.'s tasks, in one delta.
      const moved = await b.next('ASSIGN', (body) => body.tasks.some((t) => t.providerId === mine), { timeoutMs: 5000 })
      expect(moved.body.delta).toBe(true)
      const elapsed = moved.at - stoppedAt
      // WORKER_EXPIRY_MS 1000 after the last PING (at most 250 ms before the stop), checked every 250 ms.
      expect(elapsed).toBeGreaterThanOrEqual(700)
      expect(elapsed).toBeLessThan(2000)
      expect(b.tasks()).toEqual(everything)
      // The task carries what the dead watcher had reported, so the new one continues from it.
      expect(moved.body.tasks.find((t) => t.providerId === mine)).toMatchObject({ state: 'up', lastSeen })
      for (const id of aTasks.filter((x) => x !== mine && x !== 'marker')) {
        expect(moved.body.tasks.find((t) => t.providerId === id)).toMatchObject({ state: 'pending', lastSeen: null })
      }

      // No state change was published because the watcher died.
      const after = await marker(gw, r)
      expect(eventsBetween(r, before, after)).toEqual([])
      expect((await gw.snapshot()).providers.find((p) => p.id === mine)?.state).toBe('up')
    })

    it('moves a worker\'s providers at once when it says BYE, without waiting for its expiry', async () => {
      const { a, b, ids } = await fleet()
      const aTasks = a.tasks()
      a.stopPinging()
      const byeAt = Date.now()
      a.send('BYE', { workerId: a.id })
      const moved = await b.next('ASSIGN', (body) => aTasks.every((id) => body.tasks.some((t) => t.providerId === id)))
      // Far below WORKER_EXPIRY_MS (1 s after a.'s last PING, which was just now).
      expect(moved.at - byeAt).toBeLessThan(800)
      expect(b.tasks()).toEqual([...ids].sort())
    })

    it('updates the owner\'s task list when a provider is deregistered or its heartbeat endpoint changes', async () => {
      const { gw, r, a, b } = await fleet()
      const [gone, moved] = a.tasks() as [string, string]
      a.report(1, [{ providerId: moved, state: 'up', lastSeen: Date.now() }])
      await r.nextChange((c) => c.provider.id === moved && c.event === 'up')
      const bAssigns = b.messages('ASSIGN').length

      const from = a.received.length
      expect(await gw.write(deregister('orders', gone))).toMatchObject({ ok: true })
      const removal = await a.next('ASSIGN', (body) => body.removed?.includes(gone) === true, { from })
      expect(removal.body).toMatchObject({ delta: true, tasks: [], removed: [gone] })
      expect(a.tasks()).not.toContain(gone)

      const n = Number(moved.slice(2))
      const from2 = a.received.length
      const res = await gw.write(register('orders', moved, spec(n, { heartbeat: 'tcp://127.0.0.1:39999' })))
      // A new endpoint means nothing is known about liveness there: pending again.
      expect(res).toMatchObject({ ok: true, statusCode: 200, provider: { state: 'pending', lastSeen: null } })
      const assign = await a.next('ASSIGN', (body) => body.tasks.some((t) => t.heartbeat === 'tcp://127.0.0.1:39999'), { from: from2 })
      expect(assign.body.tasks.find((t) => t.providerId === moved)).toEqual({
        providerId: moved, heartbeat: 'tcp://127.0.0.1:39999', heartbeatIntervalMs: 100, state: 'pending', lastSeen: null
      })
      // The other worker got no new list: one would have been sent with a.'s, before this PONG.
      await b.pong()
      expect(b.messages('ASSIGN')).toHaveLength(bAssigns)
    })
  })

  describe('restart', () => {
    it('comes back with a higher epoch, the same providers, the revision sequence continued, and applies a worker\'s READY', async () => {
      const first = await startLeader()
      const { bind } = first
      const gw = follower(bind)
      const w = follower(bind, 'worker-w')
      await w.ready()
      for (let i = 1; i <= 3; i++) await gw.write(register('orders', `p-${i}`, spec(i)))
      await waitFor(() => w.tasks().length === 3, { what: 'three tasks' })
      w.report(1, [{ providerId: 'p-1', state: 'up', lastSeen: Date.now() }, { providerId: 'p-2', state: 'up', lastSeen: Date.now() }])
      await w.next('ACK', (body) => body.seq === 1)
      const { epoch: epoch1 } = await gw.pong()
      const before = await gw.snapshot()
      expect(before.revision).toBe(5)

      await first.leader.stop()
      await startLeader({ bind })
      const { epoch: epoch2, revision } = await gw.pong(epoch1 + 1)
      expect(epoch2).toBeGreaterThan(epoch1)
      expect(revision).toBe(5)
      const after = await gw.snapshot()
      expect(after.revision).toBe(5)
      expect(after.epoch).toBe(epoch2)
      expect([...after.providers].sort((x, y) => x.id.localeCompare(y.id))).toEqual([...before.providers].sort((x, y) => x.id.localeCompare(y.id)))

      const r = await feed(bind)
      expect(await gw.write(register('orders', 'p-4', spec(4)))).toMatchObject({ ok: true, statusCode: 201, revision: 6 })

      // The worker follows the new leader (a PONG of its epoch), then hands over its view.
      await w.pong(epoch2)
      const downAt = Date.now() - 50
      const observations: Observation[] = [
        { providerId: 'p-1', state: 'up', lastSeen: downAt - 100 },
        { providerId: 'p-2', state: 'down', lastSeen: downAt, reason: 'disconnected' },
        { providerId: 'p-3', state: 'pending', lastSeen: null }
      ]
      const from = w.received.length
      w.send('READY', { workerId: w.id, observations })
      const down = await r.nextChange((c) => c.provider.id === 'p-2')
      expect(down).toMatchObject({ revision: 7, event: 'down', provider: { state: 'down', lastSeen: new Date(downAt).toISOString() } })
      // Its complete list holds what it claimed; p-4 follows once the takeover settled.
      const assign = await w.next('ASSIGN', () => true, { from })
      expect(assign.body).toMatchObject({ epoch: epoch2, page: 0, more: false })
      expect(assign.body.tasks.map((t) => t.providerId).sort()).toEqual(['p-1', 'p-2', 'p-3'])
      await waitFor(() => w.tasks().length === 4, { what: 'p-4 assigned' })
      expect(w.tasks()).toEqual(['p-1', 'p-2', 'p-3', 'p-4'])
      // Nothing else changed: p-1 was already up, p-3 still pending.
      const m = await marker(gw, r)
      expect(r.changes().filter((c) => c.revision < m).map((c) => c.revision)).toEqual([6, 7])
    })

    it('keeps every provider with the worker that reports it in READY after a restart (no watch moves)', async () => {
      const first = await startLeader()
      const { bind } = first
      const gw = follower(bind)
      const a = follower(bind, 'worker-a')
      const b = follower(bind, 'worker-b')
      await a.ready()
      await b.ready()
      for (let i = 0; i < 10; i++) await gw.write(register('orders', `p-${i}`, spec(i)))
      await waitFor(() => a.tasks().length === 5 && b.tasks().length === 5, { what: 'an even spread' })
      const aTasks = a.tasks()
      const bTasks = b.tasks()
      b.report(1, [{ providerId: bTasks[0]!, state: 'up', lastSeen: Date.now() }])
      await b.next('ACK', (body) => body.seq === 1)
      const { epoch: epoch1 } = await gw.pong()

      await first.leader.stop()
      await startLeader({ bind })
      const r = await feed(bind)
      // Both workers keep pinging, as a LeaderLink does; each sends READY once it hears the new
      // leader, with its current view: everything it watches, one of b's providers now down.
      const { epoch: epoch2 } = await a.pong(epoch1 + 1)
      await b.pong(epoch2)
      const downAt = Date.now() - 20
      const view = (tasks: string[]): Observation[] => tasks.map((providerId) => ({ providerId, state: 'pending', lastSeen: null }))
      a.send('READY', { workerId: a.id, observations: view(aTasks) })
      b.send('READY', {
        workerId: b.id,
        observations: [{ providerId: bTasks[0]!, state: 'down', lastSeen: downAt, reason: 'silent' }, ...view(bTasks.slice(1))]
      })

      await waitFor(() => a.tasks().join() === aTasks.join() && b.tasks().join() === bTasks.join(), {
        timeoutMs: 3000,
        what: `each worker keeping its providers (a: ${JSON.stringify(aTasks)} → ${JSON.stringify(a.tasks())}, b: ${JSON.stringify(bTasks)} → ${JSON.stringify(b.tasks())})`
      })
      // b's observation about its own provider is applied, not dropped as a stranger's.
      const down = await r.nextChange((c) => c.provider.id === bTasks[0], { timeoutMs: 3000 })
      expect(down).toMatchObject({ event: 'down', provider: { state: 'down', lastSeen: new Date(downAt).toISOString() } })
    })
  })

  it('commits, publishes and answers nothing once a newer epoch was claimed behind its back, then serves under a new epoch', async () => {
    const { leader, bind, store } = await startLeader()
    const r = await feed(bind)
    const gw = follower(bind)
    expect(await gw.write(register('orders', 'o-1', spec(1)))).toMatchObject({ ok: true, revision: 1 })
    const { epoch: epoch1 } = await gw.pong()

    // What a standby does when it takes over: claim the next epoch in the store.
    const claimed = await store.claimEpoch()
    expect(claimed).toBe(epoch1 + 1)
    const from = gw.received.length
    gw.send('WRITE', { writes: [{ requestId: 'fenced-write', op: register('orders', 'o-2', spec(2)) }] })

    // The fenced leader steps down and, holding the lock again, returns under a newer epoch.
    const { epoch: epoch2 } = await gw.pong(claimed + 1)
    await leader.whenActive()
    expect(epoch2).toBeGreaterThan(claimed)
    // Nothing of the fenced term's write: no RESULT, no commit, no EVENT.
    expect(gw.messages('RESULT', from)).toEqual([])
    const loaded = await store.load()
    expect(loaded.revision).toBe(1)
    expect(loaded.providers.map((p) => p.id)).toEqual(['o-1'])
    expect(r.changes().map((c) => c.revision)).toEqual([1])

    // The gateway's retry is served by the new term, continuing the revisions.
    expect(await gw.write(register('orders', 'o-2', spec(2)))).toMatchObject({ ok: true, statusCode: 201, revision: 2 })
  })

  it('steps down when its lock session dies, and a leader with a higher epoch takes over within ~2 s', async () => {
    const one = await startLeader()
    const two = await startLeader({ wait: false })
    const gwOne = follower(one.bind)
    const gwTwo = follower(two.bind)
    const { epoch: epoch1 } = await gwOne.pong()
    expect(two.leader.status).toBe('standby')
    gwOne.startPinging('gateway')
    gwTwo.startPinging('gateway')

    const killedAt = Date.now()
    const killed = await adminQuery(testDatabaseUrl,
      'select pg_terminate_backend(pid) as ok from pg_stat_activity where application_name = $1', [one.lockName])
    expect(killed).toEqual([{ ok: true }])

    // Whichever wins the lock next (the deposed one campaigns too), it starts a new term.
    const newer = (f: ScriptedFollower): { at: number, epoch: number } | undefined => {
      const m = f.messages('PONG').find((x) => x.body.epoch > epoch1)
      return m === undefined ? undefined : { at: m.at, epoch: m.body.epoch }
    }
    const first = await waitFor(() => newer(gwOne) ?? newer(gwTwo), { timeoutMs: 4000, what: 'a PONG from a newer epoch' })
    expect(first.at - killedAt).toBeLessThan(2500)
    expect(first.epoch).toBeGreaterThan(epoch1)
    expect([one.leader.status, two.leader.status].filter((s) => s === 'active')).toHaveLength(1)
    // The deposed term answers nothing any more: after the new term's first PONG, a follower of
    // the old endpoint hears only the new epoch (if the same process won again) or nothing.
    const active = one.leader.status === 'active' ? gwOne : gwTwo
    await active.next('PONG', () => true, { from: active.received.length })
    expect(gwOne.messages('PONG').filter((m) => m.at > first.at && m.body.epoch <= epoch1)).toEqual([])
  })

  it('fences: of two leaders on one database only one is active; the other takes over within ~2 s with a higher epoch', async () => {
    const one = await startLeader({ wait: false })
    let bind2 = await freeLeaderEndpoint()
    while (bind2 === one.bind) bind2 = await freeLeaderEndpoint()
    const two = await startLeader({ bind: bind2, wait: false })
    const first = await Promise.race([one.leader.whenActive().then(() => one), two.leader.whenActive().then(() => two)])
    const standby = first === one ? two : one
    expect(first.leader.status).toBe('active')
    const gwFirst = follower(first.bind)
    const { epoch: epoch1 } = await gwFirst.pong()
    expect(await gwFirst.write(register('orders', 'o-1', spec(1)))).toMatchObject({ ok: true, revision: 1 })
    // Three campaign intervals: the standby keeps trying and failing, and binds nothing, so a
    // follower that PINGs it hears no PONG.
    const gwStandby = follower(standby.bind)
    gwStandby.send('PING', { peerId: gwStandby.id, role: 'gateway' })
    await holdsFor(1500, () => standby.leader.status === 'standby' && gwStandby.received.length === 0, 'the second leader stays a silent standby')

    const stoppedAt = Date.now()
    await first.leader.stop()
    await standby.leader.whenActive()
    expect(Date.now() - stoppedAt).toBeLessThan(2000)
    const { epoch: epoch2, revision } = await gwStandby.pong(1, 3000)
    expect(epoch2).toBeGreaterThan(epoch1)
    expect(revision).toBe(1)
    expect(await gwStandby.write(register('orders', 'o-2', spec(2)))).toMatchObject({ ok: true, statusCode: 201, revision: 2 })
  })
})
