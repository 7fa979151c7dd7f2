// Starts each role from an already validated configuration, with the same wiring whether the
// CLI runs it or an end-to-end test does. Each function returns the one way to stop what it
// started; nothing here reads the environment or installs signal handlers.
import { randomUUID } from 'node:crypto'
import type { Log } from './common/log.js'
import type { ClusterKeys } from './protocol/cluster-keys.js'
import type { Leader } from './leader/leader.js'
import type { FlapDampingConfig } from './leader/flap-damping.js'
import type { QuotaLimits } from './leader/quota.js'
import type { AllowedTargets } from './protocol/targets.js'
import type { HttpLimits } from './gateway/http-limits.js'
import type { GatewayMetricsOptions } from './gateway/metrics.js'
import type { Worker } from './worker/worker.js'
import type { Registry } from 'prom-client'

// Each role's modules are imported when the role starts, not with this file: `roster up` runs
// the gateway on a thread of its own (server/up/threads.ts), and every module a thread
// imports is loaded into that thread's V8 heap, with its packages (Fastify and
// its plugins cost about 15 MB there, pg about 8 MB). The bundle (bin/roster.js) splits along
// these imports.

export type Stopper = () => Promise<void>

export interface LeaderRoleConfig {
  /** Server Postgres; when absent, the embedded Postgres in `dataDir` (store/embedded-postgres.ts). */
  databaseUrl?: string
  dataDir: string
  bind: string
  /** leader.ts LeaderConfig.localBind: `roster up`'s ipc endpoint for its own worker and gateway. */
  localBind?: string
  flapDamping?: FlapDampingConfig
  /** Workers per provider (`--watchers`). */
  watchers?: number
  /** `--max-providers-per-service`, `--max-providers` (default: quota.ts DEFAULT_QUOTAS). */
  quotas?: QuotaLimits
  /** ROSTER_BOOTSTRAP_TOKEN, read by cli.ts: becomes the admin token `bootstrap` if none exists. */
  bootstrapToken?: string
  /** `roster up` without --auth on: a missing admin token is logged at info, not warn. */
  authOff?: boolean
  /** `--cluster-keys`, loaded: the ROUTER and PUB become CURVE servers. */
  clusterKeys?: ClusterKeys
}

/** `metrics`: the role's Prometheus registry (leader/metrics.ts), for --metrics-port or `roster up`'s /metrics.
 *  `fatal`: settles when the role cannot go on: its --bind is taken (Leader.onFatal), or its
 *  embedded Postgres exited (then nothing could be written until a restart, which recovers it). */
export async function startLeader (config: LeaderRoleConfig, log: Log): Promise<Stopper & { leader: Leader, metrics: Registry, fatal: Promise<Error> }> {
  const [{ openDb }, { migrate }, { createRegistryStore }, { createTokenStore }, { createPgLeaderLock, createSoleLeaderLock }, { createLeader }, { createLeaderMetrics }] = await Promise.all([
    import('./store/db.js'), import('./store/migrate.js'), import('./store/registry-store.js'), import('./store/token-store.js'),
    import('./store/leader-lock.js'), import('./leader/leader.js'), import('./leader/metrics.js')
  ])
  const { databaseUrl } = config
  const db = await openDb({
    ...(databaseUrl !== undefined ? { databaseUrl } : { dataDir: config.dataDir }),
    onNotice: (message, details) => log.info(details, message)
  })
  try {
    const applied = await migrate(db)
    if (applied.length > 0) log.info({ applied }, 'migrated the database')
  } catch (err) {
    await db.close()
    throw err
  }
  // Embedded, the data-directory lock has already made this process the only possible leader.
  const lock = db.serverLost !== undefined
    ? createSoleLeaderLock(db.serverLost)
    : createPgLeaderLock({ databaseUrl: db.url, applicationName: `roster-leader-${process.pid}` })
  const leader = createLeader({
    store: createRegistryStore(db),
    tokens: createTokenStore(db),
    lock,
    log: log.child({ role: 'leader' }),
    config: { bind: config.bind, localBind: config.localBind, flapDamping: config.flapDamping, watchers: config.watchers, bootstrapToken: config.bootstrapToken, authOff: config.authOff, quotas: config.quotas, clusterKeys: config.clusterKeys }
  })
  const metrics = createLeaderMetrics(leader)
  const fatal = new Promise<Error>((resolve) => {
    leader.onFatal(resolve)
    void db.serverLost?.then(resolve)
  })
  await leader.start()
  const stop = async (): Promise<void> => { await leader.stop(); await db.close() }
  return Object.assign(stop, { leader, metrics, fatal })
}

export interface WorkerRoleConfig {
  /** `--allow-targets` (null: any). */
  allowTargets?: AllowedTargets | null
  /** `--cluster-keys`, loaded: the DEALER to the leader is a CURVE client. */
  clusterKeys?: ClusterKeys
}

