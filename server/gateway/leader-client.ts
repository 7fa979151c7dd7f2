// The gateway's link to the leader, the client half of the Clone pattern (ZeroMQ Guide ch. 5):
// subscribe to the leader's feed first, then ask for a snapshot, apply the queued events above
// its revision, and repair any gap in revisions by asking for the missing range (or a new
// snapshot when the leader no longer has it). It also carries writes and change-log queries,
// and keeps the token table current: it asks for the token list when it follows a leader and
// whenever a BEAT announces another generation than the one it holds.
// It owns the feed SUB and the leader link; it must never apply an event out of order or one
// from a fenced (older) epoch.
import { randomUUID } from 'node:crypto'
import { Subscriber } from 'zeromq'
import { curveClientOptions, type ClusterKeys } from '../protocol/cluster-keys.js'
import { createBadFrames, decodeOrDrop } from '../protocol/frames.js'
import { chunks, GATEWAY_DEALER_MAX_BYTES, GATEWAY_SUB_MAX_BYTES, limitOptions } from '../protocol/socket-limits.js'
import { pubEndpoint } from '../protocol/endpoints.js'
import { createLeaderLink, type LeaderInfo, type LeaderLink } from '../protocol/leader-link.js'
import { BATCH_ITEMS, Inbound, type Body, type Message, type TokenOp, type TokenResult, type WriteOp, type WriteResult } from '../protocol/messages.js'
import type { Change, Provider } from '../protocol/model.js'
import type { Log } from '../common/log.js'
import type { LeaderPort } from './ports.js'
import { LeaderUnavailableError } from './errors.js'
import type { Replica } from './replica.js'
import { createTokenTable, type TokenTable } from './token-table.js'

/** A sync request the leader has not answered in this time is retried; a write gets twice as
 *  long before it fails with 503. 2 s covers a batched commit under load; a dead leader is
 *  noticed sooner by the link itself. */
export const REQUEST_TIMEOUT_MS = 2000
/** Events ahead of a gap are held while the gap is repaired; beyond this many, a snapshot is
 *  cheaper than the repair. */
const MAX_HELD_EVENTS = 50_000
/** Page size when repairing a gap from the leader's change log. */
const REPAIR_PAGE = 5000

export interface LeaderClient extends LeaderPort {
  start: () => void
  stop: () => Promise<void>
  /** `feedBadFrames`/`linkBadFrames`: the SUB's and the DEALER's share of `badFrames`.
   *  `leaderHead`: the latest revision the leader announced (0 before any). */
  readonly stats: { badFrames: number, feedBadFrames: number, linkBadFrames: number, snapshots: number, repairs: number, fencedEvents: number, leaderHead: number }
}

type Pending =
  | { kind: 'sync', timer: NodeJS.Timeout }
  | { kind: 'write', timer: NodeJS.Timeout, resolve: (r: WriteResult) => void, reject: (e: Error) => void }
  | { kind: 'query', timer: NodeJS.Timeout, resolve: (r: { available: boolean, changes: Change[] }) => void, reject: (e: Error) => void }
  | { kind: 'tokens', timer: NodeJS.Timeout }
  | { kind: 'token-write', timer: NodeJS.Timeout, resolve: (r: { epoch: number, result: TokenResult }) => void, reject: (e: Error) => void }

export interface LeaderClientOptions {
  candidates: readonly string[]
  replica: Replica
  /** The gateway's token table, which this client keeps up to date (token-table.ts). */
  tokens?: TokenTable
  log: Log
  peerId?: string
  /** With keys, the DEALER and the feed SUB are CURVE clients of the leader. */
  clusterKeys?: ClusterKeys
}

