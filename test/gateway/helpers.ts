// Fixtures for the gateway suites: providers and changes, the leader port as it behaves with no
// leader (optionally backed by a small in-memory change log for `since` catch-ups), a gateway
// listening on loopback, and a real `ws` client that records every frame from the first one.
import type { AddressInfo } from 'node:net'
import { afterEach, expect } from 'vitest'
import type { FastifyInstance } from 'fastify'
import { WebSocket } from 'ws'
import { buildGateway, type GatewayOptions } from '../../server/gateway/app.js'
import type { LeaderPort } from '../../server/gateway/ports.js'
import type { WatchLimits } from '../../server/gateway/watch-hub.js'
import { LeaderUnavailableError } from '../../server/gateway/errors.js'
import { createReplica, type Replica } from '../../server/gateway/replica.js'
import type { WatchMessage } from '../../server/gateway/schemas/watch.js'
import type { Change, EventKind, Provider } from '../../server/protocol/model.js'
import { waitFor } from '../../harness/wait-for.js'

export function provider (overrides: Partial<Provider> & { id: string }): Provider {
  return {
    service: 'orders',
    host: '10.0.0.5',
    port: 8080,
    protocol: 'http',
    heartbeat: 'tcp://10.0.0.5:9100',
    heartbeatIntervalMs: 1000,
    tags: [],
    meta: {},
    state: 'up',
    stateSince: '2026-11-27T10:00:00.000Z',
    lastSeen: null,
    revision: 1,
    ...overrides
  }
}

export function change (revision: number, event: EventKind, p: Provider): Change {
  return { revision, event, provider: { ...p, revision } }
}

/**
 * A registry history: `count` changes from revision `from`, cycling through providers
 * `<service>-0 … <service>-(width-1)`, each one an `updated` (the first touch a `registered`).
 */
export function history (from: number, count: number, opts: { service?: string, width?: number, meta?: Record<string, string> } = {}): Change[] {
  const service = opts.service ?? 'orders'
  const width = opts.width ?? 3
  const out: Change[] = []
  for (let i = 0; i < count; i++) {
    const revision = from + i
    const p = provider({ id: `${service}-${revision % width}`, service, meta: opts.meta ?? {} })
    out.push(change(revision, i < width ? 'registered' : 'updated', p))
  }
  return out
}

export interface ChangeLog {
  /** Changes at or below this revision have been compacted away. */
  floor: number
  changes: Change[]
}

/**
 * The leader port with no leader: not connected, every write rejected as a real leader client
 * does. `changesSince` answers from `log` when one is given (the leader's durable change log),
 * after `gate` resolves if one is set, and rejects LeaderUnavailableError otherwise.
 */
export function noLeader (opts: { log?: ChangeLog } = {}): LeaderPort & { gate: Promise<void> | null, calls: number } {
  const port = {
    connected: false,
    gate: null as Promise<void> | null,
    calls: 0,
    async write () {
      throw new LeaderUnavailableError('no leader in this test')
    },
    async tokenWrite (): Promise<never> {
      throw new LeaderUnavailableError('no leader in this test')
    },
    async changesSince (revision: number, limit: number) {
      port.calls++
      const log = opts.log
      if (log === undefined) throw new LeaderUnavailableError('no leader in this test')
      if (port.gate !== null) await port.gate
      if (revision < log.floor) return { available: false, changes: [] }
      return { available: true, changes: log.changes.filter((c) => c.revision > revision).slice(0, limit) }
    }
  }
  return port
}

export function deferred (): { promise: Promise<void>, resolve: () => void } {
  let resolve!: () => void
  const promise = new Promise<void>((_resolve) => { resolve = _resolve })
  return { promise, resolve }
}

export interface Started { app: FastifyInstance, replica: Replica, base: string }

