// Prometheus metrics (issue 12): every role of a running cluster is scraped and its text parsed
// with the Prometheus project's own parser (helpers/prometheus.ts). A leader, a worker and a
// gateway as processes, a real heartbeat emitter that is SIGKILLed, a tcp check that fails and a
// publisher of malformed heartbeats; then `roster up`, whose gateway port serves every role;
// then /metrics behind --auth on, and hostile traffic that must not mint series.
import { Publisher } from 'zeromq'
import { describe, expect, it } from 'vitest'
import { silentLog } from '../../server/common/log.js'
import { startGateway, startLeader, type Stopper } from '../../server/roles.js'
import { freeLeaderEndpoint, freePort } from '../../harness/ports.js'
import { http, spawnRoster, waitForLeader, waitForReady } from '../../harness/roster-process.js'
import { readFeed, storageFlags, testStorage } from '../helpers/cluster.js'
import { cleanUpAfterEachTest } from '../helpers/e2e-cleanup.js'
import { spawnEmitter } from '../helpers/emitters.js'
import { hasPrometheusParser, scrape, type Scrape } from '../helpers/prometheus.js'
import { NEEDS_PROMETHEUS_PARSER } from '../helpers/requirements.js'
import { waitFor } from '../../harness/wait-for.js'

const INTERVAL_MS = 100

cleanUpAfterEachTest()

/** Scrapes until `ok` holds of the scrape (counters and gauges move a moment after the event). */
async function scrapeUntil (url: string, ok: (s: Scrape) => boolean, what: string, token?: string): Promise<Scrape> {
  let last: Scrape | null = null
  await waitFor(async () => { last = await scrape(url, token); return ok(last) }, { timeoutMs: 15_000, what })
  return last as unknown as Scrape
}

