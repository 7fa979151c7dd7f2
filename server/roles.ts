// Starts each role from an already validated configuration, with the same wiring whether the
// CLI runs it or an end-to-end test does. Each function returns the one way to stop what it
// started; nothing here reads the environment or installs signal handlers.
import { randomUUID } from 'node:crypto'
import type { Log } from './shared/log.js'
import type { ClusterKeys } from './protocol/cluster-keys.js'
import { openDb } from './store/db.js'
import { migrate } from './store/migrate.js'
import { createRegistryStore } from './store/registry-store.js'
import { createTokenStore } from './store/token-store.js'
import { createPgLeaderLock } from './store/leader-lock.js'
import { createLeader, type Leader } from './leader/leader.js'
import type { FlapDampingConfig } from './leader/flap-damping.js'
import type { QuotaLimits } from './leader/quota.js'
import type { AllowedTargets } from './protocol/targets.js'
import { createWorker } from './worker/worker.js'
import { buildGateway } from './gateway/app.js'
import type { HttpLimits } from './gateway/http-limits.js'
import { createReplica } from './gateway/replica.js'
import { createLeaderClient } from './gateway/leader-client.js'
import { createTokenTable } from './gateway/token-table.js'

export type Stopper = () => Promise<void>

export interface LeaderRoleConfig {
  /** Server Postgres; when absent, the embedded Postgres in `dataDir` (store/embedded-postgres.ts). */
  databaseUrl?: string
  dataDir: string
  bind: string
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

export async function startLeader (config: LeaderRoleConfig, log: Log): Promise<Stopper & { leader: Leader }> {
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
  // Embedded, the data-directory lock already makes this process the only possible leader; the
  // same advisory lock is taken anyway, so that there is one way to lead, and it is at once free.
  const lock = createPgLeaderLock({ databaseUrl: db.url, applicationName: `roster-leader-${process.pid}` })
  const leader = createLeader({
    store: createRegistryStore(db),
    tokens: createTokenStore(db),
    lock,
    log: log.child({ role: 'leader' }),
    config: { bind: config.bind, flapDamping: config.flapDamping, watchers: config.watchers, bootstrapToken: config.bootstrapToken, authOff: config.authOff, quotas: config.quotas, clusterKeys: config.clusterKeys }
  })
  await leader.start()
  const stop = async (): Promise<void> => { await leader.stop(); await db.close() }
  return Object.assign(stop, { leader })
}

export interface WorkerRoleConfig {
  /** `--allow-targets` (null: any). */
  allowTargets?: AllowedTargets | null
  /** `--cluster-keys`, loaded: the DEALER to the leader is a CURVE client. */
  clusterKeys?: ClusterKeys
}

export async function startWorker (candidates: string[], log: Log, config: WorkerRoleConfig = {}): Promise<Stopper> {
  const worker = createWorker({ leaders: candidates, workerId: `worker-${randomUUID()}`, log: log.child({ role: 'worker' }), allowTargets: config.allowTargets ?? null, clusterKeys: config.clusterKeys })
  await worker.start()
  return () => worker.stop()
}

export interface GatewayRoleConfig {
  port: number
  host: string
  candidates: string[]
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
}

export async function startGateway (config: GatewayRoleConfig, log: Log): Promise<{ stop: Stopper, url: string, whenReady: () => Promise<void> }> {
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
    targets: { allow: config.allowTargets ?? null, leaderCandidates: config.candidates, ownHost: config.host },
    ...(config.minCheckIntervalMs === undefined ? {} : { minCheckIntervalMs: config.minCheckIntervalMs }),
    ...(config.writeRatePerSecond === undefined ? {} : { writeRatePerSecond: config.writeRatePerSecond }),
    tls: config.tls,
    http: config.http,
    watch: {
      ...(config.maxWatchers === undefined ? {} : { maxClients: config.maxWatchers }),
      ...(config.watchBufferBytes === undefined ? {} : { maxTotalBufferedBytes: config.watchBufferBytes })
    }
  })
  const url = await app.listen({ port: config.port, host: config.host })
  // Reads are served once the replica holds its first snapshot from the leader.
  const whenReady = async (): Promise<void> => {
    while (!replica.ready) await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return { url, whenReady, stop: async () => { await app.close(); await leader.stop() } }
}
