// A write or an observation that the database refuses for its data must not stop the others
// (issue 9, item 0): the leader isolates it (term.ts, isolateUnstorable), answers or drops it
// alone, commits everything else, and stays leader with gapless revisions. A real Postgres refuses
// the data: the test database gets CHECK constraints that refuse one value,
// since validation now stops NUL and lone surrogates before the leader. Also: such text sent
// straight to the leader as a WRITE or a REPORT is a bad frame that changes nothing.
import { beforeAll, expect, it } from 'vitest'
import { context } from 'zeromq'
import { encode } from '../../server/protocol/frames.js'
import type { WriteOp, WriteResult } from '../../server/protocol/messages.js'
import type { ProviderSpec } from '../../server/protocol/model.js'
import { createRegistryStore } from '../../server/store/registry-store.js'
import { describeWithDatabase, type Backend } from '../helpers/postgres.js'
import { waitFor } from '../../harness/wait-for.js'
import { useLocalLeaders, type LocalLeader } from './local-leader.js'

beforeAll(() => {
  context.blocky = false
})

const POISON_HOST = 'poison.example'
const POISON_REASON = 'poisoned note'
const POISON_DETAIL = 'poisoned detail'

function spec (n: number, extra: Partial<ProviderSpec> = {}): ProviderSpec {
  return { host: '10.0.0.5', port: 8000 + n, protocol: 'http', heartbeat: `tcp://127.0.0.1:${30_000 + n}`, heartbeatIntervalMs: 1000, ...extra }
}
const register = (id: string, s: ProviderSpec): WriteOp => ({ type: 'register', service: 'orders', id, spec: s })

