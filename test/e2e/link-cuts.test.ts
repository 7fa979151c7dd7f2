// Links cut between the roles (issue 4, item 7), as separate processes: a worker and a gateway
// reach the leader through TCP proxies that the test blackholes (bytes dropped, nothing closed,
// as a partition looks) and then restores. Both sides must notice within their liveness bounds,
// recover with no operator action, and the gateway must repair its replica without a gap.
import { describe, expect, it } from 'vitest'
import { freeLeaderBind, portOf } from '../../harness/ports.js'
import { http, spawnRoster } from '../../harness/roster-process.js'
import { readFeed, spawnGateway, storageFlags, testStorage } from '../helpers/cluster.js'
import { cleanUpAfterEachTest } from '../helpers/e2e-cleanup.js'
import { acknowledged, startPoller, startWriter } from '../helpers/load.js'
import { connectedPorts } from '../helpers/proc-net.js'
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js'
import { waitFor } from '../../harness/wait-for.js'
import { watchedProviders } from '../helpers/watched.js'

const STARTUP_TIMEOUT_MS = 60_000
/**
 * The liveness bounds (server/protocol/leader-link.ts, server/leader/worker-registry.ts): a
 * follower gives up on a leader silent for 4 × 250 ms, checked every 250 ms, so within 1.25 s;
 * the leader drops a worker silent for 1 s, checked every 250 ms, so within 1.25 s. Plus 0.5 s
 * for timers that run late on a loaded machine and for the test's own polling.
 */
const LIVENESS_BOUND_MS = 1250 + 500
const SPEC = { host: '127.0.0.1', port: 8080, protocol: 'http', heartbeat: 'tcp://127.0.0.1:9', heartbeatIntervalMs: 1000 }

async function proxy (target: number, port?: number): Promise<TcpProxy> {
  return await startTcpProxy({ host: '127.0.0.1', port: target }, port === undefined ? {} : { port })
}

cleanUpAfterEachTest()

