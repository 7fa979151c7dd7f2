// Postgres going away under a running Roster (issue 4, item 6), as separate processes: the
// leader reaches Postgres through a TCP proxy that the test cuts, either as a stopped server
// would look (connections reset, new ones refused) or as a partition (bytes silently dropped).
// Writes must fail within 1 s with 503 + Retry-After, nothing may hang, reads go on; when the
// link returns everything recovers by itself and nothing acknowledged is lost. The machine's
// Postgres cluster itself is never touched.
import { describe, expect, it } from 'vitest'
import { freeLeaderBind } from '../../harness/ports.js'
import { spawnRoster } from '../../harness/roster-process.js'
import { readFeed, spawnGateway, testStorage } from '../helpers/cluster.js'
import { cleanUpAfterEachTest } from '../helpers/e2e-cleanup.js'
import {
  acknowledged, type Attempt, describeAttempts, expectNothingLost, firstAckAfter, longestOutage, startPoller, startWriter
} from '../helpers/load.js'
import { startPostgresProxy } from '../helpers/tcp-proxy.js'
import { waitFor } from '../../harness/wait-for.js'

const STARTUP_TIMEOUT_MS = 60_000
/** issue 4 item 6: during an outage a write is answered 503 within 1 s. */
const FAIL_FAST_MS = 1000
/** How long the outage lasts: long enough for every timeout involved (lock check, pool
 *  connect, leader link) to have fired at least twice. */
const OUTAGE_MS = 3000
const SPEC = { host: '127.0.0.1', port: 8080, protocol: 'http', heartbeat: 'tcp://127.0.0.1:9', heartbeatIntervalMs: 1000 }

cleanUpAfterEachTest()

async function outage (kind: 'refuse' | 'blackhole'): Promise<void> {
  const url = (await testStorage('roster-pg-outage-')).databaseUrl as string
  const { proxy, url: proxied } = await startPostgresProxy(url)

  const bind = await freeLeaderBind()
  const leader = spawnRoster(['leader', '--bind', bind, '--database-url', proxied])
  spawnRoster(['worker', '--leader', bind])
  const gw = await spawnGateway([bind], STARTUP_TIMEOUT_MS)
    .catch((err: Error) => { throw new Error(`${err.message}\nleader: ${leader.output()}`) })

  const feed = await readFeed(gw.url, '?service=pg')
  const start = (await feed.next((m) => m.type === 'snapshot')).revision
  const writer = startWriter(gw.url, 'pg', SPEC, { concurrency: 2 })
  const reads = startPoller(gw.url, '/v1/services/pg/providers')
  let writes: Attempt[] = []
  let cutAt = 0
  let restoredAt = 0
  try {
    await waitFor(() => acknowledged(writer.attempts).length >= 20, { timeoutMs: 20_000, what: '20 writes before the cut' })
    cutAt = Date.now()
    if (kind === 'refuse') proxy.refuse()
    else proxy.blackhole()
    await new Promise((resolve) => setTimeout(resolve, OUTAGE_MS))
    restoredAt = Date.now()
    proxy.restore()
    await waitFor(() => firstAckAfter(writer.attempts, restoredAt) !== null, { timeoutMs: 20_000, what: 'a write acknowledged after the restore' })
      .catch((err: Error) => { throw new Error(`${err.message}\nleader: ${leader.output()}`) })
    await waitFor(() => acknowledged(writer.attempts).filter((w) => w.startedAt > restoredAt).length >= 20, { timeoutMs: 20_000, what: '20 writes after the restore' })
  } finally {
    writes = await writer.stop()
    await reads.stop()
  }
  const during = writes.filter((w) => w.endedAt > cutAt && w.startedAt < restoredAt)
  const refused = during.filter((w) => w.status !== 200 && w.status !== 201)
  // How long each refused write waited, counted from the cut for one already in flight then.
  const waits = refused.map((w) => w.endedAt - Math.max(w.startedAt, cutAt))
  const slowest = Math.max(0, ...waits)
  console.log(`[postgres ${kind}] writes during the outage: ${describeAttempts(during)}; slowest 503 ${slowest} ms; ` +
    `first acknowledged write ${firstAckAfter(writes, restoredAt) ?? '-'} ms after the restore; longest write outage ${longestOutage(writes).ms} ms ` +
    `(outage ${OUTAGE_MS} ms); reads ${describeAttempts(reads.attempts)}`)

  // Writes failed fast and said when to retry; none hung, none was answered with anything else.
  expect(refused.length).toBeGreaterThan(5)
  for (const w of refused) {
    expect(w.status).toBe(503)
    expect(w.retryAfter).toBe('1')
  }
  expect(slowest).toBeLessThanOrEqual(FAIL_FAST_MS)
  // Reads never stopped.
  expect(reads.attempts.filter((r) => r.status !== 200)).toEqual([])
  expect(reads.attempts.filter((r) => r.startedAt > cutAt && r.endedAt < restoredAt).length).toBeGreaterThan(10)

  // Nothing acknowledged is lost, and the feed recovered by itself: every stored change once.
  const revisions = await expectNothingLost(url, 'pg', writes, feed)
  expect(revisions[0]).toBeGreaterThan(start)
  feed.close()
}

describe('Postgres outage', () => {
  it('stopped (connections reset, new ones refused): writes 503 within 1 s, reads go on, all recovers with nothing lost', async () => {
    await outage('refuse')
  }, 150_000)

  it('unreachable (a partition: bytes dropped, nothing closed): writes 503 within 1 s, reads go on, all recovers with nothing lost', async () => {
    await outage('blackhole')
  }, 150_000)
})
