// The chaos run's Roster processes: 2 leaders, 3 workers and 2 gateways by default, each a
// separate `node bin/roster.js <role>` that the run can SIGKILL, SIGSTOP/SIGCONT and restart.
// It owns those processes (tracked by bench/lib/processes.ts, so a closing Scope kills them),
// appends each one's stdout and stderr to <logDir>/<name>.log across restarts, and says
// when the cluster is whole again. It never touches a process it did not start.
import { spawn, type ChildProcess } from 'node:child_process'
import { createWriteStream, type WriteStream } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { exited, isRunning, track } from '../bench/lib/processes.js'

const ROSTER_BIN = fileURLToPath(new URL('../bin/roster.js', import.meta.url))

export type Role = 'leader' | 'worker' | 'gateway'
export type MemberState = 'running' | 'stopped' | 'killed'

export interface Member {
  readonly name: string
  readonly role: Role
  state: MemberState
  /** Starts so far (1 after the first start). */
  starts: number
  child: ChildProcess | null
  /** This incarnation said it is ready (see READY_MESSAGES). */
  ready: boolean
  /** Gateways: the URL this incarnation listens on (a restart gets a new port). */
  url: string | null
}

/**
 * The log line (pino's `msg`) by which an incarnation says it is ready: a leader once it
 * migrated and campaigns, a worker once an active leader answered it (its link logs 'following
 * leader' and READY goes out right after), a gateway once it listens (it is then polled for a
 * readable replica too).
 */
const READY_MESSAGES: Record<Role, (msg: string) => boolean> = {
  leader: (m) => m.startsWith('leader started'),
  worker: (m) => m === 'following leader',
  gateway: (m) => m.startsWith('Server listening at ')
}

export interface ClusterOptions {
  databaseUrl: string
  logDir: string
  leaders: number
  workers: number
  gateways: number
  /** Leader --bind endpoints, one per leader (their PUB is on PORT+1). */
  binds: string[]
  /** Extra flags for every leader. */
  leaderFlags?: string[]
}

export interface Cluster {
  readonly members: readonly Member[]
  /** Starts every member (resolves once all are spawned; see whole() for readiness). */
  start: () => Promise<void>
  /** The URLs of the gateways' current incarnations (a dead one's last URL stays listed: a
   *  client does not know it is dead). */
  gatewayUrls: () => string[]
  signal: (m: Member, signal: 'SIGKILL' | 'SIGSTOP' | 'SIGCONT') => Promise<void>
  restart: (m: Member) => void
  /** Pid of the leader holding the leader lock, from pg_locks; null if none does. */
  activeLeaderPid: () => Promise<number | null>
  /** Whether every member runs, said it is ready, every gateway serves reads with a connected
   *  leader, and a leader holds the lock; a reason when not. */
  whole: () => Promise<{ ok: true } | { ok: false, reason: string }>
  /** Every member's log file. */
  logFile: (m: Member) => string
  close: () => Promise<void>
}

