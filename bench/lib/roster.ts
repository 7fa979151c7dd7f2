// Roster under test, started the way a user would: its storage (a fresh server-Postgres database
// when a URL is set, else Roster's embedded default database in a temp directory) and its roles as real `roster` processes,
// either `leader`, `worker`, `gateway` apart or everything in one `roster up`. All of it is
// registered with the benchmark's Scope, so it is stopped (SIGTERM, then SIGKILL) and the
// database dropped whatever happens. It starts nothing else.
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { writeClusterKeys, type ClusterKeys } from '../../server/protocol/cluster-keys.js'
import { spawnRoster, waitForLeader, waitForReady, type RosterProcess } from '../../harness/roster-process.js'
import { benchLeaderEndpoint, benchPort } from './ports.js'
import { adminQuery, databaseUrl, quoteIdent } from '../../harness/postgres-admin.js'
import { descendants, startTime } from './proc-stat.js'
import { sleep, stopProcess, track, type Scope } from './processes.js'

/** The roles, one process each; or one `roster up` process with all three. */
export type RosterRoles = ReadonlyArray<'leader' | 'worker' | 'gateway'> | 'up'

export interface RosterRun {
  /** The gateway's HTTP base URL. */
  url: string
  /** The leader's ROUTER endpoint (`--bind`); its event PUB is on port + 1. */
  bind: string
  /** Human-readable: which storage the leader uses. */
  storage: string
  /** The leader's fresh server-Postgres database, or null on the embedded default. */
  databaseUrl: string | null
  /** Role (or `up`) → its process. */
  processes: ReadonlyMap<string, RosterProcess>
  pid: (role: string) => number
  /** Every role's output, for an error message. */
  output: () => string
  /** With `clusterKeys`: the keys every role was given (`--cluster-keys`), for a harness socket
   *  on the leader's ports (lib/event-tap.ts). */
  clusterKeys: ClusterKeys | undefined
  /** The leader's storage flags, to start another Roster on the same registry after stop(). */
  storageFlags: readonly string[]
  /** Starts one more role process following this leader (e.g. a worker after a setup). */
  spawnRole: (role: 'worker' | 'gateway') => RosterProcess
  /** Stops every role and what it started (see stopRole); the storage stays until the scope closes. */
  stop: () => Promise<void>
}

/** `ROSTER_BENCH_PROFILE=worker,gateway` runs those roles under `node --cpu-prof`; their profiles
 *  land in $TMPDIR/roster-bench-profiles/ (CPU.<date>.<pid>.….cpuprofile, for Chrome DevTools)
 *  when they stop. */
const PROFILE_DIR = join(tmpdir(), 'roster-bench-profiles')
const ROSTER_BIN = fileURLToPath(new URL('../../bin/roster.js', import.meta.url))

/** How long a role gets to stop after SIGTERM: `roster up` stops its embedded database too,
 *  which on a loaded machine takes seconds. */
const STOP_GRACE_MS = 10_000

/**
 * Stops a role (SIGTERM, SIGKILL after STOP_GRACE_MS) and then whatever it had started (an
 * embedded database's postmaster and backends) that outlived it: a role killed before it could
 * stop its children leaves them running, orphaned, and nothing else in the benchmark would stop
 * them. Each is named by pid and start time, so a reused pid is never signalled.
 */
async function stopRole (r: RosterProcess): Promise<void> {
  const pid = r.child.pid
  const under = pid === undefined || r.child.exitCode !== null || r.child.signalCode !== null
    ? []
    : await Promise.all((await descendants(pid)).map(async (p) => ({ pid: p, since: await startTime(p) })))
  await stopProcess(r.child, 'SIGTERM', STOP_GRACE_MS)
  const alive = async (p: { pid: number, since: number | null }): Promise<boolean> => p.since !== null && await startTime(p.pid) === p.since
  const deadline = performance.now() + STOP_GRACE_MS
  let left = under
  while (left.length > 0) {
    left = (await Promise.all(left.map(async (p) => (await alive(p) ? p : null)))).filter((p) => p !== null)
    if (left.length === 0) return
    if (performance.now() > deadline) {
      for (const p of left) { try { process.kill(p.pid, 'SIGKILL') } catch { /* gone meanwhile */ } }
    }
    await sleep(100)
  }
}