export function createLeaderClient (opts: LeaderClientOptions): LeaderClient {
  const { replica, log } = opts
  const tokens = opts.tokens ?? createTokenTable()
  /** The TOKENS_REQ in flight, if any: one at a time. */
  let fetchingTokens: string | null = null
  const stats = { snapshots: 0, repairs: 0, fencedEvents: 0 }
  const feedBadFrames = createBadFrames(log, 'dropped a bad frame from the feed')
  /** The pages of the SNAPSHOT being received (its requestId is `syncing`). */
  let snapshotPages: Provider[] = []
  let snapshotPagesSeen = 0
  const pending = new Map<string, Pending>()
  /** Events above a gap (or received before the first snapshot), by revision. */
  const held = new Map<number, Change>()
  let sub: Subscriber | null = null
  let syncing: string | null = null
  let epoch = 0
  /** The highest revision the leader's feed announced (EVENTs and BEATs): the replica's lag is
   *  the distance to it (gateway/metrics.ts). */
  let leaderHead = 0

  const link: LeaderLink = createLeaderLink({
    candidates: opts.candidates,
    peerId: opts.peerId ?? `gateway-${randomUUID()}`,
    role: 'gateway',
    inbound: Inbound.gatewayDealer,
    log,
    onLeader,
    onLost,
    onMessage,
    maxMessageBytes: GATEWAY_DEALER_MAX_BYTES,
    ...(opts.clusterKeys !== undefined ? { clusterKeys: opts.clusterKeys } : {})
  })

  function onLeader (leader: LeaderInfo): void {
    epoch = leader.epoch
    openFeed(leader.endpoint)
    // Whatever happened while we were away (or under a previous leader) is in the change log.
    syncing = null
    sync()
    fetchingTokens = null
    fetchTokens()
  }

  function fetchTokens (): void {
    if (fetchingTokens !== null || link.leader === null) return
    const requestId = randomUUID()
    const timer = setTimeout(() => {
      if (!pending.delete(requestId)) return
      if (fetchingTokens === requestId) fetchingTokens = null
      fetchTokens()
    }, REQUEST_TIMEOUT_MS)
    pending.set(requestId, { kind: 'tokens', timer })
    if (!link.send('TOKENS_REQ', { requestId })) {
      clearTimeout(timer)
      pending.delete(requestId)
      return
    }
    fetchingTokens = requestId
  }

  /** Writes taken in this turn of the event loop, sent together once it ends (sendWrites). */
  let outbox: Array<{ requestId: string, op: WriteOp }> = []

  function sendWrites (): void {
    // A write already answered (503 when the leader was lost meanwhile) must not be sent.
    const writes = outbox.filter((w) => pending.has(w.requestId))
    outbox = []
    for (const page of chunks(writes, BATCH_ITEMS)) {
      if (link.send('WRITE', { writes: page })) continue
      for (const { requestId } of page) {
        const p = pending.get(requestId)
        if (p?.kind !== 'write') continue
        pending.delete(requestId)
        clearTimeout(p.timer)
        p.reject(new LeaderUnavailableError())
      }
    }
  }

  function onLost (): void {
    for (const [id, p] of pending) {
      clearTimeout(p.timer)
      if ('reject' in p) p.reject(new LeaderUnavailableError())
      pending.delete(id)
    }
    syncing = null
    fetchingTokens = null
  }

  function openFeed (leaderEndpoint: string): void {
    sub?.close()
    const s = new Subscriber({
      linger: 0,
      receiveHighWaterMark: 100_000,
      ...limitOptions(GATEWAY_SUB_MAX_BYTES),
      ...curveClientOptions(opts.clusterKeys)
    })
    s.subscribe()
    s.connect(pubEndpoint(leaderEndpoint))
    sub = s
    feedLoop(s).catch((err) => log.error({ err }, 'feed loop failed'))
  }

  async function feedLoop (s: Subscriber): Promise<void> {
    for await (const frames of s) {
      if (s !== sub) return
      const msg = decodeOrDrop(frames, Inbound.gatewaySub, feedBadFrames)
      if (msg === null) continue
      if (msg.body.epoch < epoch) { stats.fencedEvents++; continue }
      if (msg.verb === 'EVENT') {
        for (const change of msg.body.changes) {
          leaderHead = Math.max(leaderHead, change.revision)
          offer(change)
        }
      } else if (msg.verb === 'LAST_SEEN') {
        // Freshness, not a change: applied to whatever the replica holds now, even mid-repair
        // (an event held meanwhile brings its own lastSeen, and the next LAST_SEEN comes in 0.5 s).
        replica.refreshLastSeen(msg.body.seen)
      } else {
        leaderHead = Math.max(leaderHead, msg.body.revision)
        if (msg.body.revision > replica.revision && syncing === null) {
          // The tail of the feed was lost (no later event revealed the gap): fetch it.
          sync()
        }
        // A token was created or revoked (or this is another leader's list): fetch the list.
        if (msg.body.epoch !== tokens.epoch || msg.body.tokens !== tokens.generation) fetchTokens()
      }
    }
  }

  /** Applies a change in order, or holds it and starts a repair when it reveals a gap. */
  function offer (change: Change): void {
    if (!replica.ready || syncing !== null) {
      hold(change)
      return
    }
    const outcome = replica.apply(change)
    if (outcome === 'gap') {
      hold(change)
      sync()
    }
  }

  function hold (change: Change): void {
    if (change.revision <= replica.revision) return
    held.set(change.revision, change)
    if (held.size > MAX_HELD_EVENTS) {
      held.clear()
      requestSnapshot()
    }
  }

  function applyHeld (): void {
    for (const rev of [...held.keys()].sort((a, b) => a - b)) {
      if (rev <= replica.revision) { held.delete(rev); continue }
      if (rev !== replica.revision + 1) return
      replica.apply(held.get(rev) as Change)
      held.delete(rev)
    }
  }

  /** Brings the replica up to the leader: a snapshot the first time, else the missing range. */
  function sync (): void {
    if (syncing !== null || link.leader === null) return
    if (!replica.ready) requestSnapshot()
    else requestSince(replica.revision)
  }

  function requestSnapshot (): void {
    stats.snapshots++
    snapshotPages = []
    snapshotPagesSeen = 0
    syncing = request('SNAPSHOT_REQ', (requestId) => ({ requestId }))
  }

  function requestSince (revision: number): void {
    stats.repairs++
    syncing = request('SINCE_REQ', (requestId) => ({ requestId, revision, limit: REPAIR_PAGE }))
  }

  function request<V extends 'SNAPSHOT_REQ' | 'SINCE_REQ'> (verb: V, body: (requestId: string) => Body<V>): string | null {
    const requestId = randomUUID()
    const timer = setTimeout(() => {
      if (!pending.delete(requestId)) return
      if (syncing === requestId) syncing = null
      sync()
    }, REQUEST_TIMEOUT_MS)
    pending.set(requestId, { kind: 'sync', timer })
    if (!link.send(verb, body(requestId))) {
      clearTimeout(timer)
      pending.delete(requestId)
      return null
    }
    return requestId
  }

  function onMessage (msg: Extract<Message, { verb: (typeof Inbound.gatewayDealer)[number] }>): void {
    if (msg.verb === 'PONG') return
    if (msg.verb === 'RESULT') {
      for (const { requestId, result } of msg.body.results) {
        const p = pending.get(requestId)
        if (p?.kind !== 'write') continue
        pending.delete(requestId)
        clearTimeout(p.timer)
        p.resolve(result)
      }
      return
    }
    const p = pending.get(msg.body.requestId)
    if (p === undefined) return
    if (msg.verb === 'SNAPSHOT' && !takeSnapshotPage(msg.body)) return
    pending.delete(msg.body.requestId)
    clearTimeout(p.timer)
    switch (msg.verb) {
      case 'TOKEN_RESULT':
        if (p.kind === 'token-write') p.resolve({ epoch: msg.body.epoch, result: msg.body.result })
        return
      case 'TOKENS':
        if (p.kind !== 'tokens') return
        if (fetchingTokens === msg.body.requestId) fetchingTokens = null
        tokens.load(msg.body.epoch, msg.body.generation, msg.body.tokens)
        return
      case 'SNAPSHOT':
        if (syncing !== msg.body.requestId) return
        syncing = null
        replica.loadSnapshot(msg.body.revision, snapshotPages)
        snapshotPages = []
        applyHeld()
        if (held.size > 0) sync()
        return
      case 'EVENTS':
        if (p.kind === 'query') {
          p.resolve({ available: msg.body.available, changes: msg.body.events })
          return
        }
        if (syncing !== msg.body.requestId) return
        syncing = null
        if (!msg.body.available) {
          requestSnapshot()
          return
        }
        for (const change of msg.body.events) {
          if (change.revision === replica.revision + 1) replica.apply(change)
        }
        applyHeld()
        if (replica.revision < msg.body.head || held.size > 0) sync()
    }
  }

  /** Collects a SNAPSHOT's pages; true once the last one is in (then snapshotPages holds the
   *  whole registry). A page out of order (one was lost) abandons the snapshot: the request's
   *  timeout asks for a new one. */
  function takeSnapshotPage (body: Body<'SNAPSHOT'>): boolean {
    if (syncing !== body.requestId) return true
    const page = body.page ?? 0
    if (page !== snapshotPagesSeen) {
      log.warn({ page, expected: snapshotPagesSeen }, 'a snapshot page was lost; asking again after the timeout')
      syncing = null
      snapshotPages = []
      snapshotPagesSeen = 0
      return false
    }
    for (const provider of body.providers) snapshotPages.push(provider)
    snapshotPagesSeen = page + 1
    if (body.more === true) return false
    snapshotPagesSeen = 0
    return true
  }

  return {
    start () { link.start() },
    async stop () {
      onLost()
      await link.stop()
      sub?.close()
      sub = null
    },
    get connected () { return link.leader !== null },
    write (op: WriteOp) {
      return new Promise<WriteResult>((resolve, reject) => {
        const requestId = randomUUID()
        const timer = setTimeout(() => {
          if (pending.delete(requestId)) reject(new LeaderUnavailableError('the leader did not answer in time'))
        }, REQUEST_TIMEOUT_MS * 2)
        pending.set(requestId, { kind: 'write', timer, resolve, reject })
        outbox.push({ requestId, op })
        if (outbox.length === 1) setImmediate(sendWrites)
      })
    },
    tokenWrite (op: TokenOp) {
      return new Promise<{ epoch: number, result: TokenResult }>((resolve, reject) => {
        const requestId = randomUUID()
        const timer = setTimeout(() => {
          if (pending.delete(requestId)) reject(new LeaderUnavailableError('the leader did not answer in time'))
        }, REQUEST_TIMEOUT_MS * 2)
        pending.set(requestId, { kind: 'token-write', timer, resolve, reject })
        if (!link.send('TOKEN_WRITE', { requestId, op })) {
          clearTimeout(timer)
          pending.delete(requestId)
          reject(new LeaderUnavailableError())
        }
      })
    },
    changesSince (revision: number, limit: number) {
      return new Promise<{ available: boolean, changes: Change[] }>((resolve, reject) => {
        const requestId = randomUUID()
        const timer = setTimeout(() => {
          if (pending.delete(requestId)) reject(new LeaderUnavailableError('the leader did not answer in time'))
        }, REQUEST_TIMEOUT_MS)
        pending.set(requestId, { kind: 'query', timer, resolve, reject })
        if (!link.send('SINCE_REQ', { requestId, revision, limit: Math.min(limit, 10_000) })) {
          clearTimeout(timer)
          pending.delete(requestId)
          reject(new LeaderUnavailableError())
        }
      })
    },
    // The link counts what arrives on the DEALER; the feed's count is ours.
    stats: {
      get badFrames () { return feedBadFrames.count + link.stats.badFrames },
      get feedBadFrames () { return feedBadFrames.count },
      get linkBadFrames () { return link.stats.badFrames },
      get leaderHead () { return leaderHead },
      get snapshots () { return stats.snapshots },
      get repairs () { return stats.repairs },
      get fencedEvents () { return stats.fencedEvents + link.stats.fencedMessages }
    }
  }
}
