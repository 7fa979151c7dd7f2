// Runs Roster for end-to-end tests: in this process with the production wiring (server/roles.ts),
// or as real `roster` child processes that a test can SIGKILL. Also a WebSocket feed reader that
// records every message, so tests assert on what a user of the feed sees.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import WebSocket from 'ws'
import { silentLog } from '../../server/common/log.js'
import {
  startGateway, startLeader, startWorker, type GatewayRoleConfig, type LeaderRoleConfig, type Stopper, type WorkerRoleConfig
} from '../../server/roles.js'
import { freshDatabaseUrl } from './postgres.js'
import { freeLeaderEndpoint, freePort } from './ports.js'
import { waitFor } from './wait-for.js'

// Moved to ports.ts (importable outside vitest); still exported here for the existing tests.
export { freeLeaderBind, freeLeaderEndpoint, freePort, portOf } from './ports.js'

const ROSTER_BIN = fileURLToPath(new URL('../../bin/roster.js', import.meta.url))

export interface Storage { databaseUrl?: string, dataDir: string }

/** The `roster leader|up` flags that point at this storage. */
export function storageFlags (s: Storage): string[] {
  return s.databaseUrl === undefined ? ['--data-dir', s.dataDir] : ['--database-url', s.databaseUrl]
}

const storageDirs: string[] = []

/** A fresh registry for one system under test: a new server-Postgres database when
 *  ROSTER_TEST_DATABASE_URL is set, and always a new data directory (the embedded database's
 *  otherwise). removeTestStorage() deletes the directories in the file's afterAll. */
export async function testStorage (prefix = 'roster-e2e-'): Promise<Storage> {
  const dataDir = await mkdtemp(join(tmpdir(), prefix))
  storageDirs.push(dataDir)
  const databaseUrl = process.env.ROSTER_TEST_DATABASE_URL === undefined ? undefined : await freshDatabaseUrl()
  return { databaseUrl, dataDir }
}

export async function removeTestStorage (): Promise<void> {
  for (const d of storageDirs.splice(0)) await rm(d, { recursive: true, force: true })
}

export interface InProcessRoster { url: string, bind: string, stop: Stopper }

/** The shortest check interval the test gateways accept: the schema's floor, so that tests see
 *  checks act within milliseconds. Production gateways default to 1000 ms. */
export const TEST_MIN_CHECK_INTERVAL_MS = 50

/** What a test may set on the roles startInProcess starts. */
export interface InProcessOptions {
  leader?: Partial<Omit<LeaderRoleConfig, 'bind' | 'databaseUrl' | 'dataDir'>>
  worker?: WorkerRoleConfig
  gateway?: Partial<Omit<GatewayRoleConfig, 'candidates'>>
}

/** All three roles in this process, as `roster up` wires them. */
export async function startInProcess (storage: Storage, bind?: string, opts: InProcessOptions = {}): Promise<InProcessRoster> {
  const endpoint = bind ?? await freeLeaderEndpoint()
  const stoppers: Stopper[] = []
  stoppers.push(await startLeader({ ...storage, ...opts.leader, bind: endpoint }, silentLog))
  stoppers.push(await startWorker([endpoint], silentLog, opts.worker))
  const gateway = await startGateway({ port: 0, host: '127.0.0.1', minCheckIntervalMs: TEST_MIN_CHECK_INTERVAL_MS, ...opts.gateway, candidates: [endpoint] }, silentLog)
  stoppers.push(gateway.stop)
  await waitForLeader(gateway.url)
  await waitForReady(gateway.url)
  return {
    url: gateway.url,
    bind: endpoint,
    stop: async () => { for (const s of stoppers.reverse()) await s() }
  }
}

export async function waitForLeader (url: string, timeoutMs = 15_000): Promise<void> {
  await waitFor(async () => {
    const res = await fetch(`${url}/v1/health`).catch(() => null)
    if (res === null || !res.ok) return false
    const body = await res.json() as { leader: string }
    return body.leader === 'connected'
  }, { timeoutMs, message: `gateway ${url} never reported a connected leader` })
}

/**
 * Waits until the gateway at `url` answers reads (GET /v1/services is 200): its replica holds a
 * snapshot. A gateway reports `leader: connected` a moment before that, and reads or a
 * `/v1/watch` upgrade in that moment get 503 ROSTER_ERR_NOT_READY.
 */
export async function waitForReady (url: string, timeoutMs = 15_000): Promise<void> {
  await waitFor(async () => {
    const res = await fetch(`${url}/v1/services`).catch(() => null)
    if (res === null) return false
    await res.arrayBuffer()
    return res.ok
  }, { timeoutMs, message: `gateway ${url} never answered GET /v1/services with 200` })
}

export interface RosterProcess {
  child: ChildProcess
  output: () => string
  kill: (signal?: NodeJS.Signals) => Promise<void>
}

const running = new Set<ChildProcess>()

/** Starts `roster <args>` as a child process; its output is kept for failure messages. */
export function spawnRoster (args: string[], env: NodeJS.ProcessEnv = {}): RosterProcess {
  const child = spawn(process.execPath, [ROSTER_BIN, ...args, '--log-level', 'warn'], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  running.add(child)
  let output = ''
  child.stdout?.on('data', (d: Buffer) => { output += d.toString() })
  child.stderr?.on('data', (d: Buffer) => { output += d.toString() })
  const exited = new Promise<void>((resolve) => child.once('exit', () => { running.delete(child); resolve() }))
  return {
    child,
    output: () => output,
    kill: async (signal = 'SIGKILL') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      await exited
    }
  }
}

export interface GatewayProcess { proc: RosterProcess, url: string }

