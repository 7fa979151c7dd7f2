// One leader term's state and its rules about the followers, a pure module: the registry as
// committed (with lastSeen freshness on top), the workers and who watches what, the presence
// rules kept in memory (flap damping, ttl renewals, observer quorum), the items queued for the
// next batch (decided in batch.ts), and what the followers are owed (ASSIGN lists, LAST_SEEN
// values). Its functions take a message, an observation or the time, change the state and return
// what to send; term.ts carries that out. It never touches a socket, a timer or the database.
import { Errors } from '../protocol/error-codes.js'
import type { Body, Observation, Seen, Task, TokenOp, TokenResult, WriteOp } from '../protocol/messages.js'
import type { Provider } from '../protocol/model.js'
import { chunks, PAGE_BYTES, PAGE_ITEMS } from '../protocol/socket-limits.js'
import { MAX_TOKENS, type TokenRecord } from '../protocol/token-model.js'
import { createAssignment, type Assignment } from './assignment.js'
import { createFlapDamper, DEFAULT_FLAP_DAMPING, type FlapDamper, type FlapDampingConfig } from './flap-damping.js'
import { acceptSeen, withLastSeen } from './last-seen.js'
import { createObserverQuorum, type ObserverQuorum } from './quorum.js'
import { createProviderCounts, type MutableCounts } from './quota.js'
import { TTL_EXPIRED_REASON, type Judgement } from './registry.js'
import { createTtlTracker, type TtlTracker } from './ttl-tracker.js'
import { createWorkerRegistry, type WorkerRegistry } from './worker-registry.js'

/** ASSIGN lists are coalesced for this long, so a burst of registrations sends one per worker. */
export const ASSIGN_FLUSH_MS = 10
/** A task is ~200 bytes to encode, send, decode and apply. When every ASSIGN was the worker's
 *  complete list, one every 10 ms during a long burst of registrations was quadratic: at 10,000
 *  tasks the leader and the worker did little else, and their liveness pings starved. Deltas
 *  made most ASSIGNs small, but a complete list (after READY) or a delta that moves thousands of
 *  providers (a worker died) is still large, so after a flush the next one waits this long per
 *  task it carried (10,000 tasks: 0.5 s), which keeps ASSIGNs to a small share of both
 *  processes' time. A change after a quiet spell still goes out within ASSIGN_FLUSH_MS. */
export const ASSIGN_PACE_MS_PER_TASK = 0.05

/** What waits in the term's queue for the next batch (batch.ts decides it). */
export type QueueItem =
  | { kind: 'write', op: WriteOp, identity: Buffer, requestId: string }
  /** `released`: a flapping hold ended; publish the provider's last observed state as is.
   *  `ttl`: the TTL tracker saw a renewal run out (void if a renewal came meanwhile). */
  | { kind: 'observe', obs: Judgement, released?: boolean, ttl?: boolean }
  | { kind: 'ack', identity: Buffer, seq: number }
  /** A provider down longer than its deregisterAfterMs, to remove if it still is. */
  | { kind: 'reap', providerId: string }

export interface TermState {
  epoch: number
  /** The latest committed revision. */
  head: number
  /** Every committed provider, with the freshest lastSeen accepted since (last-seen.ts). */
  providers: Map<string, Provider>
  /** Committed providers per service, for the quotas. */
  counts: MutableCounts
  /** Providers with a deregisterAfterMs, the only ones reapDown looks at. */
  reapable: Set<string>
  workers: WorkerRegistry
  /** Each worker's ROUTER identity: where its ASSIGNs go. */
  identities: Map<string, Buffer>
  /** Workers that sent READY in this term; only they take part in the assignment. */
  readied: Set<string>
  /** True until the takeover has settled (endSettling): no rebalancing yet. */
  settling: boolean
  assignment: Assignment
  quorum: ObserverQuorum
  /** Providers that lost a watcher: once their watchers are settled, the remaining ones may
   *  all agree that the provider is down. */
  requorum: Set<string>
  /** Workers owed their complete task list (they joined, or sent READY). */
  assignFull: Set<string>
  /** The seq of the last ASSIGN sent to each worker in this term: the worker applies them only
   *  in order, and PONG tells it the last one, so that it notices a lost one (protocol README §7). */
  assignSeq: Map<string, number>
  /** When the last ASSIGN flush went out, and how many tasks it carried (its pacing). */
  assignedAt: number
  assignedTasks: number
  /** Per term: a new leader starts counting flaps afresh (it has no window of its own yet). */
  damper: FlapDamper
  /** Renewals of ttl checks, in memory only; a new term grants every up provider a full TTL. */
  ttl: TtlTracker
  /** Items for the next batch, in arrival order. */
  queue: QueueItem[]
  /** lastSeen values accepted since the last LAST_SEEN. */
  seenOut: Map<string, number>
  /** Every stored token by id (hashes, never secrets), and the list's generation in this term:
   *  0 as loaded, + 1 at each change. Gateways compare it (with the epoch) to their own. */
  tokens: Map<string, TokenRecord>
  tokenGeneration: number
}

