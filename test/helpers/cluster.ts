// Runs Roster for end-to-end tests: in this process with the production wiring (server/roles.ts),
// or as real `roster` child processes that a test can SIGKILL. Also a WebSocket feed reader that
// records every message, so tests assert on what a user of the feed sees.
import { spawn, type ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'
import { fileURLToPath } from 'node:url'
import WebSocket from 'ws'
import { silentLog } from '../../server/shared/log.js'
import { startGateway, startLeader, startWorker, type Stopper } from '../../server/roles.js'
import { waitFor } from './wait-for.js'

const ROSTER_BIN = fileURLToPath(new URL('../../bin/roster.js', import.meta.url))

async function portIsFree (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const srv = createServer()
    srv.once('error', () => resolve(false))
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)))
  })
}

/** A leader endpoint whose port and port + 1 (the event PUB) are both free right now. */
export async function freeLeaderEndpoint (): Promise<string> {
  for (let i = 0; i < 200; i++) {
    const port = 20_000 + Math.floor(Math.random() * 30_000)
    if (await portIsFree(port) && await portIsFree(port + 1)) return `tcp://127.0.0.1:${port}`
  }
  throw new Error('no free port pair found')
}

export interface Storage { databaseUrl?: string, dataDir: string }

export interface InProcessRoster { url: string, bind: string, stop: Stopper }

/** All three roles in this process, as `roster up` wires them. */
export async function startInProcess (storage: Storage, bind?: string): Promise<InProcessRoster> {
  const endpoint = bind ?? await freeLeaderEndpoint()
  const stoppers: Stopper[] = []
  stoppers.push(await startLeader({ ...storage, bind: endpoint }, silentLog))
  stoppers.push(await startWorker([endpoint], silentLog))
  const gateway = await startGateway({ port: 0, host: '127.0.0.1', candidates: [endpoint] }, silentLog)
  stoppers.push(gateway.stop)
  await waitForLeader(gateway.url)
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
  provider?: { id: string, state: string, lastSeen: string | null }
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
