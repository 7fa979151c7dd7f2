// A truthful lastSeen (issue 12, part 3), as users see it through real `roster` processes: two
// leaders (active and standby), a worker and two gateways, and a heartbeat emitter beating every
// 150 ms. lastSeen, read on either gateway, is always under about a second old and keeps moving,
// without a revision or a feed event per heartbeat; the `up` after maintenance carries a fresh
// one; and after the active leader is SIGKILLed, the standby carries on with it.
import { describe, expect, it } from 'vitest'
import { http, type RosterProcess, spawnRoster } from '../../harness/roster-process.js'
import { type FeedReader, readFeed, spawnGateway, testStorage } from '../helpers/cluster.js'
import { cleanUpAfterEachTest } from '../helpers/e2e-cleanup.js'
import { spawnEmitter } from '../helpers/emitters.js'
import { leaderLockHolder } from '../helpers/load.js'
import { twoLeaderBinds } from '../../harness/ports.js'
import { waitFor } from '../../harness/wait-for.js'

const STARTUP_TIMEOUT_MS = 60_000
const INTERVAL_MS = 150
/** The promise (protocol README §11): a summary every 500 ms, plus the provider's own interval,
 *  plus the hops and the read itself. 1.2 s leaves the rest to a loaded 2-core machine. */
const MAX_AGE_MS = 1200
const PATH = '/v1/services/orders/providers/orders-1'

interface Read { gateway: string, lastSeen: number, age: number, revision: number }

/** One read of the provider through `url`: its lastSeen and how old it was when the answer came. */
async function readOnce (url: string): Promise<Read> {
  const res = await http('GET', `${url}${PATH}`)
  const at = Date.now()
  expect(res.status).toBe(200)
  expect(res.body.state).toBe('up')
  const lastSeen = Date.parse(res.body.lastSeen as string)
  return { gateway: url, lastSeen, age: at - lastSeen, revision: Number(res.headers.get('x-roster-revision')) }
}

/** Reads through every gateway in turn, `rounds` times `pauseMs` apart (~3 s in all). */
async function readSeries (urls: string[], rounds = 10, pauseMs = 300): Promise<Read[]> {
  const reads: Read[] = []
  for (let i = 0; i < rounds; i++) {
    for (const url of urls) reads.push(await readOnce(url))
    await new Promise((resolve) => setTimeout(resolve, pauseMs))
  }
  return reads
}

/** Every read fresh, and each gateway's lastSeen moving on from read to read. */
function expectFreshAndAdvancing (reads: Read[], urls: string[]): void {
  const stale = reads.filter((r) => r.age > MAX_AGE_MS || r.age < -50)
  expect(stale, `reads older than ${MAX_AGE_MS} ms: ${JSON.stringify(stale)}`).toEqual([])
  for (const url of urls) {
    const mine = reads.filter((r) => r.gateway === url).map((r) => r.lastSeen)
    for (let i = 1; i < mine.length; i++) expect(mine[i]).toBeGreaterThanOrEqual(mine[i - 1] as number)
    // Over ~3 s it moved at every summary: several distinct values, not one.
    expect(new Set(mine).size).toBeGreaterThanOrEqual(4)
  }
}

cleanUpAfterEachTest()

