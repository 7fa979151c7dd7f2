// Runs Roster for end-to-end tests: in this process with the production wiring (server/roles.ts),
// or as a `roster gateway` child process (the child processes themselves are
// harness/roster-process.ts's). Also each test's storage, and a WebSocket feed reader that
// records every message, so tests assert on what a user of the feed sees.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import WebSocket from 'ws'
import { silentLog } from '../../server/common/log.js'
import {
  startGateway, startLeader, startWorker, type GatewayRoleConfig, type LeaderRoleConfig, type Stopper, type WorkerRoleConfig
} from '../../server/roles.js'
import { freeLeaderEndpoint, freePort } from '../../harness/ports.js'
import { spawnRoster, waitForLeader, waitForReady, type RosterProcess } from '../../harness/roster-process.js'
import { waitFor } from '../../harness/wait-for.js'
import { freshDatabaseUrl } from './postgres.js'

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