describe('metrics of a cluster run as separate processes', () => {
  it('count what happened, on each role, in the Prometheus text format', async ({ skip }) => {
    skip(!hasPrometheusParser, NEEDS_PROMETHEUS_PARSER)
    const storage = await testStorage('roster-metrics-')
    const bind = await freeLeaderEndpoint()
    const [leaderMetricsPort, workerMetricsPort, port] = [await freePort(), await freePort(), await freePort()]
    const leader = spawnRoster(['leader', '--bind', bind, ...storageFlags(storage), '--metrics-port', String(leaderMetricsPort)])
    const worker = spawnRoster(['worker', '--leader', bind], { ROSTER_METRICS_PORT: String(workerMetricsPort) })
    spawnRoster(['gateway', '--leader', bind, '--port', String(port), '--min-check-interval-ms', '50'])
    const url = `http://127.0.0.1:${port}`
    await waitForLeader(url, 30_000)
    await waitForReady(url, 30_000)
    const leaderUrl = `http://127.0.0.1:${leaderMetricsPort}/metrics`
    const workerUrl = `http://127.0.0.1:${workerMetricsPort}/metrics`
    await waitFor(async () => (await fetch(workerUrl).catch(() => null))?.ok === true, { timeoutMs: 30_000, what: `the worker's metrics listener\n${worker.output()}` })
    await waitFor(async () => (await fetch(leaderUrl).catch(() => null))?.ok === true, { timeoutMs: 30_000, what: `the leader's metrics listener\n${leader.output()}` })

    const feed = await readFeed(url)
    await feed.next((m) => m.type === 'snapshot')
    // p1: a real provider, killed later. p2: a tcp check on a port where nothing listens.
    // p3: an endpoint that publishes only malformed heartbeats (one frame, no id).
    const emitter = await spawnEmitter({ id: 'p1', intervalMs: INTERVAL_MS })
    const closedPort = await freePort()
    const bad = new Publisher({ linger: 0 })
    await bad.bind('tcp://127.0.0.1:*')
    const badTimer = setInterval(() => { void bad.send(['hb']).catch(() => {}) }, 20)
    try {
      const base = { host: '127.0.0.1', port: 8080, protocol: 'http' }
      expect((await http('PUT', `${url}/v1/services/orders/providers/p1`, { ...base, heartbeat: emitter.endpoint, heartbeatIntervalMs: INTERVAL_MS })).status).toBe(201)
      expect((await http('PUT', `${url}/v1/services/orders/providers/p2`, { ...base, port: closedPort, check: { type: 'tcp', intervalMs: 50, timeoutMs: 40 } })).status).toBe(201)
      expect((await http('PUT', `${url}/v1/services/billing/providers/p3`, { ...base, heartbeat: bad.lastEndpoint as string, heartbeatIntervalMs: 60_000 })).status).toBe(201)
      await feed.next((m) => m.event === 'up' && m.provider?.id === 'p1')
      await feed.next((m) => m.event === 'down' && m.provider?.id === 'p2')
      const mark = feed.messages.length
      emitter.kill('SIGKILL')
      await emitter.exited
      await feed.next((m) => m.event === 'down' && m.provider?.id === 'p1', { from: mark })
      const head = feed.messages.at(-1)?.revision as number

      // The gateway: providers by service and state (every state reported, 0 included), the
      // replica caught up, the requests by route pattern, the writes' latency, the feed client.
      const g = await scrapeUntil(`${url}/metrics`, (s) => s.value('roster_gateway_replica_revision', { role: 'gateway' }) >= head, 'the gateway\'s replica at the head')
      expect(g.value('roster_gateway_providers', { service: 'orders', state: 'down' })).toBe(2)
      expect(g.value('roster_gateway_providers', { service: 'orders', state: 'up' })).toBe(0)
      expect(g.value('roster_gateway_providers', { service: 'billing', state: 'pending' })).toBe(1)
      expect(g.value('roster_gateway_replica_lag_revisions')).toBe(0)
      expect(g.value('roster_gateway_http_requests_total', { method: 'PUT', route: '/v1/services/:service/providers/:id', status: '201' })).toBe(3)
      expect(g.value('roster_gateway_write_duration_seconds_count', { method: 'PUT', route: '/v1/services/:service/providers/:id' })).toBe(3)
      expect(g.value('roster_gateway_feed_clients')).toBe(1)
      expect(g.value('roster_gateway_feed_buffered_bytes')).toBeGreaterThanOrEqual(0)
      expect(g.value('roster_gateway_feed_clients_closed_for_lag_total')).toBe(0)
      expect(g.value('roster_gateway_bad_frames_total', { socket: 'feed' })).toBe(0)
      expect(g.family('roster_gateway_write_duration_seconds')?.type).toBe('histogram')
      expect(g.samples('process_cpu_seconds_total')).toHaveLength(1)

      // The leader: active in epoch ≥ 1 after one takeover, one worker with all three tasks,
      // every change published, and the two detections with their reasons.
      const l = await scrapeUntil(leaderUrl, (s) => s.samples('roster_leader_detection_seconds_count', { reason: 'disconnected' }).length === 1, 'the leader\'s detection of p1')
      expect(l.value('roster_leader_active')).toBe(1)
      expect(l.value('roster_leader_epoch')).toBeGreaterThanOrEqual(1)
      expect(l.value('roster_leader_takeovers_total')).toBe(1)
      expect(l.value('roster_leader_workers')).toBe(1)
      expect(l.value('roster_leader_worker_tasks', { stat: 'sum' })).toBe(3)
      expect(l.value('roster_leader_events_published_total')).toBe(head)
      expect(l.value('roster_leader_events_published_total')).toBeGreaterThanOrEqual(3)
      expect(l.value('roster_leader_commit_batch_size_count')).toBeGreaterThanOrEqual(1)
      expect(l.value('roster_leader_commit_batch_size_sum')).toBe(head)
      expect(l.value('roster_leader_detection_seconds_count', { reason: 'disconnected' })).toBe(1)
      // p2's check never succeeded: with no last good news there is no detection time to count.
      expect(l.samples('roster_leader_detection_seconds_count', { reason: 'check-failed' })).toHaveLength(0)
      expect(l.value('roster_leader_detection_seconds_bucket', { reason: 'disconnected', le: '+Inf' })).toBe(1)
      expect(l.value('roster_leader_bad_frames_total', { socket: 'router' })).toBe(0)
      expect(l.samples('process_resident_memory_bytes')).toHaveLength(1)
      // Every leader series says its role.
      for (const f of l.families.filter((f) => f.name.startsWith('roster_'))) for (const s of f.samples) expect(s.labels.role).toBe('leader')

      // The worker: its tasks, the heartbeats it counted, the checks it ran and the failures,
      // and the malformed heartbeats by socket.
      const w = await scrapeUntil(workerUrl, (s) => s.value('roster_worker_bad_frames_total', { socket: 'heartbeat' }) >= 1, 'the worker\'s count of bad heartbeats')
      expect(w.value('roster_worker_tasks')).toBe(3)
      expect(w.value('roster_worker_heartbeats_received_total')).toBeGreaterThanOrEqual(1)
      expect(w.value('roster_worker_checks_total')).toBeGreaterThanOrEqual(1)
      expect(w.value('roster_worker_checks_failed_total')).toBeGreaterThanOrEqual(1)
      expect(w.value('roster_worker_checks_failed_total')).toBeLessThanOrEqual(w.value('roster_worker_checks_total'))
      expect(w.value('roster_worker_bad_frames_total', { socket: 'leader' })).toBe(0)
      expect(w.value('roster_worker_heartbeat_disconnects_total')).toBeGreaterThanOrEqual(1)

      // No series is labelled with a provider id or an endpoint.
      for (const s of [g, l, w]) {
        for (const id of ['p1', 'p2', 'p3', emitter.endpoint]) expect(s.text).not.toContain(`"${id}"`)
      }

      // The listener serves GET /metrics and nothing else.
      expect((await fetch(leaderUrl, { method: 'POST' })).status).toBe(405)
      expect((await fetch(`http://127.0.0.1:${leaderMetricsPort}/v1/services`)).status).toBe(404)
      const headOnly = await fetch(workerUrl, { method: 'HEAD' })
      expect(headOnly.status).toBe(200)
      expect(await headOnly.text()).toBe('')
    } finally {
      clearInterval(badTimer)
      bad.close()
      feed.close()
    }
  })

  it('refuses a --metrics-port that is not a port, and on a gateway (whose metrics are at its /metrics)', async () => {
    const bind = await freeLeaderEndpoint()
    const wrong = spawnRoster(['worker', '--leader', bind, '--metrics-port', '70000'])
    await new Promise((resolve) => wrong.child.once('exit', resolve))
    expect(wrong.child.exitCode).toBe(2)
    expect(wrong.output()).toContain('--metrics-port must be an integer 0–65535, got "70000"')
    // A gateway has no --metrics-port: its metrics are at its own /metrics.
    const misplaced = spawnRoster(['gateway', '--leader', bind, '--metrics-port', '9000'])
    await new Promise((resolve) => misplaced.child.once('exit', resolve))
    expect(misplaced.output()).toContain('--metrics-port does not apply to `roster gateway`')
  })
})