export async function startGateway (
  opts: { replica?: Replica, leader?: LeaderPort, options?: GatewayOptions } = {}
): Promise<Started> {
  const replica = opts.replica ?? createReplica()
  const app = await buildGateway({ replica, leader: opts.leader ?? noLeader() }, opts.options)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  return { app, replica, base: `ws://127.0.0.1:${port}` }
}

export interface WatchClient {
  ws: WebSocket
  messages: WatchMessage[]
  /** The close code and reason, once the server closed the feed. */
  closed: Promise<{ code: number, reason: string }>
  /** Status and body when the server refused the upgrade. */
  refused: Promise<{ statusCode: number, body: string, retryAfter: string | undefined }>
  /** Waits until at least `n` messages arrived; returns them all. */
  received: (n: number, timeoutMs?: number) => Promise<WatchMessage[]>
}

export function watch (base: string, query = ''): WatchClient {
  const ws = new WebSocket(`${base}/v1/watch${query}`)
  const messages: WatchMessage[] = []
  // Attached before the connection opens, so the first frame (the snapshot) cannot be missed.
  ws.on('message', (data) => { messages.push(JSON.parse(data.toString()) as WatchMessage) })
  ws.on('error', () => {})
  const closed = new Promise<{ code: number, reason: string }>((resolve) => {
    ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }))
  })
  const refused = new Promise<{ statusCode: number, body: string, retryAfter: string | undefined }>((resolve) => {
    ws.on('unexpected-response', (_req, res) => {
      let body = ''
      res.on('data', (chunk: Buffer) => { body += chunk.toString() })
      res.on('end', () => resolve({ statusCode: res.statusCode ?? 0, body, retryAfter: res.headers['retry-after'] }))
    })
  })
  return {
    ws,
    messages,
    closed,
    refused,
    received: async (n, timeoutMs = 5000) => {
      await waitFor(() => messages.length >= n, { timeoutMs, what: `${n} watch messages (have ${messages.length})` })
      return messages
    }
  }
}

/** The revisions of the event messages, in arrival order. */
export function eventRevisions (messages: readonly WatchMessage[]): number[] {
  return messages.flatMap((m) => (m.type === 'event' ? [m.revision] : []))
}

export function range (from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i)
}

export function applyAll (replica: Replica, changes: readonly Change[]): void {
  for (const c of changes) expect(replica.apply(c)).toBe('applied')
}

/** A replica at `head` whose ring holds only the last `ring` changes of a 1…head history of
 *  `width` providers of `orders` (default: one per change, so that any replay is shorter than a
 *  snapshot); `spare` more providers of another service make an unfiltered snapshot larger. */
export function replicaWithHistory (head: number, ring: number, width = head, spare = 0): { replica: Replica, log: Change[] } {
  const log = history(1, head, { width })
  const replica = createReplica({ historyLimit: ring })
  replica.loadSnapshot(0, Array.from({ length: spare }, (_, i) => provider({ id: `spare-${i}`, service: 'spare' })))
  applyAll(replica, log)
  return { replica, log }
}

/** For a feed test file: `gateway` starts one gateway per test, `open` connects a feed client to
 *  it; both are closed after each test. Call at the top level of the file. */
export function useWatchGateway (): {
  gateway: (opts?: { replica?: Replica, leader?: LeaderPort, watch?: Partial<WatchLimits> }) => Promise<Started>
  open: (base: string, query?: string) => WatchClient
} {
  let started: Started | null = null
  const clients: WatchClient[] = []
  afterEach(async () => {
    for (const c of clients.splice(0)) c.ws.terminate()
    // A test may have closed it itself (the 1001 going-away test).
    if (started?.app.server.listening === true) await started.app.close()
    started = null
  })
  return {
    async gateway (opts = {}) {
      started = await startGateway({ replica: opts.replica, leader: opts.leader, options: { watch: opts.watch } })
      return started
    },
    open (base, query = '') {
      const c = watch(base, query)
      clients.push(c)
      return c
    }
  }
}