export interface TermInit {
  epoch: number
  /** The head revision and the providers as loaded at the takeover. */
  revision: number
  providers: readonly Provider[]
  tokens: readonly TokenRecord[]
  /** `--watchers` (assignment.ts) and the flap damping (flap-damping.ts). */
  watchers?: number
  flapDamping?: FlapDampingConfig
}

export function createTermState (init: TermInit, now: number): TermState {
  const quorum = createObserverQuorum()
  const requorum = new Set<string>()
  const s: TermState = {
    epoch: init.epoch,
    head: init.revision,
    providers: new Map(init.providers.map((p) => [p.id, p])),
    counts: createProviderCounts(init.providers.map((p) => p.service)),
    reapable: new Set(),
    workers: createWorkerRegistry(),
    identities: new Map(),
    readied: new Set(),
    settling: true,
    assignment: createAssignment({
      watchers: init.watchers,
      onUnwatch: (providerId, workerId) => { quorum.unwatch(providerId, workerId); requorum.add(providerId) }
    }),
    quorum,
    requorum,
    assignFull: new Set(),
    assignSeq: new Map(),
    assignedAt: 0,
    assignedTasks: 0,
    damper: createFlapDamper(init.flapDamping ?? DEFAULT_FLAP_DAMPING),
    ttl: createTtlTracker(),
    queue: [],
    seenOut: new Map(),
    tokens: new Map(init.tokens.map((tk) => [tk.id, tk])),
    tokenGeneration: 0
  }
  for (const p of s.providers.values()) {
    if (needsWorker(p)) s.assignment.addProvider(p.id)
    if (p.deregisterAfterMs !== undefined) s.reapable.add(p.id)
    // The last renewal reached the previous leader, not us: a full TTL from the takeover, so
    // that a failover never turns a renewing provider down.
    if (p.check?.type === 'ttl' && p.state === 'up') s.ttl.grant(p.id, p.check.ttlMs, epochMs(p.lastSeen) ?? now, now)
  }
  return s
}

/** A worker's PING renews its liveness. Like workerReady and workerReport, returns whether the
 *  worker joined the assignment (the shell says so in its log). */
export function workerPing (s: TermState, workerId: string, identity: Buffer, now: number): boolean {
  return workerSeen(s, workerId, identity, now, s.readied.has(workerId))
}

/** A worker's READY: it joins, keeps what it already watches, and says what it sees. */
export function workerReady (s: TermState, workerId: string, identity: Buffer, observations: readonly Observation[], now: number): boolean {
  s.readied.add(workerId)
  const joined = workerSeen(s, workerId, identity, now, true)
  // The worker keeps what it watches while the provider has a free watcher's place:
  // after a leader change every watch stays where it was, so nothing restarts or flaps.
  for (const obs of observations) {
    const p = s.providers.get(obs.providerId)
    if (p !== undefined && needsWorker(p)) s.assignment.addProvider(obs.providerId, workerId)
  }
  // The stored lastSeen is as of the provider's last commit: a new leader learns the
  // current one here, before the worker's next summary.
  for (const obs of observations) if (obs.state === 'up' && obs.lastSeen !== null) noteSeen(s, workerId, obs.providerId, obs.lastSeen, now)
  enqueueObservations(s, workerId, observations)
  s.assignFull.add(workerId)
  rebalance(s)
  return joined
}

/** A worker's REPORT: its observations are queued, and its ACK after them (sent after the commit). */
export function workerReport (s: TermState, workerId: string, identity: Buffer, seq: number, observations: readonly Observation[], now: number): boolean {
  const joined = workerSeen(s, workerId, identity, now, s.readied.has(workerId))
  enqueueObservations(s, workerId, observations)
  s.queue.push({ kind: 'ack', identity, seq })
  return joined
}