describe('metrics of `roster up`', () => {
  it('serves every role\'s metrics, and the process\'s once, on the gateway port', async ({ skip }) => {
    skip(!hasPrometheusParser, NEEDS_PROMETHEUS_PARSER)
    const port = await freePort()
    const up = spawnRoster(['up', '--bind', await freeLeaderEndpoint(), '--port', String(port), ...storageFlags(await testStorage('roster-metrics-up-'))])
    const url = `http://127.0.0.1:${port}`
    try {
      await waitForLeader(url, 60_000)
      await waitForReady(url, 60_000)
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${up.output()}`)
    }
    expect((await http('PUT', `${url}/v1/services/orders/providers/o1`, { host: '127.0.0.1', port: 1, protocol: 'http', heartbeat: 'tcp://127.0.0.1:9', heartbeatIntervalMs: 1000 })).status).toBe(201)
    // The parser refuses a family that appears twice, so one parse proves the three roles'
    // texts and the process's fit together.
    const s = await scrapeUntil(`${url}/metrics`, (x) => x.value('roster_gateway_providers', { service: 'orders', state: 'pending' }) === 1 &&
      x.value('roster_leader_events_published_total') >= 1 && x.value('roster_worker_tasks') === 1, 'the registration in every role\'s metrics')
    expect(s.value('roster_leader_active', { role: 'leader' })).toBe(1)
    expect(s.value('roster_leader_workers')).toBe(1)
    expect(s.samples('process_cpu_seconds_total')).toHaveLength(1)
    const roles = new Set(s.families.flatMap((f) => f.samples.map((x) => x.labels.role)).filter((r) => r !== undefined))
    expect([...roles].sort()).toEqual(['gateway', 'leader', 'worker'])
  })
})

describe('GET /metrics on a gateway with --auth on', () => {
  const BOOTSTRAP = 'bootstrap-secret-for-the-metrics-test-0123456789'

  it('needs a token that may read every service (401, 403 naming the scope, 200), and hostile requests mint no series', async ({ skip }) => {
    skip(!hasPrometheusParser, NEEDS_PROMETHEUS_PARSER)
    const storage = await testStorage('roster-metrics-auth-')
    const bind = await freeLeaderEndpoint()
    const stoppers: Stopper[] = []
    try {
      stoppers.push(await startLeader({ ...storage, bind, bootstrapToken: BOOTSTRAP }, silentLog))
      const gateway = await startGateway({ port: 0, host: '127.0.0.1', candidates: [bind], auth: true }, silentLog)
      stoppers.push(gateway.stop)
      const url = gateway.url
      const call = async (method: string, path: string, token?: string, body?: unknown): Promise<Response> => await fetch(`${url}${path}`, {
        method,
        headers: { ...(token === undefined ? {} : { authorization: `Bearer ${token}` }), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body)
      })
      await waitFor(async () => (await call('GET', '/v1/services', BOOTSTRAP)).status === 200, { timeoutMs: 15_000, what: 'the bootstrap token accepted' })
      const token = async (scopes: string[]): Promise<string> => {
        const res = await call('POST', '/v1/tokens', BOOTSTRAP, { name: scopes.join('-').replace(/[^a-z-]/g, ''), scopes })
        expect(res.status).toBe(201)
        return ((await res.json()) as { secret: string }).secret
      }
      const reader = await token(['read'])
      const ordersReader = await token(['read:orders'])
      const writer = await token(['write:orders'])
      await waitFor(async () => (await call('GET', '/v1/services', reader)).status === 200, { timeoutMs: 15_000, what: 'the new tokens at the gateway' })

      const anonymous = await call('GET', '/metrics')
      expect(anonymous.status).toBe(401)
      expect((await anonymous.json() as { code: string }).code).toBe('ROSTER_ERR_UNAUTHORIZED')
      for (const secret of [ordersReader, writer]) {
        const refused = await call('GET', '/metrics', secret)
        expect(refused.status).toBe(403)
        expect((await refused.json() as { message: string }).message).toBe('this token may not do this: needs read (of every service)')
      }
      const before = await scrape(`${url}/metrics`, reader)
      expect(before.samples('roster_gateway_http_requests_total', { status: '401', route: '/metrics' })).toHaveLength(1)

      // Hostile traffic: random paths, random provider ids, odd methods, long query strings.
      const marks: string[] = []
      for (let i = 0; i < 40; i++) {
        const mark = `zz${i}x${Math.random().toString(36).slice(2)}`
        marks.push(mark)
        await call('GET', `/${mark}?${mark}=${'a'.repeat(500)}`, reader)
        await call('PUT', `/v1/services/${mark}/providers/${mark}`, BOOTSTRAP, { host: 'x' })
        await call('DELETE', `/v1/services/orders/providers/${mark}`, BOOTSTRAP)
        await call('PATCH', `/metrics/${mark}`)
      }
      const after = await scrape(`${url}/metrics`, BOOTSTRAP)
      for (const mark of marks) expect(after.text).not.toContain(mark)
      const routes = new Set(after.samples('roster_gateway_http_requests_total').map((x) => x.labels.route))
      expect([...routes].sort()).toEqual(['/metrics', '/v1/services', '/v1/services/:service/providers/:id', '/v1/tokens', 'unmatched'])
      // The whole text stays small: series by route and status, not by request.
      expect(after.samples('roster_gateway_http_requests_total').length).toBeLessThan(20)
      expect(Buffer.byteLength(after.text)).toBeLessThan(64 * 1024)
    } finally {
      for (const stop of stoppers.reverse()) await stop()
    }
  })
})
