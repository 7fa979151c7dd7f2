// Operators' tools as a user sees them, through real HTTP, a real WebSocket feed and a real
// heartbeat emitter process, with Roster in this process (`roster up` wiring), restarted on the
// same storage: maintenance on and off, and deregisterAfterMs removing a provider down too long.
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { http } from '../../harness/roster-process.js'
import { type FeedMessage, type FeedReader, readFeed, removeTestStorage, startInProcess, type Storage, testStorage } from '../helpers/cluster.js'
import { killAllEmitters, spawnEmitter } from '../helpers/emitters.js'
import { waitFor } from '../../harness/wait-for.js'

const INTERVAL_MS = 100

interface FeedProvider { id: string, state: string, reason?: string, lastSeen: string | null, stateSince: string }
const providerOf = (m: FeedMessage): FeedProvider => m.provider as unknown as FeedProvider

/** A gateway says `leader: connected` a moment before its replica holds a snapshot; reads and
 *  feed upgrades in that moment are 503. Wait until it answers reads. */
async function readable (url: string): Promise<void> {
  await waitFor(async () => (await fetch(`${url}/v1/services`)).ok, { timeoutMs: 15_000, what: `${url} to answer reads` })
}

const stops: Array<() => Promise<void>> = []
const feeds: FeedReader[] = []
afterEach(async () => {
  for (const f of feeds.splice(0)) f.close()
  for (const stop of stops.splice(0).reverse()) await stop()
  await killAllEmitters()
})
afterAll(async () => {
  await removeTestStorage()
})

async function start (s: Storage): Promise<{ url: string, stop: () => Promise<void> }> {
  const system = await startInProcess(s)
  await readable(system.url)
  let stopped = false
  const stop = async (): Promise<void> => {
    if (stopped) return
    stopped = true
    await system.stop()
  }
  stops.push(stop)
  return { url: system.url, stop }
}

async function feed (url: string, query = '?service=orders'): Promise<FeedReader> {
  const f = await readFeed(url, query)
  feeds.push(f)
  return f
}

describe('maintenance', () => {
  it('holds a provider out of state=up with the operator\'s note, across a restart and a re-registration, and lets it come back up at once', async () => {
    const s = await testStorage('roster-e2e-ops-')
    let system = await start(s)
    const emitter = await spawnEmitter({ id: 'orders-1', intervalMs: INTERVAL_MS })
    const spec = { host: '127.0.0.1', port: 8080, protocol: 'http', heartbeat: emitter.endpoint, heartbeatIntervalMs: INTERVAL_MS }
    let events = await feed(system.url)
    expect((await http('PUT', `${system.url}/v1/services/orders/providers/orders-1`, spec)).status).toBe(201)
    await events.next((m) => m.event === 'up')

    const url = `${system.url}/v1/services/orders/providers/orders-1/maintenance`
    const on = await http('PUT', url, { enabled: true, reason: 'kernel upgrade' })
    expect(on.status).toBe(200)
    expect(on.body.provider).toMatchObject({ id: 'orders-1', state: 'maintenance', reason: 'kernel upgrade' })
    const held = await events.next((m) => m.event === 'maintenance')
    expect(held.revision).toBe(on.body.revision)
    expect(providerOf(held)).toMatchObject({ state: 'maintenance', reason: 'kernel upgrade' })
    const upOnly = await http('GET', `${system.url}/v1/services/orders/providers?state=up&minRevision=${on.body.revision as number}`)
    expect(upOnly.body.providers).toEqual([])
    expect((await http('GET', `${system.url}/v1/services/orders/providers?state=maintenance`)).body.providers.map((p: { id: string }) => p.id)).toEqual(['orders-1'])
    // Idempotent: the same mode again is 200 with the same revision.
    const again = await http('PUT', url, { enabled: true })
    expect(again).toMatchObject({ status: 200, body: { revision: on.body.revision, provider: { reason: 'kernel upgrade' } } })
    expect((await http('PUT', `${system.url}/v1/services/orders/providers/nobody/maintenance`, { enabled: true })).status).toBe(404)

    // Stored: a restart keeps it, and so does a re-registration.
    events.close()
    await system.stop()
    system = await start(s)
    const stored = await http('GET', `${system.url}/v1/services/orders/providers/orders-1`)
    expect(stored.body).toMatchObject({ state: 'maintenance', reason: 'kernel upgrade' })
    const reregistered = await http('PUT', `${system.url}/v1/services/orders/providers/orders-1`, { ...spec, tags: ['blue'] })
    expect(reregistered).toMatchObject({ status: 200, body: { provider: { state: 'maintenance', tags: ['blue'] } } })

    // Out of maintenance: pending, then up as soon as its watcher says what it sees.
    events = await feed(system.url)
    const offAt = Date.now()
    const off = await http('PUT', `${system.url}/v1/services/orders/providers/orders-1/maintenance`, { enabled: false })
    expect(off).toMatchObject({ status: 200, body: { provider: { state: 'pending' } } })
    expect(off.body.provider).not.toHaveProperty('reason')
    const released = await events.next((m) => m.revision === off.body.revision)
    expect(released.event).toBe('updated')
    await events.next((m) => m.event === 'up' && m.revision > off.body.revision)
    // Not a silence's three intervals, nor a restart of the watch: the worker reports at once.
    expect(Date.now() - offAt).toBeLessThan(2000)
    const up = await http('GET', `${system.url}/v1/services/orders/providers?state=up`)
    expect(up.body.providers.map((p: { id: string }) => p.id)).toEqual(['orders-1'])
  }, 60_000)
})

describe('deregisterAfterMs', () => {
  it('removes a provider that stayed down that long, with a deregistered event whose reason is down-too-long', async () => {
    const s = await testStorage('roster-e2e-ops-')
    const system = await start(s)
    const events = await feed(system.url)
    const emitter = await spawnEmitter({ id: 'orders-2', intervalMs: INTERVAL_MS })
    const put = await http('PUT', `${system.url}/v1/services/orders/providers/orders-2`, {
      host: '127.0.0.1', port: 8080, protocol: 'http', heartbeat: emitter.endpoint, heartbeatIntervalMs: INTERVAL_MS, deregisterAfterMs: 1000
    })
    expect(put).toMatchObject({ status: 201, body: { provider: { deregisterAfterMs: 1000 } } })
    await events.next((m) => m.event === 'up')
    emitter.kill('SIGKILL')
    const down = await events.next((m) => m.event === 'down')
    const gone = await events.next((m) => m.event === 'deregistered', { timeoutMs: 10_000 })
    expect(providerOf(gone)).toMatchObject({ id: 'orders-2', state: 'down', reason: 'down-too-long' })
    const downFor = Date.parse(new Date().toISOString()) - Date.parse(providerOf(down).stateSince)
    expect(downFor).toBeGreaterThanOrEqual(1000)
    expect((await http('GET', `${system.url}/v1/services/orders/providers/orders-2?minRevision=${gone.revision}`)).status).toBe(404)
  }, 60_000)
})