/** `metrics`: the role's Prometheus registry (worker/metrics.ts). */
export async function startWorker (candidates: string[], log: Log, config: WorkerRoleConfig = {}): Promise<Stopper & { worker: Worker, metrics: Registry }> {
  const [{ createWorker }, { createWorkerMetrics }] = await Promise.all([import('./worker/worker.js'), import('./worker/metrics.js')])
  const worker = createWorker({ leaders: candidates, workerId: `worker-${randomUUID()}`, log: log.child({ role: 'worker' }), allowTargets: config.allowTargets ?? null, clusterKeys: config.clusterKeys })
  const metrics = createWorkerMetrics(worker)
  await worker.start()
  return Object.assign(() => worker.stop(), { worker, metrics })
}

export interface GatewayRoleConfig {
  port: number
  host: string
  candidates: string[]
  /** `roster up`: its leader's --bind. The gateway reaches that leader over ipc (`candidates`),
   *  but the bind's ports are still Roster's own, which no registration may target. */
  leaderBind?: string
  /** `--cluster-keys`, loaded: the DEALER and the feed SUB are CURVE clients. */
  clusterKeys?: ClusterKeys
  /** `--allow-targets` (null: any). */
  allowTargets?: AllowedTargets | null
  /** `--min-check-interval-ms` (default 1000, routes/services.ts). */
  minCheckIntervalMs?: number
  /** `--write-rate` (absent: off). */
  writeRatePerSecond?: number
  /** `--auth on`: bearer tokens required (server/gateway/auth.ts). Default off. */
  auth?: boolean
  /** PEM certificate and key: HTTPS and WSS instead of HTTP and WS. */
  tls?: { cert: string | Buffer, key: string | Buffer }
  /** `--max-connections` and the HTTP timeouts; defaults in gateway/http-limits.ts. */
  http?: Partial<HttpLimits>
  /** `--max-watchers` (gateway/watch-hub.ts). */
  maxWatchers?: number
  /** `--watch-buffer-bytes` (gateway/watch-hub.ts). */
  watchBufferBytes?: number
  /** What GET /metrics serves beside the gateway's own (gateway/metrics.ts). */
  metrics?: GatewayMetricsOptions
}

export async function startGateway (config: GatewayRoleConfig, log: Log): Promise<{ stop: Stopper, url: string, whenReady: () => Promise<void> }> {
  const [{ buildGateway }, { createReplica }, { createLeaderClient }, { createTokenTable }] = await Promise.all([
    import('./gateway/app.js'), import('./gateway/replica.js'), import('./gateway/leader-client.js'), import('./gateway/token-table.js')
  ])
  const replica = createReplica()
  const gatewayLog = log.child({ role: 'gateway' })
  let warnedNoAdmin = false
  const tokens = createTokenTable({
    onLoad: (table) => {
      if (config.auth !== true || table.hasAdmin || warnedNoAdmin) return
      warnedNoAdmin = true
      gatewayLog.warn('auth is on but no admin token exists, so every request is refused (401): start the leader with the ' +
        'environment variable ROSTER_BOOTSTRAP_TOKEN set to a secret of at least 32 characters, then use it to create tokens')
    }
  })
  const leader = createLeaderClient({ candidates: config.candidates, replica, tokens, log: gatewayLog, clusterKeys: config.clusterKeys })
  leader.start()
  const app = await buildGateway({ replica, leader, tokens }, {
    loggerInstance: gatewayLog,
    auth: config.auth === true,
    targets: { allow: config.allowTargets ?? null, leaderCandidates: config.leaderBind === undefined ? config.candidates : [config.leaderBind], ownHost: config.host },
    ...(config.minCheckIntervalMs === undefined ? {} : { minCheckIntervalMs: config.minCheckIntervalMs }),
    ...(config.writeRatePerSecond === undefined ? {} : { writeRatePerSecond: config.writeRatePerSecond }),
    tls: config.tls,
    http: config.http,
    metrics: config.metrics,
    watch: {
      ...(config.maxWatchers === undefined ? {} : { maxClients: config.maxWatchers }),
      ...(config.watchBufferBytes === undefined ? {} : { maxTotalBufferedBytes: config.watchBufferBytes })
    }
  })
  let url: string
  try {
    url = await app.listen({ port: config.port, host: config.host })
  } catch (err) {
    // A taken --port: what was started is stopped, so that the caller can end cleanly.
    await app.close()
    await leader.stop()
    throw err
  }
  // Reads are served once the replica holds its first snapshot from the leader.
  const whenReady = async (): Promise<void> => {
    while (!replica.ready) await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return { url, whenReady, stop: async () => { await app.close(); await leader.stop() } }
}