describe('lastSeen', () => {
  it('is under ~1 s old on every gateway without moving the revision, fresh on the up after maintenance, and carried on by a standby that takes over', async () => {
    const { databaseUrl } = await testStorage('roster-last-seen-')
    const db = databaseUrl as string
    const [bindA, bindB] = await twoLeaderBinds()
    const spawnLeader = (bind: string): RosterProcess => spawnRoster(['leader', '--bind', bind, '--database-url', db])
    const a = spawnLeader(bindA)
    await waitFor(async () => await leaderLockHolder(db) === a.child.pid, { timeoutMs: STARTUP_TIMEOUT_MS, what: 'leader A to take the lock' })
      .catch((err: Error) => { throw new Error(`${err.message}\nA: ${a.output()}`) })
    const b = spawnLeader(bindB)
    spawnRoster(['worker', '--leader', `${bindA},${bindB}`])
    const gateways = await Promise.all([spawnGateway([bindA, bindB], STARTUP_TIMEOUT_MS), spawnGateway([bindA, bindB], STARTUP_TIMEOUT_MS)])
    const urls = gateways.map((g) => g.url)
    const [one] = urls as [string, string]

    const emitter = await spawnEmitter({ id: 'orders-1', intervalMs: INTERVAL_MS })
    const feed: FeedReader = await readFeed(one, '?service=orders')
    await waitFor(async () => (await http('PUT', `${one}${PATH}`, {
      host: '127.0.0.1', port: 8080, protocol: 'http', heartbeat: emitter.endpoint, heartbeatIntervalMs: INTERVAL_MS
    })).status === 201, { timeoutMs: 15_000, what: 'the registration' })
    const up = await feed.next((m) => m.event === 'up', { timeoutMs: 15_000 })

    // 1. Read through both gateways for ~3 s: fresh every time, moving, and nothing committed.
    await waitFor(async () => (await Promise.all(urls.map(readOnce))).every((r) => r.revision === up.revision), { what: 'both gateways at the up' })
    const mark = feed.messages.length
    const reads = await readSeries(urls)
    expectFreshAndAdvancing(reads, urls)
    expect(reads.map((r) => r.revision).filter((rev) => rev !== up.revision)).toEqual([])
    expect(feed.messages.slice(mark)).toEqual([])
    console.log(`[last-seen] ages over ~3 s: max ${Math.max(...reads.map((r) => r.age))} ms, mean ${Math.round(reads.reduce((s, r) => s + r.age, 0) / reads.length)} ms`)

    // 2. Maintenance: held for a second and a half while the provider keeps beating; released,
    // the `updated` and the `up` that follow carry the lastSeen of now, not of the first beat.
    const maintenance = `${one}${PATH}/maintenance`
    expect((await http('PUT', maintenance, { enabled: true, reason: 'kernel upgrade' })).status).toBe(200)
    await feed.next((m) => m.event === 'maintenance')
    await new Promise((resolve) => setTimeout(resolve, 1500))
    const beforeRelease = feed.messages.length
    expect((await http('PUT', maintenance, { enabled: false })).status).toBe(200)
    const released = await feed.next((m) => m.event === 'updated', { from: beforeRelease })
    const backUp = await feed.next((m) => m.event === 'up', { from: beforeRelease })
    const receivedAt = Date.now()
    for (const m of [released, backUp]) {
      const age = receivedAt - Date.parse(m.provider?.lastSeen as string)
      expect(age, `${m.event} event's lastSeen is ${age} ms old`).toBeLessThanOrEqual(MAX_AGE_MS)
    }

    // 3. The active leader dies; the standby takes over and lastSeen keeps moving on both gateways.
    await a.kill('SIGKILL')
    await waitFor(async () => await leaderLockHolder(db) === b.child.pid, { timeoutMs: 15_000, what: 'standby B to take over' })
      .catch((err: Error) => { throw new Error(`${err.message}\nB: ${b.output()}`) })
    // Both gateways follow B once they answer a write through it (maintenance on again is a no-op
    // answered by the leader, so this commits nothing).
    for (const url of urls) {
      await waitFor(async () => (await http('PUT', `${url}${PATH}/maintenance`, { enabled: false })).status === 200, { timeoutMs: 15_000, what: `${url} to reach leader B` })
    }
    const lastBefore = Math.max(...reads.map((r) => r.lastSeen))
    const after = await readSeries(urls)
    expectFreshAndAdvancing(after, urls)
    expect(Math.min(...after.map((r) => r.lastSeen))).toBeGreaterThan(lastBefore)
    console.log(`[last-seen] after the takeover: max age ${Math.max(...after.map((r) => r.age))} ms`)
    feed.close()
  }, 120_000)
})
