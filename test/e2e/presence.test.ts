// The whole life of a provider as a user sees it, through real HTTP, a real WebSocket client,
// a real heartbeat emitter process, and Roster run twice: in this process (`roster up` wiring)
// and as separate `roster leader|worker|gateway` child processes.
import { describe, expect, it } from 'vitest'
import { freeLeaderEndpoint, freePort } from '../../harness/ports.js'
import { http, spawnRoster, waitForLeader, waitForReady } from '../../harness/roster-process.js'
import { type FeedReader, readFeed, startInProcess, type Storage, storageFlags, testStorage } from '../helpers/cluster.js'
import { cleanUpAfterEachTest } from '../helpers/e2e-cleanup.js'
import { spawnEmitter } from '../helpers/emitters.js'

const INTERVAL_MS = 100

interface System { url: string, stop: () => Promise<void> }
type Launch = (storage: Storage) => Promise<System>

const inProcess: Launch = async (s) => await startInProcess(s)

const childProcesses: Launch = async (s) => {
  const bind = await freeLeaderEndpoint()
  const leader = spawnRoster(['leader', '--bind', bind, ...storageFlags(s)])
  const worker = spawnRoster(['worker', '--leader', bind])
  const port = await freePort()
  const gateway = spawnRoster(['gateway', '--leader', bind, '--port', String(port)])
  const url = `http://127.0.0.1:${port}`
  try {
    await waitForLeader(url, 30_000)
    await waitForReady(url, 30_000)
  } catch (err) {
    throw new Error(`${(err as Error).message}\nleader: ${leader.output()}\nworker: ${worker.output()}\ngateway: ${gateway.output()}`)
  }
  return {
    url,
    // SIGTERM: the graceful path a supervisor takes; the data must survive it.
    stop: async () => { await gateway.kill('SIGTERM'); await worker.kill('SIGTERM'); await leader.kill('SIGTERM') }
  }
}

cleanUpAfterEachTest()

describe.each([
  ['in one process', inProcess],
  ['as separate processes', childProcesses]
])('a provider\'s life, %s', (_name, launch) => {
  it('goes pending → up → down (killed) → up → down (silent) → deregistered, and survives a restart', async () => {
    const s = await testStorage('roster-e2e-')
    let system = await launch(s)
    let feed: FeedReader | null = null
    try {
      feed = await readFeed(system.url, '?service=orders')
      const snapshot = await feed.next((m) => m.type === 'snapshot')
      expect(snapshot.providers).toEqual([])

      const emitter = await spawnEmitter({ id: 'orders-1', intervalMs: INTERVAL_MS })
      const put = await http('PUT', `${system.url}/v1/services/orders/providers/orders-1`, {
        host: '127.0.0.1', port: 8080, protocol: 'http', heartbeat: emitter.endpoint, heartbeatIntervalMs: INTERVAL_MS, tags: ['blue']
      })
      expect(put.status).toBe(201)
      expect(put.body.provider).toMatchObject({ id: 'orders-1', service: 'orders', state: 'pending', tags: ['blue'] })
      const registered = await feed.next((m) => m.event === 'registered')
      expect(registered.revision).toBe(put.body.revision)
      expect(registered.provider?.state).toBe('pending')

      const up = await feed.next((m) => m.event === 'up')
      expect(up.provider?.lastSeen).not.toBeNull()

      const mark = feed.messages.length
      emitter.kill('SIGKILL')
      await emitter.exited
      const crashed = await feed.next((m) => m.event === 'down', { from: mark })
      expect(crashed.provider).toMatchObject({ state: 'down', reason: 'disconnected' })
      expect(crashed.provider?.detectedAfterMs).toBeGreaterThanOrEqual(0)

      const again = await spawnEmitter({ id: 'orders-1', intervalMs: INTERVAL_MS, endpoint: emitter.endpoint })
      await feed.next((m) => m.event === 'up', { from: mark })

      const beforeSilence = feed.messages.length
      const silencedAt = Date.now()
      await again.silence()
      const silent = await feed.next((m) => m.event === 'down', { from: beforeSilence })
      // The last heartbeat went out up to one interval before the silence command.
      expect(Date.now() - silencedAt).toBeGreaterThanOrEqual(2 * INTERVAL_MS)
      expect(silent.provider).toMatchObject({ state: 'down', reason: 'silent' })
      // Detected three intervals after the last heartbeat, give or take a timer tick.
      expect(silent.provider?.detectedAfterMs).toBeGreaterThanOrEqual(3 * INTERVAL_MS)

      // Revisions on the feed only ever increase, with no duplicates.
      const revisions = feed.messages.filter((m) => m.type === 'event').map((m) => m.revision)
      expect(revisions).toEqual([...revisions].sort((a, b) => a - b))
      expect(new Set(revisions).size).toBe(revisions.length)

      feed.close()
      feed = null
      await system.stop()
      system = await launch(s)
      const stored = await http('GET', `${system.url}/v1/services/orders/providers/orders-1`)
      expect(stored.status).toBe(200)
      expect(stored.body).toMatchObject({ id: 'orders-1', service: 'orders', heartbeat: again.endpoint, tags: ['blue'] })

      feed = await readFeed(system.url, `?service=orders&since=${revisions.at(-1) as number}`)
      const del = await http('DELETE', `${system.url}/v1/services/orders/providers/orders-1`)
      expect(del.status).toBe(200)
      const gone = await feed.next((m) => m.event === 'deregistered')
      expect(gone.revision).toBe(del.body.revision)
      expect((await http('GET', `${system.url}/v1/services/orders/providers/orders-1`)).status).toBe(404)
    } finally {
      feed?.close()
      await system.stop()
    }
  }, 90_000)
})
