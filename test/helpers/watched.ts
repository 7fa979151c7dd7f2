// Providers with real heartbeats spread over worker processes, for tests that take a worker away
// (SIGTERM, a cut link) and check where its providers went. It sees the spread from outside:
// which worker process holds the TCP connection to which provider's heartbeat endpoint (/proc).
import { expect } from 'vitest'
import { http, type RosterProcess } from '../../harness/roster-process.js'
import { readFeed, type FeedReader } from './cluster.js'
import { spawnEmitter, type Emitter } from './emitters.js'
import { connectedPorts } from './proc-net.js'
import { waitFor } from '../../harness/wait-for.js'

export interface WatchedProviders {
  /** A feed of `service`, opened before the registrations. */
  feed: FeedReader
  /** emitters[i] is provider `${service}-${i}`. */
  emitters: Emitter[]
  /** How many of the providers' heartbeat connections the worker process holds. */
  watchedBy: (worker: RosterProcess) => Promise<number>
}

/**
 * Registers `count` providers of `service` through the gateway at `url`, each a heartbeat
 * emitter process beating every `intervalMs`, and waits until all are up and spread evenly
 * over `workers`.
 */
export async function watchedProviders (url: string, service: string, count: number, workers: RosterProcess[], intervalMs = 200): Promise<WatchedProviders> {
  const feed = await readFeed(url, `?service=${service}`)
  await feed.next((m) => m.type === 'snapshot')
  const emitters = await Promise.all(Array.from({ length: count }, async (_, i) => await spawnEmitter({ id: `${service}-${i}`, intervalMs })))
  const ports = new Set(emitters.map((e) => Number(e.endpoint.slice(e.endpoint.lastIndexOf(':') + 1))))
  for (const [i, e] of emitters.entries()) {
    const spec = { host: '127.0.0.1', port: 8080, protocol: 'http', heartbeat: e.endpoint, heartbeatIntervalMs: intervalMs }
    expect((await http('PUT', `${url}/v1/services/${service}/providers/${service}-${i}`, spec)).status).toBe(201)
  }
  await waitFor(() => new Set(feed.messages.filter((m) => m.event === 'up').map((m) => m.provider?.id)).size === count, { timeoutMs: 20_000, what: `all ${count} providers up` })
  const watchedBy = async (w: RosterProcess): Promise<number> => [...await connectedPorts(w.child.pid as number)].filter((p) => ports.has(p)).length
  const share = count / workers.length
  await waitFor(async () => (await Promise.all(workers.map(watchedBy))).every((n) => n === share), { timeoutMs: 10_000, what: `providers spread ${share} per worker` })
  return { feed, emitters, watchedBy }
}