/**
 * A `roster gateway` process following `candidates` on a free port, once it serves reads; on
 * another port if the chosen one was taken before the gateway could bind it (freePort).
 */
export async function spawnGateway (candidates: string[], timeoutMs = 60_000, extraArgs: string[] = []): Promise<GatewayProcess> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort()
    const args = ['gateway', '--leader', candidates.join(','), '--port', String(port), '--min-check-interval-ms', String(TEST_MIN_CHECK_INTERVAL_MS), ...extraArgs]
    const g = { proc: spawnRoster(args), url: `http://127.0.0.1:${port}` }
    await waitFor(async () => g.proc.child.exitCode !== null || (await fetch(`${g.url}/v1/health`).catch(() => null))?.ok === true, {
      timeoutMs, what: `gateway ${g.url} to listen`
    }).catch((err: Error) => { throw new Error(`${err.message}\ngateway: ${g.proc.output()}`) })
    if (g.proc.child.exitCode !== null) {
      if (g.proc.output().includes('EADDRINUSE') && attempt < 5) continue
      throw new Error(`gateway ${g.url} exited: ${g.proc.output()}`)
    }
    try {
      await waitForLeader(g.url, timeoutMs)
      await waitForReady(g.url, timeoutMs)
    } catch (err) {
      throw new Error(`${(err as Error).message}\ngateway: ${g.proc.output()}`)
    }
    return g
  }
}

export interface RosterCommand extends RosterProcess {
  readonly pid: number
  stdout: () => string
  stderr: () => string
  /** Resolves when the process has exited and its output is complete. */
  readonly exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
}

/**
 * Runs `roster <args>` exactly as given (no `--log-level` added), with stdout and stderr kept
 * apart: for tests of the command line itself. Tracked like spawnRoster: killAllRoster kills it.
 */
/** Every environment twin of a flag (and ROSTER_BOOTSTRAP_TOKEN) unset, so that only what a test
 *  passes counts: a `roster` child otherwise inherits whatever the developer's shell exports. */
export const CLEAN_ENV: NodeJS.ProcessEnv = Object.fromEntries(
  [...Object.keys(process.env).filter((k) => k.startsWith('ROSTER_')), 'PORT', 'HOST', 'DATABASE_URL'].map((k) => [k, undefined])
)

/** Node + tsx start in about a second; a loaded 2-core machine can take many times that. */
const EXIT_TIMEOUT_MS = 60_000

/** Runs a `roster` command that is expected to exit by itself, in CLEAN_ENV plus `env`. */
export async function runToExit (args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null, stdout: string, stderr: string }> {
  const cmd = runRoster(args, { ...CLEAN_ENV, ...env })
  const timer = setTimeout(() => { void cmd.kill('SIGKILL') }, EXIT_TIMEOUT_MS)
  const { code } = await cmd.exited
  clearTimeout(timer)
  return { code, stdout: cmd.stdout(), stderr: cmd.stderr() }
}

export function runRoster (args: string[], env: NodeJS.ProcessEnv = {}): RosterCommand {
  const child = spawn(process.execPath, [ROSTER_BIN, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  running.add(child)
  let stdout = ''
  let stderr = ''
  child.stdout?.on('data', (d: Buffer) => { stdout += d.toString() })
  child.stderr?.on('data', (d: Buffer) => { stderr += d.toString() })
  child.once('exit', () => { running.delete(child) })
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (code, signal) => resolve({ code, signal }))
  })
  return {
    child,
    pid: child.pid as number,
    stdout: () => stdout,
    stderr: () => stderr,
    output: () => stdout + stderr,
    exited,
    kill: async (signal = 'SIGKILL') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      await exited
    }
  }
}

/** Kills every child process spawnRoster started that is still running. */
export async function killAllRoster (): Promise<void> {
  await Promise.all([...running].map(async (child) => {
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGKILL')
    await exited
  }))
}

export interface FeedMessage {
  type: 'snapshot' | 'event'
  revision: number
  event?: string
  reset?: boolean
  providers?: Array<{ id: string, state: string }>
  provider?: { id: string, state: string, lastSeen: string | null, reason?: string, detectedAfterMs?: number }
}

export interface FeedReader {
  messages: FeedMessage[]
  closed: { code: number, reason: string } | null
  /** Resolves with the first message (at or after index `from`) that matches. */
  next: (match: (m: FeedMessage) => boolean, opts?: { from?: number, timeoutMs?: number }) => Promise<FeedMessage>
  close: () => void
}

/** Opens `/v1/watch` with a real WebSocket client; the listener is attached before `open`. */
export async function readFeed (url: string, query = ''): Promise<FeedReader> {
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/watch${query}`)
  const reader: FeedReader = {
    messages: [],
    closed: null,
    async next (match, opts = {}) {
      let found: FeedMessage | undefined
      await waitFor(() => {
        found = reader.messages.slice(opts.from ?? 0).find(match)
        return found !== undefined
      }, { timeoutMs: opts.timeoutMs ?? 10_000, message: `no matching feed message; got ${JSON.stringify(reader.messages.slice(-5))}` })
      return found as FeedMessage
    },
    close: () => ws.terminate()
  }
  ws.on('message', (data) => reader.messages.push(JSON.parse(data.toString()) as FeedMessage))
  ws.on('close', (code, reason) => { reader.closed = { code, reason: reason.toString() } })
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('error', reject)
  })
  return reader
}

/** A fetch wrapper that returns status and parsed JSON body. */
export async function http (method: string, url: string, body?: unknown): Promise<{ status: number, body: any, headers: Headers }> {
  const res = await fetch(url, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  const text = await res.text()
  return { status: res.status, headers: res.headers, body: text === '' ? undefined : JSON.parse(text) }
}
