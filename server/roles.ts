// Starts each role from an already validated configuration, with the same wiring whether the
// CLI runs it or an end-to-end test does. Each function returns the one way to stop what it
// started; nothing here reads the environment or installs signal handlers.
import { randomUUID } from 'node:crypto'
import type { Log } from './shared/log.js'
import type { ClusterKeys } from './protocol/cluster-keys.js'
import { openDb } from './store/db.js'
import { migrate } from './store/migrate.js'
import { createRegistryStore } from './store/registry-store.js'
import { createLocalLeaderLock, createPgLeaderLock } from './store/leader-lock.js'
import { createLeader, type Leader } from './leader/leader.js'
import type { FlapDampingConfig } from './leader/flap-damping.js'
import { createWorker } from './worker/worker.js'
import { buildGateway } from './gateway/app.js'
import { createReplica } from './gateway/replica.js'
import { createLeaderClient } from './gateway/leader-client.js'

export type Stopper = () => Promise<void>

export interface LeaderRoleConfig {
  /** Server Postgres; when absent, embedded Postgres (PGlite) in `dataDir`. */
  databaseUrl?: string
  dataDir: string
  bind: string
  flapDamping?: FlapDampingConfig
  /** Workers per provider (`--watchers`). */
  watchers?: number
  /** `--cluster-keys`, loaded: the ROUTER and PUB become CURVE servers. */
  clusterKeys?: ClusterKeys
}

export async function startLeader (config: LeaderRoleConfig, log: Log): Promise<Stopper & { leader: Leader }> {
  const { databaseUrl } = config
  const db = await openDb(databaseUrl !== undefined ? { databaseUrl } : { dataDir: config.dataDir })
  try {
    const applied = await migrate(db)
    if (applied.length > 0) log.info({ applied }, 'migrated the database')
  } catch (err) {
    await db.close()
    throw err
  }
  // With PGlite the data-directory lock already makes this process the only possible leader.
  const lock = databaseUrl !== undefined
    ? createPgLeaderLock({ databaseUrl, applicationName: `roster-leader-${process.pid}` })
    : createLocalLeaderLock()
  const leader = createLeader({ store: createRegistryStore(db), lock, log: log.child({ role: 'leader' }), config: { bind: config.bind, flapDamping: config.flapDamping, watchers: config.watchers, clusterKeys: config.clusterKeys } })
  await leader.start()
  const stop = async (): Promise<void> => { await leader.stop(); await db.close() }
  return Object.assign(stop, { leader })
}

export async function startWorker (candidates: string[], log: Log, opts: { clusterKeys?: ClusterKeys } = {}): Promise<Stopper> {
  const worker = createWorker({ leaders: candidates, workerId: `worker-${randomUUID()}`, log: log.child({ role: 'worker' }), clusterKeys: opts.clusterKeys })
  await worker.start()
  return () => worker.stop()
}

export interface GatewayRoleConfig { port: number, host: string, candidates: string[], clusterKeys?: ClusterKeys }

export async function startGateway (config: GatewayRoleConfig, log: Log): Promise<{ stop: Stopper, url: string, whenReady: () => Promise<void> }> {
  const replica = createReplica()
  const leader = createLeaderClient({ candidates: config.candidates, replica, log: log.child({ role: 'gateway' }), clusterKeys: config.clusterKeys })
  leader.start()
  const app = await buildGateway({ replica, leader }, { loggerInstance: log.child({ role: 'gateway' }) })
  const url = await app.listen({ port: config.port, host: config.host })
  // Reads are served once the replica holds its first snapshot from the leader.
  const whenReady = async (): Promise<void> => {
    while (!replica.ready) await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return { url, whenReady, stop: async () => { await app.close(); await leader.stop() } }
}