describe('link cuts', () => {
  it('worker ↔ leader: the leader moves the cut worker\'s providers without a false down, the worker notices, and both recover when the link returns', async () => {
    const PROVIDERS = 4
    const bind = await freeLeaderBind()
    spawnRoster(['leader', '--bind', bind, ...storageFlags(await testStorage('roster-cut-worker-'))])
    // A worker talks to the leader over its DEALER only: one proxy is its whole link.
    const link = await proxy(portOf(bind))
    const cut = spawnRoster(['worker', '--leader', `tcp://127.0.0.1:${link.port}`])
    const other = spawnRoster(['worker', '--leader', bind])
    const gw = await spawnGateway([bind], STARTUP_TIMEOUT_MS)
    await waitFor(async () => (await connectedPorts(cut.child.pid as number)).has(link.port) && (await connectedPorts(other.child.pid as number)).has(portOf(bind)), {
      timeoutMs: STARTUP_TIMEOUT_MS, what: 'both workers connected'
    })

    const { feed, emitters, watchedBy } = await watchedProviders(gw.url, 'cut', PROVIDERS, [cut, other])

    const mark = feed.messages.length
    const outputMark = cut.output().length
    const t0 = Date.now()
    link.blackhole()
    const [movedMs, noticedMs] = await Promise.all([
      // The leader's side: it drops the silent worker and hands its providers to the other one.
      waitFor(async () => await watchedBy(other) === PROVIDERS && Date.now() - t0, { timeoutMs: 10_000, intervalMs: 5, what: 'the other worker to watch every provider' }),
      // The worker's side: it gives up on the silent leader (it logs so at warn level).
      waitFor(() => cut.output().slice(outputMark).includes('leader is silent') && Date.now() - t0, { timeoutMs: 10_000, intervalMs: 5, what: 'the cut worker to notice' })
    ])
    // Cut off, it keeps watching what it had: nothing goes unwatched, whoever is right.
    expect(await watchedBy(cut)).toBe(PROVIDERS / 2)
    console.log(`[cut worker] leader moved its providers ${movedMs} ms after the cut; the worker noticed after ${noticedMs} ms`)
    expect(movedMs).toBeLessThanOrEqual(LIVENESS_BOUND_MS + 500) // + the ASSIGN and the new SUB connections
    expect(noticedMs).toBeLessThanOrEqual(LIVENESS_BOUND_MS)

    const healedAt = Date.now()
    link.restore()
    // Recovered with no operator action: the worker is back in the assignment and watches again.
    const backMs = await waitFor(async () => await watchedBy(cut) === PROVIDERS / 2 && await watchedBy(other) === PROVIDERS / 2 && Date.now() - healedAt, {
      timeoutMs: 15_000, what: 'the providers spread 2/2 again'
    })
    console.log(`[cut worker] spread 2/2 again ${backMs} ms after the link returned`)
    // No false down, no snapshot, through the cut and the heal; the providers are all still up.
    expect(feed.messages.slice(mark)).toEqual([])
    const list = await http('GET', `${gw.url}/v1/services/cut/providers`)
    expect(list.body.providers.map((p: { state: string }) => p.state)).toEqual(Array(PROVIDERS).fill('up'))
    // And the heartbeats are really watched by their new owners: a provider that dies is down.
    emitters[0]?.kill('SIGKILL')
    const down = await feed.next((m) => m.event === 'down', { from: mark, timeoutMs: 5000 })
    expect(down.provider?.id).toBe('cut-0')
    feed.close()
  }, 150_000)

  it('gateway ↔ leader: the gateway reports the leader unavailable and refuses writes, keeps serving reads, and repairs its replica without a gap when the link returns', async () => {
    const bind = await freeLeaderBind()
    spawnRoster(['leader', '--bind', bind, ...storageFlags(await testStorage('roster-cut-gateway-'))])
    // A gateway derives the event PUB from the ROUTER endpoint (port + 1): two proxies on
    // adjacent ports, one per leader socket.
    const pair = portOf(await freeLeaderBind())
    const router = await proxy(portOf(bind), pair)
    const events = await proxy(portOf(bind) + 1, pair + 1)
    const [cutGw, direct] = await Promise.all([
      spawnGateway([`tcp://127.0.0.1:${router.port}`], STARTUP_TIMEOUT_MS),
      spawnGateway([bind], STARTUP_TIMEOUT_MS)
    ])
    const control = await readFeed(direct.url, '?service=gcut')
    const start = (await control.next((m) => m.type === 'snapshot')).revision
    const client = await readFeed(cutGw.url, '?service=gcut')
    expect((await client.next((m) => m.type === 'snapshot')).revision).toBe(start)

    // Writes keep coming through the other gateway all along.
    const writer = startWriter(direct.url, 'gcut', SPEC, { concurrency: 1, pauseMs: 10 })
    const health = startPoller(cutGw.url, '/v1/health')
    const reads = startPoller(cutGw.url, '/v1/services/gcut/providers')
    try {
      await waitFor(() => client.messages.length >= 10, { timeoutMs: 20_000, what: '10 events through the cut gateway' })
      const t0 = Date.now()
      router.blackhole()
      events.blackhole()
      const noticedMs = await waitFor(() => health.attempts.find((h) => h.startedAt > t0 && h.body?.leader === 'unavailable') !== undefined && Date.now() - t0, {
        timeoutMs: 10_000, intervalMs: 5, what: 'the cut gateway to report the leader unavailable'
      })
      const refused = await http('PUT', `${cutGw.url}/v1/services/gcut/providers/refused`, SPEC)
      expect(refused.status).toBe(503)
      expect(refused.headers.get('retry-after')).toBe('1')
      // Let the gap grow while the gateway is cut off.
      const writtenAtCut = acknowledged(writer.attempts).length
      await waitFor(() => acknowledged(writer.attempts).length >= writtenAtCut + 20, { timeoutMs: 20_000, what: '20 writes during the cut' })
      const healedAt = Date.now()
      router.restore()
      events.restore()
      const backMs = await waitFor(() => health.attempts.find((h) => h.startedAt > healedAt && h.body?.leader === 'connected') !== undefined && Date.now() - healedAt, {
        timeoutMs: 15_000, intervalMs: 5, what: 'the cut gateway to reconnect'
      })
      await waitFor(() => acknowledged(writer.attempts).filter((w) => w.startedAt > healedAt).length >= 10, { timeoutMs: 20_000, what: '10 writes after the heal' })
      const writes = await writer.stop()
      console.log(`[cut gateway] noticed after ${noticedMs} ms; reconnected ${backMs} ms after the link returned`)
      expect(noticedMs).toBeLessThanOrEqual(LIVENESS_BOUND_MS)

      const final = Math.max(...acknowledged(writes).map((w) => w.body.revision as number))
      await waitFor(() => client.messages.at(-1)?.revision === final && control.messages.at(-1)?.revision === final, { timeoutMs: 10_000, what: `both feeds at ${final}` })
      const all = control.messages.filter((m) => m.type === 'event')
      expect(all.map((m) => m.revision)).toEqual(Array.from({ length: final - start }, (_, i) => start + 1 + i))
      // The client of the cut gateway: the same events, once each, in order, no second snapshot.
      expect(client.messages.slice(1)).toEqual(all)
      expect(client.closed).toBeNull()
      // The replica itself caught up: a read at the head without waiting.
      const list = await http('GET', `${cutGw.url}/v1/services/gcut/providers`)
      expect(list.body.revision).toBe(final)
      expect(list.body.providers).toHaveLength(all.length)
    } finally {
      await writer.stop()
      await health.stop()
      await reads.stop()
    }
    // Reads were answered from the replica throughout.
    expect(reads.attempts.filter((r) => r.status !== 200)).toEqual([])
    client.close()
    control.close()
  }, 150_000)
})
