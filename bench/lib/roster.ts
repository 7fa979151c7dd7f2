// Roster under test, started the way a user would: its storage (a fresh server-Postgres database
// when a URL is set, else PGlite in a temp directory) and its roles as real `roster` processes,
// either `leader`, `worker`, `gateway` apart or everything in one `roster up`. All of it is
// registered with the benchmark's Scope, so it is stopped (SIGTERM, then SIGKILL) and the
// database dropped whatever happens. It starts nothing else.
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { freeLeaderEndpoint, freePort, spawnRoster, waitForLeader, waitForReady, type RosterProcess } from '../../test/helpers/cluster.js'
import { adminQuery, databaseUrl, quoteIdent } from '../../test/helpers/postgres-admin.js'
import { stopProcess, track, type Scope } from './processes.js'

/** The roles, one process each; or one `roster up` process with all three. */
export type RosterRoles = ReadonlyArray<'leader' | 'worker' | 'gateway'> | 'up'

export interface RosterRun {
  /** The gateway's HTTP base URL. */
  url: string
  /** The leader's ROUTER endpoint (`--bind`); its event PUB is on port + 1. */
  bind: string
  /** Human-readable: which storage the leader uses. */
  storage: string
  /** The leader's fresh server-Postgres database, or null on PGlite. */
  databaseUrl: string | null
  /** Role (or `up`) → its process. */
  processes: ReadonlyMap<string, RosterProcess>
  pid: (role: string) => number
  /** Every role's output, for an error message. */
  output: () => string
}

const SETUP_TIMEOUT_MS = 30_000

/** The storage flags for the leader: a fresh database (dropped by the scope) or `tmp`/data. */
async function storageFlags (scope: Scope, tmp: string): Promise<{ flags: string[], storage: string, databaseUrl: string | null }> {
  const env = process.env
  const serverUrl = [env.ROSTER_BENCH_DATABASE_URL, env.DATABASE_URL, env.ROSTER_DATABASE_URL].find((u) => u !== undefined && u !== '')
  if (serverUrl === undefined) return { flags: ['--data-dir', join(tmp, 'data')], storage: 'PGlite (embedded, temp data dir)', databaseUrl: null }
  const name = `roster_bench_${process.pid}_${randomBytes(3).toString('hex')}`
  await adminQuery(serverUrl, `create database ${quoteIdent(name)}`)
  scope.defer(`drop database ${name}`, async () => { await adminQuery(serverUrl, `drop database if exists ${quoteIdent(name)} with (force)`) })
  const url = databaseUrl(serverUrl, name)
  return { flags: ['--database-url', url], storage: `server Postgres (fresh database ${name} on ${new URL(serverUrl).host})`, databaseUrl: url }
}

/**
 * Starts Roster and resolves once its gateway has a leader and answers reads. `tmp` is the
 * benchmark's temp directory (PGlite's data goes under it). `leaderArgs` go to the leader (or
 * `roster up`), e.g. flap-damping flags.
 */
export async function startRoster (scope: Scope, tmp: string, roles: RosterRoles, leaderArgs: string[] = []): Promise<RosterRun> {
  const { flags: dbFlags, storage, databaseUrl: dbUrl } = await storageFlags(scope, tmp)
  const bind = await freeLeaderEndpoint()
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  // The flags below say everything; no inherited variable may point a role elsewhere.
  const childEnv = { DATABASE_URL: '', ROSTER_DATABASE_URL: '', ROSTER_DATA_DIR: '', ROSTER_BIND: '', ROSTER_LEADER: '', ROSTER_PORT: '', PORT: '', ROSTER_HOST: '', HOST: '' }
  const gatewayArgs = ['--port', String(port), '--host', '127.0.0.1']
  const commands: Array<[string, string[]]> = roles === 'up'
    ? [['up', ['up', '--bind', bind, ...dbFlags, ...gatewayArgs, ...leaderArgs]]]
    : roles.map((role) => [role, role === 'leader'
      ? ['leader', '--bind', bind, ...dbFlags, ...leaderArgs]
      : role === 'worker' ? ['worker', '--leader', bind] : ['gateway', '--leader', bind, ...gatewayArgs]])
  const processes = new Map<string, RosterProcess>()
  scope.defer('stop Roster', async () => {
    // SIGTERM: the graceful path (the leader closes its database); SIGKILL after 3 s.
    for (const r of [...processes.values()].reverse()) await stopProcess(r.child, 'SIGTERM', 3000)
  })
  for (const [role, args] of commands) {
    const r = spawnRoster(args, childEnv)
    track(r.child)
    processes.set(role, r)
  }
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
    output
  }
}
