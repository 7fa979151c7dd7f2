// The client while the gateway it is using dies, with every role a real `roster` process: a
// burst of concurrent registrations (then deregistrations) through three gateways while one is
// SIGKILLed mid-burst, after which every write acknowledged is stored exactly once, as a second,
// independent feed reader and a read through a surviving gateway agree; and a watch whose
// gateway is stopped (1001), then SIGKILLed (1006), which goes on elsewhere with every event
// once, in order, the same as that independent reader's.
import { describe, expect, it } from 'vitest'
import { RosterClient, type Deregistration, type ProviderSpec, type Registration, type RetryInfo, type WatchMessage } from 'roster/client'
import { freeLeaderBind } from '../../harness/ports.js'
import { http, spawnRoster } from '../../harness/roster-process.js'
import { type FeedMessage, type GatewayProcess, readFeed, spawnGateway, storageFlags, testStorage } from '../helpers/cluster.js'
import { cleanUpAfterEachTest } from '../helpers/e2e-cleanup.js'
import { waitFor } from '../../harness/wait-for.js'

/** Child processes start through a fresh esbuild bundle at first: seconds on a loaded 2-core box. */
const STARTUP_TIMEOUT_MS = 60_000
/** Nobody listens on the discard port: providers stay `pending`, so the only changes are the test's writes. */
const SPEC: ProviderSpec = { host: '127.0.0.1', port: 8080, protocol: 'http', heartbeat: 'tcp://127.0.0.1:9' }

cleanUpAfterEachTest()

/** One leader and three gateways, each its own process (no worker: nothing is watched). */
async function threeGateways (): Promise<[GatewayProcess, GatewayProcess, GatewayProcess]> {
  const bind = await freeLeaderBind()
  spawnRoster(['leader', '--bind', bind, ...storageFlags(await testStorage('roster-client-kill-'))])
  const [a, b, c] = await Promise.all([1, 2, 3].map(async () => await spawnGateway([bind], STARTUP_TIMEOUT_MS)))
  return [a as GatewayProcess, b as GatewayProcess, c as GatewayProcess]
}

/**
 * Three gateways; the independent witness, a plain WebSocket reader of `service` on C (the
 * gateway that survives), with the revision of its snapshot; and a client of all three that
 * records its retries.
 */
async function setUp (service: string) {
  const gateways = await threeGateways()
  const control = await readFeed(gateways[2].url, `?service=${service}`)
  const start = (await control.next((m) => m.type === 'snapshot')).revision
  const retries: RetryInfo[] = []
  const roster = new RosterClient({ urls: gateways.map((g) => g.url), onRetry: (info) => retries.push(info) })
  return { gateways, control, start, retries, roster }
}

/** Runs `task(i)` for i in 0..count-1, `concurrency` at a time; calls `midway` once, after `at` of them succeeded. */
async function burst<T> (count: number, concurrency: number, task: (i: number) => Promise<T>, at: number, midway: () => Promise<void>): Promise<T[]> {
  const results: T[] = new Array<T>(count)
  let next = 0
  let done = 0
  let fired: Promise<void> | null = null
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < count) {
      const i = next++
      results[i] = await task(i)
      if (++done === at) fired = midway()
    }
  }))
  await fired
  return results
}

const range = (from: number, to: number): number[] => Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i)
const events = (messages: FeedMessage[] | WatchMessage[]): Array<FeedMessage | WatchMessage> => messages.filter((m) => m.type === 'event')