/** A worker's summary (SEEN) of when it last saw the providers it watches. */
export function workerSummary (s: TermState, workerId: string, seen: readonly Seen[], now: number): void {
  for (const [providerId, lastSeen] of seen) noteSeen(s, workerId, providerId, lastSeen, now)
}

/** A worker's BYE: it leaves at once, its providers move. */
export function workerBye (s: TermState, workerId: string): void {
  s.readied.delete(workerId)
  if (s.workers.remove(workerId)) dropWorker(s, workerId)
}

/** Drops the workers silent past their expiry (worker-registry.ts); returns them. */
export function expireWorkers (s: TermState, now: number): string[] {
  const dead = s.workers.expire(now)
  for (const workerId of dead) dropWorker(s, workerId)
  return dead
}

/** Renews a worker's liveness; `join` adds it to the assignment if it is not in it. A worker
 *  joins only after its READY in this term, so that after a takeover a PING cannot hand it
 *  providers that another worker is about to claim as its own. */
function workerSeen (s: TermState, workerId: string, identity: Buffer, now: number, join: boolean): boolean {
  s.identities.set(workerId, identity)
  s.workers.seen(workerId, now)
  if (!join || s.assignment.hasWorker(workerId)) return false
  s.assignment.addWorker(workerId)
  s.assignFull.add(workerId)
  rebalance(s)
  return true
}

function dropWorker (s: TermState, workerId: string): void {
  s.assignment.removeWorker(workerId)
  s.identities.delete(workerId)
  s.assignFull.delete(workerId)
  s.assignSeq.delete(workerId)
  rebalance(s)
}

function enqueueObservations (s: TermState, workerId: string, observations: readonly Observation[]): void {
  for (const obs of observations) {
    // A worker that lost a provider to another (it was presumed dead) must not overrule the
    // provider's current watchers.
    const watchers = s.assignment.watchersOf(obs.providerId)
    const stored = s.providers.get(obs.providerId)
    if (!watchers.has(workerId) || stored === undefined) continue
    const judged = s.quorum.observe(workerId, obs, watchers, stored.state)
    if (judged !== null) s.queue.push({ kind: 'observe', obs: judged })
  }
}

/** A worker's word that it saw `providerId` at `lastSeen` (a SEEN entry, or an up provider in
 *  its READY): kept if acceptSeen says so, else ignored without a word (late, duplicate and
 *  hostile entries look alike, and a log line per entry would be a flood). */
function noteSeen (s: TermState, workerId: string, providerId: string, lastSeen: number, now: number): void {
  const ms = acceptSeen(s.providers.get(providerId), s.assignment.watchersOf(providerId), workerId, lastSeen, now)
  if (ms !== null) storeSeen(s, providerId, ms)
}

/** Sets a stored provider's lastSeen in memory (no commit, no revision) if it is later, and
 *  queues it for LAST_SEEN. */
export function storeSeen (s: TermState, providerId: string, lastSeen: number): void {
  const p = s.providers.get(providerId)
  if (p === undefined || (p.lastSeen !== null && Date.parse(p.lastSeen) >= lastSeen)) return
  s.providers.set(providerId, withLastSeen(p, lastSeen))
  s.seenOut.set(providerId, lastSeen)
}

/** The LAST_SEEN messages owed: every value accepted since the last call, PAGE_ITEMS a message.
 *  term.ts calls it once per turn of the event loop, so every summary read in one turn (from
 *  any number of workers) is one message to the gateways. */
export function takeSeen (s: TermState): Array<Body<'LAST_SEEN'>> {
  const seen = [...s.seenOut]
  s.seenOut.clear()
  return chunks(seen, PAGE_ITEMS).map((page) => ({ epoch: s.epoch, seen: page }))
}

/** Queues the state held back by each flapping hold that ended, as it is. */
export function releaseFlapping (s: TermState, now: number): void {
  for (const { providerId, state, reason } of s.damper.release(now)) {
    const provider = s.providers.get(providerId)
    if (provider === undefined) continue
    const lastSeen = epochMs(provider.lastSeen)
    s.queue.push({ kind: 'observe', released: true, obs: { providerId, state, lastSeen, ...(state === 'down' && reason !== undefined ? { reason } : {}) } })
  }
}

/** Queues a `down` (ttl-expired) for each provider whose renewal ran out. A renewal read in the
 *  same turn is queued ahead of the expiry, which it voids (batch.ts). */