function spawnProfiled (args: string[], env: NodeJS.ProcessEnv): RosterProcess {
  mkdirSync(PROFILE_DIR, { recursive: true })
  const child = spawn(process.execPath, ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`, ROSTER_BIN, ...args, '--log-level', 'warn'], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let output = ''
  child.stdout.on('data', (d: Buffer) => { output += d.toString() })
  child.stderr.on('data', (d: Buffer) => { output += d.toString() })
  return { child, output: () => output, kill: async (signal = 'SIGKILL') => { await stopProcess(child, signal) } }
}

/** Three `roster` starts (tsx) and an embedded database's boot take seconds; on the shared two-core machine
 *  under a load of 20 they took up to 40 s. */
const SETUP_TIMEOUT_MS = 90_000

/** Where the leader keeps the registry: its flags, a label for the tables, and the database's URL
 *  when it is server Postgres (null for the embedded default). */
export interface Storage { flags: string[], storage: string, databaseUrl: string | null }

/** The server Postgres the benchmarks may use, if one is configured. */
export function serverPostgresUrl (): string | undefined {
  const env = process.env
  return [env.ROSTER_BENCH_DATABASE_URL, env.DATABASE_URL, env.ROSTER_DATABASE_URL].find((u) => u !== undefined && u !== '')
}

/** Roster's embedded default (what `roster up` uses without --database-url, whichever engine
 *  that is), its data in `tmp`/`name`. */
export function embeddedStorage (tmp: string, name = 'data'): Storage {
  return { flags: ['--data-dir', join(tmp, name)], storage: 'embedded default database (temp --data-dir)', databaseUrl: null }
}

/** A fresh database on `serverUrl`, dropped by the scope. */
export async function freshDatabase (scope: Scope, serverUrl: string): Promise<Storage> {
  const name = `roster_bench_${process.pid}_${randomBytes(3).toString('hex')}`
  await adminQuery(serverUrl, `create database ${quoteIdent(name)}`)
  scope.defer(`drop database ${name}`, async () => { await adminQuery(serverUrl, `drop database if exists ${quoteIdent(name)} with (force)`) })
  const url = databaseUrl(serverUrl, name)
  return { flags: ['--database-url', url], storage: `server Postgres (fresh database ${name} on ${new URL(serverUrl).host})`, databaseUrl: url }
}

/** The configured server Postgres (a fresh database) if there is one, else the embedded default. */
async function defaultStorage (scope: Scope, tmp: string): Promise<Storage> {
  const serverUrl = serverPostgresUrl()
  return serverUrl === undefined ? embeddedStorage(tmp) : await freshDatabase(scope, serverUrl)
}

/**
 * Starts Roster and resolves once its gateway has a leader and answers reads. `tmp` is the
 * benchmark's temp directory (the embedded database's data goes under it). `leaderArgs` go to
 * the leader (or `roster up`), e.g. flap-damping flags. `reuse`: the registry of an earlier run,
 * stopped. `opts.storage`: where the registry goes (default: server Postgres if configured, else
 * the embedded default).
 */
export async function startRoster (scope: Scope, tmp: string, roles: RosterRoles, leaderArgs: string[] = [], reuse?: RosterRun, opts: { clusterKeys?: boolean, storage?: Storage } = {}): Promise<RosterRun> {
  const { flags: dbFlags, storage, databaseUrl: dbUrl } = reuse !== undefined
    ? { flags: [...reuse.storageFlags], storage: reuse.storage, databaseUrl: reuse.databaseUrl }
    : opts.storage ?? await defaultStorage(scope, tmp)
  const bind = await benchLeaderEndpoint()
  const port = await benchPort()
  const url = `http://127.0.0.1:${port}`
  // The flags below say everything; no inherited variable may point a role elsewhere.
  // `clusterKeys`: every role, later ones included, gets the same key file (CurveZMQ).
  const keyFile = join(tmp, 'cluster.keys')
  const clusterKeys = opts.clusterKeys === true ? writeClusterKeys(keyFile, { force: true }) : undefined
  const childEnv = {
    DATABASE_URL: '', ROSTER_DATABASE_URL: '', ROSTER_DATA_DIR: '', ROSTER_BIND: '', ROSTER_LEADER: '', ROSTER_PORT: '', PORT: '', ROSTER_HOST: '', HOST: '',
    ROSTER_CLUSTER_KEYS: clusterKeys === undefined ? '' : keyFile
  }
  const gatewayArgs = ['--port', String(port), '--host', '127.0.0.1']
  const commands: Array<[string, string[]]> = roles === 'up'
    ? [['up', ['up', '--bind', bind, ...dbFlags, ...gatewayArgs, ...leaderArgs]]]
    : roles.map((role) => [role, role === 'leader'
      ? ['leader', '--bind', bind, ...dbFlags, ...leaderArgs]
      : role === 'worker' ? ['worker', '--leader', bind] : ['gateway', '--leader', bind, ...gatewayArgs]])
  const processes = new Map<string, RosterProcess>()
  scope.defer('stop Roster', async () => {
    // SIGTERM: the graceful path (the leader closes its database); see stopRole.
    for (const r of [...processes.values()].reverse()) await stopRole(r)
  })
  const spawnRole = (role: string, args: string[]): RosterProcess => {
    const profiled = (process.env.ROSTER_BENCH_PROFILE ?? '').split(',').includes(role)
    const r = profiled ? spawnProfiled(args, childEnv) : spawnRoster(args, childEnv)
    track(r.child)
    processes.set(role, r)
    return r
  }
  for (const [role, args] of commands) spawnRole(role, args)
  const output = (): string => [...processes].map(([role, r]) => `--- ${role} (pid ${String(r.child.pid)}):\n${r.output().trim() || '(no output)'}`).join('\n')
  if (processes.has('gateway') || processes.has('up')) {
    try {
      await waitForLeader(url, SETUP_TIMEOUT_MS)
      await waitForReady(url, SETUP_TIMEOUT_MS)
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${output()}`)
    }
  }
  return {
    url,
    bind,
    storage,
    databaseUrl: dbUrl,
    processes,
    pid: (role) => {
      const pid = processes.get(role)?.child.pid
      if (pid === undefined) throw new Error(`no Roster ${role} process in this run`)
      return pid
    },
    output,
    storageFlags: dbFlags,
    clusterKeys,
    spawnRole: (role) => spawnRole(role, role === 'worker' ? ['worker', '--leader', bind] : ['gateway', '--leader', bind, ...gatewayArgs]),
    stop: async () => {
      for (const r of [...processes.values()].reverse()) await stopRole(r)
    }
  }
}