describe('the client while its gateway dies', () => {
  it('SIGKILL mid-write: every acknowledged registration and deregistration is stored exactly once', async () => {
    const { gateways: [A, B, C], control, start, retries, roster } = await setUp('burst')
    const COUNT = 240
    const CONCURRENCY = 24
    const ids = range(0, COUNT - 1).map((i) => `burst-${i}`)

    // Registrations spread over A, B and C; A is SIGKILLed with about a third of the calls in flight on it.
    const registered: Registration[] = await burst(COUNT, CONCURRENCY, async (i) => await roster.register('burst', ids[i] as string, SPEC), 60,
      async () => { await A.proc.kill('SIGKILL') })
    expect(A.proc.child.signalCode).toBe('SIGKILL')
    expect(retries.some((r) => r.operation === 'register' && r.failure.gateway === A.url)).toBe(true)
    const last = Math.max(...registered.map((r) => r.revision))
    // One revision per provider, no more: nothing lost, nothing written twice.
    expect(last).toBe(start + COUNT)
    const stored = await http('GET', `${C.url}/v1/services/burst/providers?minRevision=${last}`)
    expect(stored.body.providers.map((p: { id: string }) => p.id).sort()).toEqual([...ids].sort())
    const storedRevision = new Map<string, number>(stored.body.providers.map((p: { id: string, revision: number }) => [p.id, p.revision]))
    for (const [i, r] of registered.entries()) {
      expect(r.provider.id).toBe(ids[i])
      expect(r.revision).toBe(storedRevision.get(ids[i] as string))
    }
    await waitFor(() => events(control.messages).at(-1)?.revision === last, { timeoutMs: 10_000, what: `the control feed to reach ${last}` })
    const registrations = events(control.messages)
    expect(registrations.map((m) => m.revision)).toEqual(range(start + 1, last))
    expect(registrations.every((m) => m.type === 'event' && m.event === 'registered')).toBe(true)
    expect(new Set(registrations.map((m) => m.type === 'event' ? m.provider?.id : null)).size).toBe(COUNT)

    // Deregistrations over B and C (A is dead); B is SIGKILLed mid-burst.
    const retriesBefore = retries.length
    const deregistered: Deregistration[] = await burst(COUNT, CONCURRENCY, async (i) => await roster.deregister('burst', ids[i] as string), 60,
      async () => { await B.proc.kill('SIGKILL') })
    expect(retries.slice(retriesBefore).some((r) => r.operation === 'deregister' && r.failure.gateway === B.url)).toBe(true)
    const final = start + 2 * COUNT
    await waitFor(() => events(control.messages).at(-1)?.revision === final, { timeoutMs: 10_000, what: `the control feed to reach ${final}` })
    const removals = events(control.messages).slice(COUNT)
    expect(removals.map((m) => m.revision)).toEqual(range(last + 1, final))
    expect(removals.every((m) => m.type === 'event' && m.event === 'deregistered')).toBe(true)
    const removedAt = new Map(removals.map((m) => [m.type === 'event' ? m.provider?.id : '', m.revision]))
    expect(removedAt.size).toBe(COUNT)
    // Each call reports the revision of its removal, or null where a retry found it already removed.
    for (const [i, d] of deregistered.entries()) {
      if (d.revision !== null) expect(d.revision).toBe(removedAt.get(ids[i] as string))
    }
    expect((await http('GET', `${C.url}/v1/services/burst/providers?minRevision=${final}`)).body.providers).toEqual([])
    console.log(`[mid-write kills] ${retries.length} retries; ${deregistered.filter((d) => d.revision === null).length} deregistrations resolved by a 404 after a retry`)
    control.close()
  }, 180_000)

  it('a watch whose gateway stops (1001), then is SIGKILLed (1006), goes on elsewhere: every event once, in order', async () => {
    const { gateways: [A, B, C], control, start, retries, roster } = await setUp('stream')
    const watch = roster.watch({ services: ['stream'] })
    const got: WatchMessage[] = []
    const consuming = (async () => { for await (const message of watch) got.push(message) })()

    // A writer through C, one registration after another, until stopped.
    let writing = true
    let written = 0
    const writer = (async () => {
      for (let i = 0; writing && i < 5000; i++) {
        const res = await http('PUT', `${C.url}/v1/services/stream/providers/stream-${i}`, SPEC)
        if (res.status !== 201) throw new Error(`write ${i} answered ${res.status}: ${JSON.stringify(res.body)}`)
        written = res.body.revision as number
      }
    })()
    const eventsSeen = (): number => events(got).length
    try {
      // The first watch goes to A (the first gateway of the client's first round).
      await waitFor(() => watch.gateway === A.url && eventsSeen() >= 20, { timeoutMs: 20_000, what: 'the watch on A to see 20 events' })
      await A.proc.kill('SIGTERM')
      const atStop = eventsSeen()
      await waitFor(() => watch.gateway === B.url && eventsSeen() >= atStop + 20, { timeoutMs: 20_000, what: 'the watch to go on at B' })
      await B.proc.kill('SIGKILL')
      const atKill = eventsSeen()
      await waitFor(() => watch.gateway === C.url && eventsSeen() >= atKill + 20, { timeoutMs: 20_000, what: 'the watch to go on at C' })
    } finally {
      writing = false
      await writer
    }
    const final = written
    await waitFor(() => watch.revision === final && events(control.messages).at(-1)?.revision === final, {
      timeoutMs: 10_000, what: `the watch and the control feed to reach ${final}`
    })
    watch.close()
    await consuming

    // One snapshot (the first message), no reset, then exactly the control reader's events.
    expect(got.filter((m) => m.type === 'snapshot')).toEqual([got[0]])
    expect(got[0]).toMatchObject({ type: 'snapshot', revision: start })
    expect(events(got).map((m) => m.revision)).toEqual(range(start + 1, final))
    expect(events(got)).toEqual(events(control.messages))
    expect(retries.map((r) => [r.operation, r.failure.gateway, r.failure.code])).toEqual([
      ['watch', A.url, 'close-1001'],
      ['watch', B.url, 'close-1006']
    ])
    control.close()
  }, 180_000)
})
