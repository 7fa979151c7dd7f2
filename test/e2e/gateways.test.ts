// Several gateways and workers as separate `roster` processes, seen from outside: two gateways
// serve the same registry at the same revision, a feed client that loses its gateway (closed,
// or the process SIGKILLed) resumes on another with `since` and misses nothing, and a worker
// SIGKILLed under load costs no provider a false `down` while its providers move to a survivor.
import { describe, expect, it } from 'vitest'
import { freeLeaderBind, portOf } from '../../harness/ports.js'
import { http, type RosterProcess, spawnRoster } from '../../harness/roster-process.js'
import { type FeedMessage, type FeedReader, type GatewayProcess, readFeed, spawnGateway, storageFlags, testStorage } from '../helpers/cluster.js'
import { cleanUpAfterEachTest } from '../helpers/e2e-cleanup.js'
import { spawnEmitter, type Emitter } from '../helpers/emitters.js'
import { connectedPorts } from '../helpers/proc-net.js'
import { waitFor } from '../../harness/wait-for.js'

/** Child processes start through tsx: 1–3 s each here, several times that on a loaded 2-core box. */
const STARTUP_TIMEOUT_MS = 60_000

/** Nobody listens on the discard port (binding below 1024 needs privileges no test uses), so
 *  a provider registered with it stays `pending` and causes no change after its registration. */
const NOBODY = 'tcp://127.0.0.1:9'

type Gateway = GatewayProcess
interface Cluster { bind: string, leader: RosterProcess, workers: RosterProcess[], gateways: Gateway[] }