export function createCluster (opts: ClusterOptions): Cluster {
  const members: Member[] = []
  const logs = new Map<string, WriteStream>()
  const add = (role: Role, n: number): void => {
    for (let i = 0; i < n; i++) members.push({ name: `${role}-${i}`, role, state: 'killed', starts: 0, child: null, ready: false, url: null })
  }
  add('leader', opts.leaders)
  add('worker', opts.workers)
  add('gateway', opts.gateways)
  if (opts.binds.length !== opts.leaders) throw new Error(`need ${opts.leaders} leader binds, got ${opts.binds.length}`)
  const candidates = opts.binds.join(',')
  // One session for the lock probe (the leaders' lock sessions are what it looks at), opened
  // again after an error: a dropped session must cost one probe, not the run.
  let session: Promise<pg.Client> | null = null
  const probe = async (): Promise<pg.Client> => {
    session ??= (async () => {
      const client = new pg.Client({ connectionString: opts.databaseUrl, application_name: 'roster-chaos' })
      client.on('error', () => { session = null })
      await client.connect().catch((err: unknown) => { session = null; throw err })
      return client
    })()
    return await session
  }

  const logFile = (m: Member): string => join(opts.logDir, `${m.name}.log`)

  function args (m: Member): string[] {
    const index = Number(m.name.split('-')[1])
    if (m.role === 'leader') return ['leader', '--bind', opts.binds[index] as string, '--database-url', opts.databaseUrl, ...(opts.leaderFlags ?? [])]
    if (m.role === 'worker') return ['worker', '--leader', candidates]
    // Port 0: a restarted gateway cannot lose its old port to another process, and its clients
    // find it by its new URL (as clients behind a load balancer would).
    return ['gateway', '--leader', candidates, '--port', '0']
  }

  function spawnMember (m: Member): void {
    let log = logs.get(m.name)
    if (log === undefined) { log = createWriteStream(logFile(m), { flags: 'a' }); logs.set(m.name, log) }
    m.starts++
    m.ready = false
    const child = track(spawn(process.execPath, [ROSTER_BIN, ...args(m), '--log-level', 'info'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ROSTER_LOG_LEVEL: 'info' }
    }))
    m.child = child
    m.state = 'running'
    const out = log
    out.write(`=== ${new Date().toISOString()} start #${m.starts} pid ${String(child.pid)}: roster ${args(m).join(' ')}\n`)
    child.stderr?.on('data', (d: Buffer) => out.write(d))
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      out.write(line + '\n')
      if (m.child !== child || m.ready) return
      let msg: string | undefined
      try { msg = (JSON.parse(line) as { msg?: string }).msg } catch { return }
      if (msg === undefined || !READY_MESSAGES[m.role](msg)) return
      if (m.role === 'gateway') m.url = msg.slice('Server listening at '.length).trim()
      m.ready = true
    })
    child.once('exit', (code, signal) => {
      out.write(`=== ${new Date().toISOString()} pid ${String(child.pid)} exited (${signal ?? code})\n`)
      if (m.child === child) m.state = 'killed'
    })
  }

  async function gatewayServes (url: string): Promise<string | null> {
    try {
      const health = await fetch(`${url}/v1/health`, { signal: AbortSignal.timeout(1000) })
      const body = await health.json() as { leader?: string }
      if (body.leader !== 'connected') return `gateway ${url} reports leader ${String(body.leader)}`
      const read = await fetch(`${url}/v1/services`, { signal: AbortSignal.timeout(1000) })
      await read.arrayBuffer()
      return read.ok ? null : `gateway ${url} answers reads with ${read.status}`
    } catch (err) {
      return `gateway ${url}: ${(err as Error).message}`
    }
  }

  const cluster: Cluster = {
    members,
    async start () {
      for (const m of members) spawnMember(m)
    },
    gatewayUrls: () => members.filter((m) => m.role === 'gateway' && m.url !== null).map((m) => m.url as string),
    async signal (m, signal) {
      const child = m.child
      if (child === null || !isRunning(child)) return
      child.kill(signal)
      if (signal === 'SIGKILL') {
        await exited(child)
        m.state = 'killed'
      } else {
        m.state = signal === 'SIGSTOP' ? 'stopped' : 'running'
      }
    },
    restart (m) {
      if (m.child !== null && isRunning(m.child)) throw new Error(`${m.name} is still running`)
      spawnMember(m)
    },
    async activeLeaderPid () {
      const db = await probe()
      // Advisory locks are per database; only this run's leaders lock in this one.
      const { rows } = await db.query<{ application_name: string }>(`
        select a.application_name
          from pg_locks l join pg_stat_activity a on a.pid = l.pid
         where l.locktype = 'advisory' and l.granted
           and l.database = (select oid from pg_database where datname = current_database())`)
      const m = rows.map((r) => /^roster-leader-(\d+)$/.exec(r.application_name)).find((x) => x !== null)
      return m === undefined || m === null ? null : Number(m[1])
    },
    async whole () {
      for (const m of members) {
        if (m.state !== 'running') return { ok: false, reason: `${m.name} is ${m.state}` }
        if (!m.ready) return { ok: false, reason: `${m.name} (start #${m.starts}) has not said it is ready` }
      }
      for (const m of members.filter((x) => x.role === 'gateway')) {
        const problem = await gatewayServes(m.url as string)
        if (problem !== null) return { ok: false, reason: problem }
      }
      const pid = await cluster.activeLeaderPid().catch(() => null)
      const leaders = members.filter((m) => m.role === 'leader').map((m) => m.child?.pid)
      if (pid === null || !leaders.includes(pid)) return { ok: false, reason: 'no leader holds the lock' }
      return { ok: true }
    },
    logFile,
    async close () {
      for (const m of members) {
        if (m.child !== null && isRunning(m.child)) {
          m.child.kill('SIGKILL')
          await exited(m.child)
        }
      }
      if (session !== null) await (await session.catch(() => null))?.end().catch(() => {})
      await Promise.all([...logs.values()].map(async (s) => { await new Promise<void>((resolve) => s.end(resolve)) }))
    }
  }
  return cluster
}
