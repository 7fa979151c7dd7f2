// GET /metrics and what it serves: the gateway's Prometheus metrics (its replica, its feed, its
// HTTP traffic, its link to the leader) on a registry of its own (common/metrics.ts), plus, in
// `roster up`, the other roles' text handed in by `extra`. HTTP requests are counted by route
// pattern, never by raw URL, so that no client can mint series; everything else is read from the
// gateway's parts at scrape time. With --auth on a scrape needs a token that may read every
// service (`read`, `read:*`, `write:*` or `admin`): the providers gauge names every service.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { Counter, Histogram, type Registry } from 'prom-client'
import { counterFrom, createProcessRegistry, createRoleRegistry, gaugeFrom, METRICS_CONTENT_TYPE, renderMetrics } from '../common/metrics.js'
import type { ProviderState } from '../protocol/model.js'
import { readableBy } from './auth.js'
import { ForbiddenError } from './errors.js'
import type { Replica } from './replica.js'
import type { WatchHub } from './watch-hub.js'
import type { LeaderClientStats } from './ports.js'

export interface GatewayMetricsOptions {
  /** The rest of the process's metrics, in the text format (`roster up`: the leader's, the
   *  worker's and the process's, from the main thread; server/up/threads.ts). */
  extra?: () => Promise<string>
  /** Collect prom-client's process metrics here: a standalone `roster gateway`. */
  processMetrics?: boolean
}

interface MetricsDeps {
  replica: Replica
  hub: WatchHub
  leaderStats?: LeaderClientStats
  options: GatewayMetricsOptions
}

/** Every state is reported for every service, 0 included, so that `== 0` alerts work. */
const STATES: readonly ProviderState[] = ['pending', 'up', 'down', 'maintenance']
/** Methods a request is counted under; any other (Node accepts a few dozen) is `other`. */
const METHODS = new Set(['GET', 'HEAD', 'PUT', 'POST', 'DELETE', 'PATCH', 'OPTIONS'])
/** Seconds, from a batched commit on an idle Postgres (~1 ms) to the 2 s the gateway waits for
 *  the leader (leader-client.ts) and the write's visibility wait beyond it. */
const WRITE_BUCKETS_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]

export function installMetrics (app: FastifyInstance, { replica, hub, leaderStats, options }: MetricsDeps): void {
  const registry = createRoleRegistry('gateway')
  const registries: Registry[] = [registry]
  if (options.processMetrics === true) registries.push(createProcessRegistry())

  gaugeFrom(registry, 'roster_gateway_providers', 'providers in this gateway\'s replica, by service and state', ['service', 'state'], () => {
    // A pass over the replica's providers (a few ms per 100,000); the output is 4 series per
    // service whatever the number of providers.
    const out: Array<[Record<string, string>, number]> = []
    for (const { name } of replica.services()) {
      const counts = Object.fromEntries(STATES.map((s) => [s, 0])) as Record<string, number>
      for (const p of replica.providers(name)) counts[p.state] = (counts[p.state] ?? 0) + 1
      for (const [state, n] of Object.entries(counts)) out.push([{ service: name, state }, n])
    }
    return out
  })
  gaugeFrom(registry, 'roster_gateway_replica_revision', 'the revision this gateway\'s replica reflects', () => replica.revision)
  if (leaderStats !== undefined) {
    gaugeFrom(registry, 'roster_gateway_replica_lag_revisions', 'revisions the replica is behind the latest the leader announced',
      () => Math.max(0, leaderStats.leaderHead - replica.revision))
    counterFrom(registry, 'roster_gateway_bad_frames_total', 'malformed messages from the leader dropped, by socket: feed (SUB) or link (DEALER)',
      ['socket'], () => [[{ socket: 'feed' }, leaderStats.feedBadFrames], [{ socket: 'link' }, leaderStats.linkBadFrames]])
    counterFrom(registry, 'roster_gateway_replica_snapshots_total', 'snapshots loaded from the leader', () => leaderStats.snapshots)
    counterFrom(registry, 'roster_gateway_replica_repairs_total', 'gaps in the feed repaired from the leader\'s change log', () => leaderStats.repairs)
  }
  gaugeFrom(registry, 'roster_gateway_feed_clients', 'WebSocket feed clients connected', () => hub.clients)
  gaugeFrom(registry, 'roster_gateway_feed_buffered_bytes', 'feed bytes accepted for clients and not yet sent', () => hub.bufferedBytes)
  counterFrom(registry, 'roster_gateway_feed_clients_closed_for_lag_total', 'feed clients closed with 4008 for falling too far behind', () => hub.closedBehind)

  const requests = new Counter({
    name: 'roster_gateway_http_requests_total',
    help: 'HTTP requests answered, by method, route pattern (unmatched: no route) and status code',
    labelNames: ['method', 'route', 'status'],
    registers: [registry]
  })
  const writes = new Histogram({
    name: 'roster_gateway_write_duration_seconds',
    help: 'registry writes (PUT, POST, DELETE under /v1/services) from request received to answer sent, by method and route pattern',
    labelNames: ['method', 'route'],
    buckets: WRITE_BUCKETS_S,
    registers: [registry]
  })
  app.addHook('onResponse', async (req: FastifyRequest, reply: FastifyReply) => {
    const method = METHODS.has(req.method) ? req.method : 'other'
    const route = req.routeOptions.url ?? 'unmatched'
    requests.inc({ method, route, status: String(reply.statusCode) })
    if (method !== 'GET' && method !== 'HEAD' && route.startsWith('/v1/services/')) writes.observe({ method, route }, reply.elapsedTime / 1000)
  })

  // Scrapes that arrive while one renders share its text: however many come at once, the
  // gateway renders once (and in `roster up` asks the main thread once).
  let rendering: Promise<string> | null = null
  const render = async (): Promise<string> => {
    const [own, extra] = await Promise.all([renderMetrics(registries), options.extra?.() ?? ''])
    return own + extra
  }
  app.get('/metrics', {
    config: { access: 'authenticated' },
    schema: { hide: true, summary: 'Prometheus metrics (text format 0.0.4)' }
  }, async (req, reply) => {
    // Auth off: there is no token, and every scrape may read everything, as every read may.
    if (req.token !== null && readableBy(req.token) !== null) throw new ForbiddenError('read (of every service)')
    rendering ??= render().finally(() => { rendering = null })
    return reply.type(METRICS_CONTENT_TYPE).send(await rendering)
  })
}