export function expireTtls (s: TermState, now: number): void {
  for (const { providerId, lastRenewal } of s.ttl.expire(now)) {
    s.queue.push({
      kind: 'observe',
      ttl: true,
      obs: { providerId, state: 'down', lastSeen: lastRenewal, reason: TTL_EXPIRED_REASON, detectedAfterMs: Math.max(0, now - lastRenewal) }
    })
  }
}

/** Queues the removal of each provider down longer than its deregisterAfterMs. */
export function reapDown (s: TermState, now: number): void {
  // After a takeover, workers' READY may still bring a `down` provider back up: wait for them.
  if (s.settling) return
  for (const id of s.reapable) {
    const p = s.providers.get(id)
    if (p === undefined || p.state !== 'down' || p.deregisterAfterMs === undefined) continue
    // A repeat while the first is queued is harmless: decideReap finds nothing to remove.
    if (now - Date.parse(p.stateSince) >= p.deregisterAfterMs) s.queue.push({ kind: 'reap', providerId: id })
  }
}

/** The takeover has settled (every worker had time to READY): providers may now be spread. */
export function endSettling (s: TermState): void {
  s.settling = false
  rebalance(s)
}

/** Gives every provider its watchers and evens the load (not while the takeover settles), and
 *  queues the `down` of a provider whose remaining watchers all see it down. */
export function rebalance (s: TermState): void {
  if (s.settling) return
  s.assignment.balance()
  // A provider whose watcher left (dead, moved, or given the provider's place to another) is
  // down if every watcher it has now sees it down: the one that left was the last dissent.
  for (const id of s.requorum) {
    const p = s.providers.get(id)
    const judged = p === undefined ? null : s.quorum.conclude(id, s.assignment.watchersOf(id), p.state)
    if (judged !== null) s.queue.push({ kind: 'observe', obs: judged })
  }
  s.requorum.clear()
}

/** In how many ms the next ASSIGN flush may go out, or null when no worker's list changed. */
export function assignDelay (s: TermState, now: number): number | null {
  if (s.assignFull.size === 0 && !s.assignment.changed) return null
  return Math.max(ASSIGN_FLUSH_MS, s.assignedAt + s.assignedTasks * ASSIGN_PACE_MS_PER_TASK - now)
}

type AssignBody = Omit<Body<'ASSIGN'>, 'epoch' | 'seq'>

/** The ASSIGNs owed: a worker that joined or sent READY gets its complete list, in pages of
 *  PAGE_ITEMS tasks; any other changed worker gets only what changed (`delta`), so that a
 *  registration costs the leader one task to send, not the worker's whole list. Each message
 *  carries the worker's next seq. */
export function takeAssigns (s: TermState, now: number): Array<{ identity: Buffer, body: Body<'ASSIGN'> }> {
  const out: Array<{ identity: Buffer, body: Body<'ASSIGN'> }> = []
  s.assignedAt = now
  s.assignedTasks = 0
  // Those made while the takeover settles too: a worker sent its complete list needs none of them.
  const changes = s.assignment.takeChanges()
  for (const workerId of new Set([...s.assignFull, ...changes.keys()])) {
    const identity = s.identities.get(workerId)
    if (identity === undefined) continue
    const change = changes.get(workerId)
    const bodies = s.assignFull.has(workerId) || change === undefined ? completeList(s, workerId) : delta(s, workerId, change)
    let seq = s.assignSeq.get(workerId) ?? 0
    for (const body of bodies) {
      out.push({ identity, body: { epoch: s.epoch, seq: ++seq, ...body } })
      s.assignedTasks += body.tasks.length
    }
    s.assignSeq.set(workerId, seq)
  }
  s.assignFull.clear()
  return out
}

function completeList (s: TermState, workerId: string): AssignBody[] {
  const tasks: Task[] = []
  for (const id of s.assignment.tasksOf(workerId)) {
    const p = s.providers.get(id)
    if (p !== undefined) tasks.push(toTask(p))
  }
  const pages = chunks(tasks, PAGE_ITEMS)
  if (pages.length === 0) pages.push([])
  return pages.map((page, i) => ({ tasks: page, page: i, more: i < pages.length - 1 }))
}

/** A changed provider that the worker still watches (and that still exists) goes as its task,
 *  anything else as a removal. */