/** One leader, `workers` workers and `gateways` gateways, each its own `roster` process. */
async function startCluster (opts: { workers: number, gateways: number }): Promise<Cluster> {
  const s = await testStorage('roster-gw-')
  const bind = await freeLeaderBind()
  const leader = spawnRoster(['leader', '--bind', bind, ...storageFlags(s)])
  const workers = Array.from({ length: opts.workers }, () => spawnRoster(['worker', '--leader', bind]))
  const cluster: Cluster = { bind, leader, workers, gateways: [] }
  try {
    cluster.gateways = await Promise.all(Array.from({ length: opts.gateways }, async () => await startGateway(bind)))
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${describeOutput(cluster)}`)
  }
  return cluster
}

/** A `roster gateway` process following the one leader, once it serves reads. */
async function startGateway (bind: string): Promise<Gateway> {
  return await spawnGateway([bind], STARTUP_TIMEOUT_MS)
}

/** The brief's topology: 1 leader, 1 worker, 2 gateways; returns gateways A and B. */
async function twoGateways (): Promise<[Gateway, Gateway]> {
  const { gateways } = await startCluster({ workers: 1, gateways: 2 })
  return [gateways[0] as Gateway, gateways[1] as Gateway]
}

function describeOutput (c: Cluster): string {
  return [
    `leader: ${c.leader.output()}`,
    ...c.workers.map((w, i) => `worker ${i}: ${w.output()}`),
    ...c.gateways.map((g, i) => `gateway ${i}: ${g.proc.output()}`)
  ].join('\n')
}

function spec (heartbeat = NOBODY, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { host: '127.0.0.1', port: 8080, protocol: 'http', heartbeat, heartbeatIntervalMs: 1000, ...extra }
}

const events = (feed: FeedReader | FeedMessage[]): FeedMessage[] =>
  (Array.isArray(feed) ? feed : feed.messages).filter((m) => m.type === 'event')

function lastRevision (feed: FeedReader): number {
  return events(feed).at(-1)?.revision ?? -1
}

/** Revisions from..to, both included. */
function range (from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i)
}

/**
 * Registers providers `${service}-0`, `${service}-1`, … one after another through `url` until
 * `stop()` is called (and at most `max`), so that a feed client can be cut off and resumed
 * while changes keep coming. Resolves with the revisions the writes produced.
 */
function startWriter (url: string, service: string, max = 2000): { stop: () => Promise<number[]>, count: () => number } {
  let stopped = false
  const revisions: number[] = []
  const done = (async () => {
    for (let i = 0; i < max && !stopped; i++) {
      const res = await http('PUT', `${url}/v1/services/${service}/providers/${service}-${i}`, spec())
      if (res.status !== 201) throw new Error(`write ${i} answered ${res.status}: ${JSON.stringify(res.body)}`)
      revisions.push(res.body.revision as number)
    }
    return revisions
  })()
  // Surfaced by stop(); this only keeps an early failure from being an unhandled rejection.
  done.catch(() => {})
  return {
    count: () => revisions.length,
    stop: async () => { stopped = true; return await done }
  }
}

cleanUpAfterEachTest()

describe('two gateways, separate processes', () => {
  it('serve the same providers at the same revision after a burst of writes through one of them', async () => {
    const [a, b] = await twoGateways()
    const before = (await http('GET', `${a.url}/v1/services`)).body.revision as number

    const burst = await Promise.all(Array.from({ length: 50 }, async (_, i) => {
      const res = await http('PUT', `${a.url}/v1/services/burst/providers/burst-${i}`, spec(NOBODY, { tags: [`t${i % 3}`] }))
      expect(res.status).toBe(201)
      return res.body.revision as number
    }))
    // 50 writes, 50 consecutive revisions: no write lost, none counted twice.
    expect([...burst].sort((x, y) => x - y)).toEqual(range(before + 1, before + 50))
    const last = Math.max(...burst)

    const fromA = await http('GET', `${a.url}/v1/services/burst/providers?minRevision=${last}`)
    const fromB = await http('GET', `${b.url}/v1/services/burst/providers?minRevision=${last}`)
    expect(fromB.status).toBe(200)
    expect(fromB.headers.get('x-roster-revision')).toBe(String(last))
    expect(fromA.headers.get('x-roster-revision')).toBe(String(last))
    expect(fromB.body.revision).toBe(last)
    expect(fromB.body.providers).toHaveLength(50)
    expect(fromB.body.providers).toEqual(fromA.body.providers)
    // A filtered read agrees as well.
    const tagged = await http('GET', `${b.url}/v1/services/burst/providers?tag=t1&minRevision=${last}`)
    expect(tagged.body.providers.map((p: { id: string }) => p.id)).toEqual(
      fromA.body.providers.filter((p: { tags: string[] }) => p.tags.includes('t1')).map((p: { id: string }) => p.id)
    )

    // A second burst (updates and deregistrations), then B is read without minRevision.
    const second = await Promise.all(Array.from({ length: 20 }, async (_, i) => {
      const res = i % 2 === 0
        ? await http('PUT', `${a.url}/v1/services/burst/providers/burst-${i}`, spec(NOBODY, { tags: ['moved'] }))
        : await http('DELETE', `${a.url}/v1/services/burst/providers/burst-${i}`)
      expect(res.status).toBe(200)
      return res.body.revision as number
    }))
    const newest = Math.max(...second)
    expect(newest).toBe(last + 20)
    const expected = (await http('GET', `${a.url}/v1/services/burst/providers?minRevision=${newest}`)).body
    // Timed from the moment A acknowledged every write of the second burst.
    await waitFor(async () => {
      const res = await http('GET', `${b.url}/v1/services/burst/providers`)
      return res.headers.get('x-roster-revision') === String(newest) &&
        JSON.stringify(res.body) === JSON.stringify(expected)
    }, { timeoutMs: 1000, intervalMs: 5, what: `gateway B to show revision ${newest} without minRevision` })
    expect(expected.providers).toHaveLength(40)
  }, 120_000)

  it('a feed client cut off mid-stream resumes on the other gateway with since: no snapshot, every later event once', async () => {
    const [a, b] = await twoGateways()
    const control = await readFeed(b.url, '?service=stream')
    const start = (await control.next((m) => m.type === 'snapshot')).revision
    const onA = await readFeed(a.url, '?service=stream')
    expect((await onA.next((m) => m.type === 'snapshot')).revision).toBe(start)

    const writer = startWriter(a.url, 'stream')
    let resumed: FeedReader | null = null
    try {
      await waitFor(() => events(onA).length >= 20, { timeoutMs: 20_000, what: '20 events on gateway A' })
      onA.close()
      const seen = [...onA.messages]
      const since = lastRevision(onA)
      const writtenAtCut = writer.count()

      resumed = await readFeed(b.url, `?service=stream&since=${since}`)
      // The stream goes on while the client catches up and turns live on B.
      const r = resumed
      await waitFor(() => events(r).length >= 20, { timeoutMs: 20_000, what: '20 events on the resumed feed' })
      const revisions = await writer.stop()
      const final = Math.max(...revisions)
      expect(writer.count()).toBeGreaterThan(writtenAtCut)

      await waitFor(() => lastRevision(r) === final && lastRevision(control) === final, {
        timeoutMs: 10_000, what: `both feeds on B to reach revision ${final}`
      })
      const all = events(control)
      // The control feed itself: one event per write, in order, no gap, nothing twice.
      expect(all.map((m) => m.revision)).toEqual(range(start + 1, final))
      expect(all.map((m) => m.event)).toEqual(all.map(() => 'registered'))

      expect(seen.filter((m) => m.type === 'snapshot')).toHaveLength(1)
      expect(events(seen)).toEqual(all.filter((m) => m.revision <= since))
      expect(r.messages.filter((m) => m.type === 'snapshot')).toEqual([])
      expect(r.messages).toEqual(all.filter((m) => m.revision > since))
      expect(r.closed).toBeNull()
    } finally {
      await writer.stop().catch(() => [])
      resumed?.close()
      control.close()
    }
  }, 120_000)

  it('a client watching a gateway that is SIGKILLed resumes on the other with since and misses nothing', async () => {
    const [a, b] = await twoGateways()
    const control = await readFeed(b.url, '?service=crash')
    const start = (await control.next((m) => m.type === 'snapshot')).revision
    const onA = await readFeed(a.url, '?service=crash')
    await onA.next((m) => m.type === 'snapshot')

    // Writes go through B: A is about to die.
    const writer = startWriter(b.url, 'crash')
    let resumed: FeedReader | null = null
    try {
      await waitFor(() => events(onA).length >= 20, { timeoutMs: 20_000, what: '20 events on gateway A' })
      await a.proc.kill('SIGKILL')
      await waitFor(() => onA.closed !== null, { timeoutMs: 10_000, what: 'the client to notice that gateway A died' })
      const since = lastRevision(onA)
      const writtenAtCrash = writer.count()

      resumed = await readFeed(b.url, `?service=crash&since=${since}`)
      const r = resumed
      await waitFor(() => events(r).length >= 20, { timeoutMs: 20_000, what: '20 events on the resumed feed' })
      const revisions = await writer.stop()
      const final = Math.max(...revisions)
      expect(writer.count()).toBeGreaterThan(writtenAtCrash)

      await waitFor(() => lastRevision(r) === final && lastRevision(control) === final, {
        timeoutMs: 10_000, what: `both feeds on B to reach revision ${final}`
      })
      const all = events(control)
      expect(all.map((m) => m.revision)).toEqual(range(start + 1, final))
      expect(events(onA)).toEqual(all.filter((m) => m.revision <= since))
      expect(r.messages.filter((m) => m.type === 'snapshot')).toEqual([])
      expect(r.messages).toEqual(all.filter((m) => m.revision > since))
      // Reads keep working on the survivor and see every write.
      const list = await http('GET', `${b.url}/v1/services/crash/providers?minRevision=${final}`)
      expect(list.body.providers).toHaveLength(revisions.length)
    } finally {
      await writer.stop().catch(() => [])
      resumed?.close()
      control.close()
      onA.close()
    }
  }, 120_000)
})

describe('a gateway started after the events a client missed', () => {
  it('resumes the client from the leader\'s change log: the same events, no snapshot', async () => {
    const cluster = await startCluster({ workers: 1, gateways: 1 })
    const a = cluster.gateways[0] as Gateway
    // Providers nobody touches, so that a snapshot of the service (26 providers) is larger than
    // the 16 events to replay: a longer replay is answered with a reset snapshot instead.
    for (let i = 0; i < 20; i++) {
      expect((await http('PUT', `${a.url}/v1/services/late/providers/keep-${i}`, spec(NOBODY))).status).toBe(201)
    }
    const control = await readFeed(a.url, '?service=late')
    const start = (await control.next((m) => m.type === 'snapshot')).revision
    const client = await readFeed(a.url, '?service=late')
    await client.next((m) => m.type === 'snapshot')

    // Every kind of write, with tags and meta, so that the change log must give back exactly
    // what the live feed carried.
    const write = async (method: string, id: string, body?: unknown): Promise<number> => {
      const res = await http(method, `${a.url}/v1/services/late/providers/${id}`, body)
      expect(res.status).toBeLessThan(300)
      return res.body.revision as number
    }
    for (let i = 0; i < 10; i++) await write('PUT', `late-${i}`, spec(NOBODY, { tags: ['a', `n${i}`], meta: { zone: 'eu', build: String(i) } }))
    await waitFor(() => lastRevision(client) === start + 10, { timeoutMs: 10_000, what: 'the client to see the first 10 events' })
    client.close()
    const since = lastRevision(client)
    for (let i = 0; i < 10; i++) await write('PUT', `late-${i}`, spec(NOBODY, { tags: ['b'], meta: { zone: 'us' }, protocol: 'rpc' }))
    for (let i = 0; i < 5; i++) await write('DELETE', `late-${i}`)
    const final = await write('PUT', 'late-new', spec())

    // Gateway C starts now: its replica begins at a snapshot past `since`, so its own ring
    // cannot serve the resume.
    const cUrl = (await startGateway(cluster.bind)).url
    const resumed = await readFeed(cUrl, `?service=late&since=${since}`)
    try {
      await waitFor(() => lastRevision(resumed) === final && lastRevision(control) === final, {
        timeoutMs: 10_000, what: `both feeds to reach revision ${final}`
      })
      const all = events(control)
      expect(all.map((m) => m.revision)).toEqual(range(start + 1, final))
      expect(resumed.messages.filter((m) => m.type === 'snapshot')).toEqual([])
      expect(resumed.messages).toEqual(all.filter((m) => m.revision > since))
      expect(resumed.messages.map((m) => m.event)).toEqual([...Array(10).fill('updated'), ...Array(5).fill('deregistered'), 'registered'])
    } finally {
      resumed.close()
      control.close()
    }
  }, 120_000)
})

describe('workers, separate processes', () => {
  const INTERVAL_MS = 200
  const PROVIDERS = 10

  it('spreads providers over live workers; a SIGKILLed worker causes no false down, its providers stay watched, and a joining worker moves them silently', async () => {
    const cluster = await startCluster({ workers: 2, gateways: 1 })
    const [w0, w1] = cluster.workers as [RosterProcess, RosterProcess]
    const gw = cluster.gateways[0] as Gateway
    const leaderPort = portOf(cluster.bind)
    // Both workers have joined the leader before anything is registered.
    await waitFor(async () => (await connectedPorts(w0.child.pid as number)).has(leaderPort) &&
      (await connectedPorts(w1.child.pid as number)).has(leaderPort), { timeoutMs: STARTUP_TIMEOUT_MS, what: 'both workers connected to the leader' })

    const feed = await readFeed(gw.url, '?service=spread')
    await feed.next((m) => m.type === 'snapshot')
    // Half of the providers are Python, half Node: the heartbeat contract is language-neutral.
    const emitters = await Promise.all(Array.from({ length: PROVIDERS }, async (_, i) =>
      await spawnEmitter({ id: `spread-${i}`, intervalMs: INTERVAL_MS, python: i % 2 === 1 })))
    const byPort = new Map<number, { id: string, emitter: Emitter }>(emitters.map((e, i) => [portOf(e.endpoint), { id: `spread-${i}`, emitter: e }]))
    for (const [i, e] of emitters.entries()) {
      const res = await http('PUT', `${gw.url}/v1/services/spread/providers/spread-${i}`, spec(e.endpoint, { heartbeatIntervalMs: INTERVAL_MS }))
      expect(res.status).toBe(201)
    }
    await waitFor(() => new Set(events(feed).filter((m) => m.event === 'up').map((m) => m.provider?.id)).size === PROVIDERS, {
      timeoutMs: 20_000, what: `all ${PROVIDERS} providers up`
    })

    // Each worker process holds the heartbeat connections of half of the providers, and no
    // provider is watched twice.
    const watchedBy = async (w: RosterProcess): Promise<number[]> =>
      [...await connectedPorts(w.child.pid as number)].filter((p) => byPort.has(p)).sort((x, y) => x - y)
    let spread: [number[], number[]] = [[], []]
    await waitFor(async () => {
      spread = [await watchedBy(w0), await watchedBy(w1)]
      return spread[0].length === PROVIDERS / 2 && spread[1].length === PROVIDERS / 2 &&
        new Set([...spread[0], ...spread[1]]).size === PROVIDERS
    }, { timeoutMs: 10_000, what: 'the providers spread 5/5 over the two workers' })
    const victimPorts = spread[0]

    const mark = feed.messages.length
    const killedAt = Date.now()
    await w0.kill('SIGKILL')

    // The survivor takes over every provider…
    await waitFor(async () => (await watchedBy(w1)).length === PROVIDERS, { timeoutMs: 10_000, what: 'the surviving worker to watch all providers' })
    // …and for 3 s after the kill (an observation window, not a wait for a condition) no
    // provider is reported down: the watcher died, not the providers.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, killedAt + 3000 - Date.now())))
    const afterKill = feed.messages.slice(mark)
    expect(afterKill.filter((m) => m.type === 'event' && m.event !== 'up')).toEqual([])
    expect(afterKill.filter((m) => m.type === 'snapshot')).toEqual([])

    // Heartbeats of a moved provider are really watched: silence it and it goes down in time.
    const moved = byPort.get(victimPorts[0] as number) as { id: string, emitter: Emitter }
    const beforeSilence = feed.messages.length
    const silencedAt = Date.now()
    await moved.emitter.silence()
    const down = await feed.next((m) => m.event === 'down' && m.provider?.id === moved.id, {
      from: beforeSilence, timeoutMs: 3 * INTERVAL_MS + 2000 + 1000
    })
    const tookMs = Date.now() - silencedAt
    expect(tookMs).toBeLessThanOrEqual(3 * INTERVAL_MS + 2000)
    // The last heartbeat may have left up to one interval before the silence began.
    expect(tookMs).toBeGreaterThanOrEqual(2 * INTERVAL_MS)
    expect(down.provider?.state).toBe('down')
    expect(feed.messages.slice(beforeSilence).filter((m) => m.event === 'down' && m.provider?.id !== moved.id)).toEqual([])
    // And it comes back up on its next heartbeat.
    await moved.emitter.resume()
    await feed.next((m) => m.event === 'up' && m.provider?.id === moved.id, { from: beforeSilence, timeoutMs: 10_000 })

    // A worker that joins takes half of the providers, and the move is invisible on the feed.
    const beforeJoin = feed.messages.length
    const w2 = spawnRoster(['worker', '--leader', cluster.bind])
    await waitFor(async () => (await watchedBy(w2)).length === PROVIDERS / 2 && (await watchedBy(w1)).length === PROVIDERS / 2, {
      timeoutMs: STARTUP_TIMEOUT_MS, what: 'the new worker to take half of the providers'
    })
    // An observation window: a moved provider's new watcher has had three intervals to hear it.
    await new Promise((resolve) => setTimeout(resolve, 1000))
    expect(feed.messages.slice(beforeJoin)).toEqual([])
    feed.close()
  }, 180_000)
})