describeWithDatabase('leader: a change the database refuses', (backend: Backend) => {
  const local = useLocalLeaders(backend)

  async function start (): Promise<LocalLeader> {
    // Real refusals: 23514 check_violation, decided by Postgres for one value of each field.
    await backend.db.exec(`
      alter table providers add constraint poison_host check (host <> '${POISON_HOST}');
      alter table providers add constraint poison_reason check (reason is distinct from '${POISON_REASON}');
      alter table providers add constraint poison_detail check (detail is distinct from '${POISON_DETAIL}');`)
    return await local.start()
  }

  it('answers the poisoned writes of a burst 400 ROSTER_ERR_UNSTORABLE, commits every other one, and stays leader without a revision gap', async () => {
    const { leader, gw, feed } = await start()
    const { epoch } = await gw.pong()
    // Two providers to put in maintenance, one of them with a note the database refuses.
    for (const id of ['m-good', 'm-bad']) expect((await gw.write(register(id, spec(900)))).ok).toBe(true)

    const ops: WriteOp[] = Array.from({ length: 60 }, (_, i) => register(`p-${i}`, spec(i, { tags: [`t${i}`] })))
    ops.splice(20, 0, register('poisoned', spec(20, { host: POISON_HOST })))
    ops.splice(45, 0, { type: 'maintenance', service: 'orders', id: 'm-bad', enabled: true, reason: POISON_REASON })
    ops.splice(46, 0, { type: 'maintenance', service: 'orders', id: 'm-good', enabled: true, reason: 'kernel upgrade' })
    // Sent back to back, so the leader batches the poisoned writes with good ones.
    const results: WriteResult[] = await Promise.all(ops.map(async (op) => await gw.write(op)))

    const refused = results.flatMap((r, i) => (r.ok ? [] : [[ops[i]!.type === 'register' ? ops[i]!.id : `${ops[i]!.id} maintenance`, r]]))
    expect(refused).toEqual([
      ['poisoned', { ok: false, statusCode: 400, code: 'ROSTER_ERR_UNSTORABLE', message: expect.stringMatching(/^the registry's database refused this write \(a rule \(constraint\) of the database\); nothing was stored$/) }],
      ['m-bad maintenance', expect.objectContaining({ ok: false, statusCode: 400, code: 'ROSTER_ERR_UNSTORABLE' })]
    ])
    // Nothing of the driver's error reaches the client (constraint names, values).
    for (const [, r] of refused) expect(JSON.stringify(r)).not.toMatch(/poison|23514|check/i)
    expect(results.filter((r) => r.ok)).toHaveLength(61)

    // Revisions 1–2 (setup) and 3–63: every good write, in order, without a gap.
    const revisions = results.flatMap((r) => (r.ok ? [r.revision] : [])).sort((a, b) => a - b)
    expect(revisions).toEqual(Array.from({ length: 61 }, (_, i) => i + 3))
    await feed.nextChange((c) => c.revision === 63)
    expect(feed.changes().map((c) => c.revision)).toEqual(Array.from({ length: 63 }, (_, i) => i + 1))
    expect(feed.changes().some((c) => c.provider.host === POISON_HOST || c.provider.reason === POISON_REASON)).toBe(false)

    // The same leader, the same epoch, and it keeps taking writes.
    expect(leader.status).toBe('active')
    expect(leader.stats.unstorable).toBe(2)
    expect((await gw.pong()).epoch).toBe(epoch)
    const after = await gw.write(register('after', spec(99)))
    expect(after).toMatchObject({ ok: true, statusCode: 201, revision: 64 })
    const stored = await createRegistryStore(backend.db).load()
    expect(stored.revision).toBe(64)
    expect(stored.epoch).toBe(epoch)
    expect(stored.providers.map((p) => p.id)).not.toContain('poisoned')
    expect(stored.providers.find((p) => p.id === 'm-bad')?.state).toBe('pending')
    expect(stored.providers.find((p) => p.id === 'm-good')?.state).toBe('maintenance')
  })

  it('drops a worker\'s observation the database refuses, commits the others of its REPORT, and acknowledges it', async () => {
    const { leader, bind, gw, feed } = await start()
    const { epoch } = await gw.pong()
    for (const id of ['w-1', 'w-2', 'w-3']) expect((await gw.write(register(id, spec(id.length)))).ok).toBe(true)
    const worker = local.follower(bind, 'worker-unstorable')
    // READY claims the three providers for this worker (protocol README §7).
    await worker.ready(['w-1', 'w-2', 'w-3'].map((providerId) => ({ providerId, state: 'pending' as const, lastSeen: null })))
    const now = Date.now()
    worker.report(1, [
      { providerId: 'w-1', state: 'up', lastSeen: now },
      { providerId: 'w-2', state: 'down', lastSeen: now, reason: 'check-failed', detail: POISON_DETAIL },
      { providerId: 'w-3', state: 'up', lastSeen: now }
    ])
    const writes = Promise.all(['x-1', 'x-2'].map(async (id) => await gw.write(register(id, spec(50)))))
    await worker.next('ACK', (b) => b.seq === 1)
    expect((await writes).every((r) => r.ok)).toBe(true)

    await feed.nextChange((c) => c.provider.id === 'w-3' && c.event === 'up')
    await feed.nextChange((c) => c.provider.id === 'w-1' && c.event === 'up')
    const marker = await gw.write(register('marker', spec(77)))
    if (!marker.ok) throw new Error(marker.message)
    await feed.nextChange((c) => c.revision === marker.revision)
    const revisions = feed.changes().map((c) => c.revision)
    expect(revisions).toEqual(Array.from({ length: revisions.length }, (_, i) => i + 1))
    expect(feed.changes().some((c) => c.provider.id === 'w-2' && c.event === 'down')).toBe(false)
    expect(leader.stats.unstorable).toBe(1)
    expect(leader.status).toBe('active')
    expect((await gw.pong()).epoch).toBe(epoch)
  })

  it('refuses NUL and lone surrogates sent straight to the ROUTER as a WRITE or a REPORT: bad frames, no answer, no change', async () => {
    const { leader, gw, feed } = await start()
    const { epoch } = await gw.pong()
    expect((await gw.write(register('p-1', spec(1)))).ok).toBe(true)
    const bads = ['\u0000', 'a\u0000b', '\ud800', 'x\udc00']
    const ops: unknown[] = bads.flatMap((bad) => [
      register('p-1', spec(1, { tags: [bad] })),
      register('p-1', spec(1, { meta: { v: bad } })),
      register('p-1', spec(1, { meta: { [`k${bad}`]: 'v' } })),
      register('p-1', spec(1, { host: `h${bad}` })),
      register('p-1', spec(1, { heartbeat: `tcp://h${bad}:9` })),
      register('p-1', { host: 'h', port: 1, protocol: 'http', check: { type: 'http', path: `/${bad}`, intervalMs: 100, timeoutMs: 50 } }),
      { type: 'maintenance', service: 'orders', id: 'p-1', enabled: true, reason: bad }
    ])
    const before = leader.stats.badFrames
    for (const [i, op] of ops.entries()) gw.sendRaw(encode('WRITE', { writes: [{ requestId: `bad-${i}`, op }] } as never))
    gw.sendRaw(encode('REPORT', { workerId: 'w', seq: 1, observations: [{ providerId: 'p-1', state: 'down', lastSeen: null, reason: 'check-failed', detail: '\u0000' }] }))
    await waitFor(() => leader.stats.badFrames - before === ops.length + 1, { what: 'every bad frame counted' })
    const marker = await gw.write(register('marker', spec(2)))
    if (!marker.ok) throw new Error(marker.message)
    expect(marker.revision).toBe(2)
    await feed.nextChange((c) => c.revision === 2)
    expect(feed.changes().map((c) => c.revision)).toEqual([1, 2])
    expect(gw.messages('RESULT').flatMap((r) => r.body.results).filter((r) => r.requestId.startsWith('bad-'))).toEqual([])
    expect(gw.messages('ACK')).toEqual([])
    expect((await gw.pong()).epoch).toBe(epoch)
  })
})