function delta (s: TermState, workerId: string, change: ReadonlyMap<string, boolean>): AssignBody[] {
  const tasks: Task[] = []
  const removed: string[] = []
  const current = s.assignment.tasksOf(workerId)
  for (const [id, watched] of change) {
    const p = watched && current.has(id) ? s.providers.get(id) : undefined
    if (p !== undefined) tasks.push(toTask(p))
    else removed.push(id)
  }
  const taskPages = chunks(tasks, PAGE_ITEMS)
  const removedPages = chunks(removed, PAGE_ITEMS)
  const bodies: AssignBody[] = []
  for (let i = 0; i < Math.max(taskPages.length, removedPages.length); i++) {
    bodies.push({ delta: true, tasks: taskPages[i] ?? [], removed: removedPages[i] ?? [] })
  }
  return bodies
}

/** What a PING gets: a worker also learns the seq of the last ASSIGN sent to it. */
export function pongBody (s: TermState, ping: Body<'PING'>): Body<'PONG'> {
  const body: Body<'PONG'> = { epoch: s.epoch, revision: s.head }
  if (ping.role === 'worker') body.assigned = s.assignSeq.get(ping.peerId) ?? 0
  return body
}

/** A SNAPSHOT's pages: every one taken now, at one revision; they differ only in size. */
export function snapshotPages (s: TermState, requestId: string): Array<Body<'SNAPSHOT'>> {
  const pages = pageByBytes([...s.providers.values()])
  return pages.map((providers, page) => ({ requestId, epoch: s.epoch, revision: s.head, providers, page, more: page < pages.length - 1 }))
}

/** A token creation beyond MAX_TOKENS is refused before anything is stored. */
export function tokenRefusal (s: TermState, op: TokenOp): TokenResult | null {
  if (op.type !== 'create' || s.tokens.size < MAX_TOKENS) return null
  return { ok: false, statusCode: Errors.tokenQuota.status, code: Errors.tokenQuota.code, message: `at most ${MAX_TOKENS} tokens may exist; revoke some first` }
}

/** Applies a stored token change to the list and words its answer (`found`: whether the token
 *  to revoke existed). A change moves the generation, which the next BEAT announces. */
export function applyTokenChange (s: TermState, op: TokenOp, found: boolean): TokenResult {
  if (op.type === 'create') {
    s.tokens.set(op.token.id, op.token)
  } else {
    if (!found) return { ok: false, statusCode: Errors.tokenNotFound.status, code: Errors.tokenNotFound.code, message: `no token with id '${op.id}'` }
    s.tokens.delete(op.id)
  }
  s.tokenGeneration++
  return { ok: true, statusCode: op.type === 'create' ? 201 : 200, generation: s.tokenGeneration }
}

/** Splits items into pages of about PAGE_BYTES of JSON each (at least one item a page), so
 *  that no answer exceeds what the followers' sockets accept (socket-limits.ts). */
export function pageByBytes<T> (items: readonly T[]): T[][] {
  const pages: T[][] = []
  let page: T[] = []
  let bytes = 0
  for (const item of items) {
    if (page.length > 0 && bytes >= PAGE_BYTES) {
      pages.push(page)
      page = []
      bytes = 0
    }
    page.push(item)
    bytes += Buffer.byteLength(JSON.stringify(item))
  }
  pages.push(page)
  return pages
}

/** Whether a worker watches the provider: it has a heartbeat endpoint or an http/tcp check. */
export function needsWorker (p: Provider): boolean {
  return p.heartbeat !== undefined || (p.check !== undefined && p.check.type !== 'ttl')
}

function epochMs (iso: string | null): number | null {
  return iso === null ? null : Date.parse(iso)
}

function toTask (p: Provider): Task {
  const task: Task = {
    providerId: p.id,
    heartbeatIntervalMs: p.heartbeatIntervalMs,
    // A provider in maintenance is still watched, from a neutral start.
    state: p.state === 'maintenance' ? 'pending' : p.state,
    lastSeen: epochMs(p.lastSeen)
  }
  if (p.heartbeat !== undefined) task.heartbeat = p.heartbeat
  else if (p.check?.type === 'http') task.check = { type: 'http', host: p.host, port: p.port, path: p.check.path, intervalMs: p.check.intervalMs, timeoutMs: p.check.timeoutMs }
  else if (p.check?.type === 'tcp') task.check = { type: 'tcp', host: p.host, port: p.port, intervalMs: p.check.intervalMs, timeoutMs: p.check.timeoutMs }
  if (p.state === 'maintenance') task.maintenance = true
  return task
}
