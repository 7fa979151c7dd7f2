// The leader's shell: campaigns for the leader lock, then owns the ROUTER (requests from gateways
// and workers) and the PUB (the event feed and BEATs), and is the registry's only writer. Every
// write and observation goes through one queue, is decided by the pure core (registry.ts),
// committed in one transaction per batch, and published only after that commit. It also keeps
// the TTL checks' renewals in memory (ttl-tracker.ts) and removes providers down longer than
// their deregisterAfterMs. It must never publish, acknowledge or reply OK to anything that is not
// committed, and it stops acting the moment it loses the lock or is fenced by a newer epoch.
// It also keeps the API tokens (hashes only) in memory, stores token changes (fenced likewise),
// hands the list to gateways, and announces each change in the next BEAT (token-table.ts).
import { Publisher, Router } from 'zeromq'
import { acquireZapHandler, curveServerOptions, type ClusterKeys } from '../protocol/cluster-keys.js'
import { createBadFrames, decodeOrDrop, encode } from '../protocol/frames.js'
import { chunks, LEADER_PUB_MAX_BYTES, LEADER_ROUTER_MAX_BYTES, limitOptions, PAGE_BYTES, PAGE_ITEMS } from '../protocol/socket-limits.js'
import { BATCH_ITEMS, Inbound, type Body, type Message, type Observation, type Task, type TokenOp, type TokenResult, type Verb, type WriteOp, type WriteResult } from '../protocol/messages.js'
import { isAdmin } from '../protocol/scopes.js'
import { MAX_TOKENS, type TokenRecord } from '../protocol/token-model.js'
import { hashSecret, newTokenId } from '../common/token-secret.js'
import { TokenConflictError, type TokenStore } from '../store/token-store.js'
import { pubEndpoint } from '../protocol/endpoints.js'
import type { Change, Provider, TtlCheck } from '../protocol/model.js'
import { createSendQueue, type SendQueue } from '../protocol/send-queue.js'
import { FencedError, UnstorableError, type RegistryStore } from '../store/registry-store.js'
import type { LeaderLock } from '../store/leader-lock.js'
import { everyAfterReads } from '../common/after-reads.js'
import type { Log } from '../common/log.js'
import { createAssignment, type Assignment } from './assignment.js'
import { acceptSeen, freshEvents, keepFresher, withLastSeen } from './last-seen.js'
import { createFlapDamper, DEFAULT_FLAP_DAMPING, type FlapDamper, type FlapDampingConfig } from './flap-damping.js'
import { createObserverQuorum, type ObserverQuorum } from './quorum.js'
import { createProviderCounts, DEFAULT_QUOTAS, type MutableCounts, type QuotaLimits } from './quota.js'
import {
  decideObservation, decideReap, decideWrite, sameWatch, TTL_EXPIRED_REASON, type Judgement, type Lookup, type PendingChange
} from './registry.js'
import { createTtlTracker, TTL_CHECK_INTERVAL_MS, type TtlTracker } from './ttl-tracker.js'
import { createWorkerRegistry, type WorkerRegistry } from './worker-registry.js'

/** 5 BEATs a second: a gateway that missed the tail of the feed learns the latest revision
 *  within 200 ms and repairs the gap, well inside the feed's "tens of milliseconds" for the
 *  common case where only one event is lost and the next event reveals the gap at once. */
export const BEAT_INTERVAL_MS = 200
/** A standby retries the lock this often: after the active leader's session dies, a standby
 *  takes over within ~0.5 s plus its reload time, inside the 2 s write outage README.md › Running in production promises. */
export const CAMPAIGN_INTERVAL_MS = 500
/** Bounds one transaction: large enough to amortize a commit under load, small enough that
 *  the first write of a batch is not kept waiting behind thousands of others. */
export const MAX_BATCH = 500
/** Change-log rows kept for `since` resumes; older ones are pruned every PRUNE_INTERVAL_MS. */
export const DEFAULT_HISTORY_LIMIT = 100_000
const PRUNE_INTERVAL_MS = 30_000
/** After a takeover the leader waits this long before spreading providers, so that every
 *  worker's READY can first claim the providers it already watches: a worker sends READY at its
 *  first PONG (≤ 250 ms) or after noticing its old leader's silence (≤ 1.25 s). Meanwhile the
 *  workers keep watching their old tasks, so nothing goes unwatched. */
export const TAKEOVER_SETTLE_MS = 1500
/** How often held (flapping) providers are checked for release: well under any hold time. */
const FLAP_RELEASE_CHECK_MS = 500
/** ASSIGN lists are coalesced for this long, so a burst of registrations sends one per worker. */
const ASSIGN_FLUSH_MS = 10
/** An ASSIGN is a worker's whole task list (~200 bytes a task), so during a long burst of
 *  registrations sending one every 10 ms is quadratic: at 10,000 tasks, 2 MB a time, the leader
 *  and the worker did little else, and their liveness pings starved. After a flush the next one
 *  waits this long per task it carried (10,000 tasks: 0.5 s), which keeps ASSIGNs to a small
 *  share of both processes' time. A change after a quiet spell (a worker died, a registration)
 *  still goes out within ASSIGN_FLUSH_MS. */
const ASSIGN_PACE_MS_PER_TASK = 0.05
/** How often providers down longer than their deregisterAfterMs are looked for: such a provider
 *  goes within a quarter of a second of its time (the shortest allowed is 1 s). */
const REAP_CHECK_INTERVAL_MS = 250
/** Change-log reads at once: one. A page (≤ 10,000 rows, usually 1,000) reads in milliseconds,
 *  so a queue of them drains quickly, while commits keep the rest of the pool and of Postgres. */
const MAX_LOG_READS = 1
/** SINCE_REQs waiting beyond this are dropped: 64 pages of 1,000 changes are a few seconds of
 *  reads, and a request waiting longer would time out at its gateway (2 s) anyway. */
const MAX_QUEUED_LOG_READS = 64

export interface LeaderConfig {
  /** ROUTER endpoint; the PUB binds the next port. */
  bind: string
  /** A second ROUTER endpoint (ipc://) for the roles in this machine, its PUB beside it
   *  (protocol/endpoints.ts): `roster up` binds one in a private directory. */
  localBind?: string
  historyLimit?: number
  flapDamping?: FlapDampingConfig
  /** Workers that watch each provider (`--watchers`, default 1); with more than one, `down`
   *  needs all of them to agree (quorum.ts). */
  watchers?: number
  /** Provider quotas (`--max-providers-per-service`, `--max-providers`); quota.ts. */
  quotas?: QuotaLimits
  /** ROSTER_BOOTSTRAP_TOKEN: installed as an admin token named `bootstrap` when the leader takes
   *  over and no admin token is stored. Hashed at once; the secret is not kept. */
  bootstrapToken?: string
  /** `roster up` with auth off: no admin token is the normal case, said at info, not warn. A
   *  standalone leader cannot know its gateways' --auth, so it warns. */
  authOff?: boolean
  /** With keys, the ROUTER and PUB are CURVE servers that admit only the follower key. */
  clusterKeys?: ClusterKeys
}

export interface LeaderDeps {
  store: RegistryStore
  tokens: TokenStore
  lock: LeaderLock
  log: Log
  config: LeaderConfig
}

export interface Leader {
  start: () => Promise<void>
  stop: () => Promise<void>
  /** Resolves when this process is the active leader with its sockets bound. */
  whenActive: () => Promise<void>
  readonly status: 'stopped' | 'standby' | 'active'
  /** Called when the leader cannot work as configured (its --bind is taken): it has stopped. */
  onFatal: (cb: (err: Error) => void) => void
  /** `unstorable`: items the database refused for their data (isolateUnstorable). `takeovers`:
   *  terms this process began as the active leader. */
  readonly stats: { readonly badFrames: number, commits: number, changes: number, unstorable: number, takeovers: number }
  /** While active: the term's epoch and the tasks of each worker in the assignment (what the
   *  metrics read at scrape time, leader/metrics.ts); null otherwise. */
  readonly term: { readonly epoch: number, readonly tasksPerWorker: () => number[] } | null
  /** Called after each commit with the changes it stored, before they are published. */
  onCommitted: (cb: (changes: readonly Change[]) => void) => void
}

/** A write's answer, waiting for its batch's commit. */
interface WriteAnswer { identity: Buffer, requestId: string, result: WriteResult }

type QueueItem =
  | { kind: 'write', op: WriteOp, identity: Buffer, requestId: string }
  /** `released`: a flapping hold ended; publish the provider's last observed state as is.
   *  `ttl`: the TTL tracker saw a renewal run out (void if a renewal came meanwhile). */
  | { kind: 'observe', obs: Judgement, released?: boolean, ttl?: boolean }
  | { kind: 'ack', identity: Buffer, seq: number }
  /** A provider down longer than its deregisterAfterMs, to remove if it still is. */
  | { kind: 'reap', providerId: string }

/** Everything that exists only while this process is the active leader. */
interface Term {
  epoch: number
  head: number
  state: Map<string, Provider>
  router: Router
  pub: Publisher
  routerOut: SendQueue
  pubOut: SendQueue
  workers: WorkerRegistry
  identities: Map<string, Buffer>
  assignment: Assignment
  quorum: ObserverQuorum
  /** Providers that lost a watcher: once their watchers are settled, the remaining ones may
   *  all agree that the provider is down. */
  requorum: Set<string>
  dirtyWorkers: Set<string>
  queue: QueueItem[]
  timers: NodeJS.Timeout[]
  flushTimer: NodeJS.Timeout | null
  /** When the last ASSIGN flush went out, and how many tasks it carried (its pacing). */
  assignedAt: number
  assignedTasks: number
  wake: (() => void) | null
  pruneDue: boolean
  /** The head when the change log was last pruned: with no change since, a prune would delete
   *  nothing, and skipping it keeps an idle leader from opening a pool connection for it. */
  prunedAt: number
  /** Workers that sent READY in this term; only they take part in the assignment. */
  readied: Set<string>
  /** True until TAKEOVER_SETTLE_MS after the takeover: no rebalancing yet. */
  settling: boolean
  damper: FlapDamper
  /** Renewals of ttl checks, in memory only; a new term grants every up provider a full TTL. */
  ttl: TtlTracker
  /** Providers with a deregisterAfterMs, the only ones the reaper looks at. */
  reapable: Set<string>
  /** Committed providers per service, for the quotas. */
  counts: MutableCounts
  /** Every stored token by id (hashes, never secrets), and the list's generation in this term:
   *  0 as loaded, + 1 at each change. Gateways compare it (with the epoch) to their own. */
  tokens: Map<string, TokenRecord>
  tokenGeneration: number
  /** Token changes are stored one at a time, so the generation orders them. */
  tokenChain: Promise<void>
  loop: Promise<void>
  readLoop: Promise<void>
  /** Set while this term's sockets need the process's ZAP handler (cluster-keys.ts). */
  releaseZap?: () => Promise<void>
  /** lastSeen values accepted since the last LAST_SEEN, and the flush that will publish them. */
  seenOut: Map<string, number>
  seenFlush: NodeJS.Immediate | null
}

export function createLeader ({ store, tokens: tokenStore, lock, log, config }: LeaderDeps): Leader {
  const bootstrapHash = config.bootstrapToken === undefined || config.bootstrapToken === '' ? null : hashSecret(config.bootstrapToken)
  const historyLimit = config.historyLimit ?? DEFAULT_HISTORY_LIMIT
  const bad = createBadFrames(log, 'dropped a bad frame')
  const stats = { get badFrames () { return bad.count }, commits: 0, changes: 0, unstorable: 0, takeovers: 0 }
  const committedListeners: Array<(changes: readonly Change[]) => void> = []
  let status: 'stopped' | 'standby' | 'active' = 'stopped'
  let term: Term | null = null
  let campaign: Promise<void> | null = null
  let campaignTimer: NodeJS.Timeout | null = null
  let wakeCampaign: (() => void) | null = null
  let activeWaiters: Array<() => void> = []
  const fatalListeners: Array<(err: Error) => void> = []
  /** Whether this process ever bound --bind: an EADDRINUSE before that is fatal (see below). */
  let everBound = false

  lock.onLost((err) => {
    log.error({ err }, 'lost the leader lock; stepping down')
    void demote()
  })
  // A leader that stopped gracefully says so: a standby takes over at once, not at its next poll.
  lock.onFreed(() => wakeCampaign?.())

  async function campaignLoop (): Promise<void> {
    while (status === 'standby') {
      let acquired = false
      try {
        acquired = await lock.tryAcquire()
      } catch (err) {
        log.warn({ err }, 'leader lock unavailable; retrying')
      }
      if (status !== 'standby') {
        if (acquired) await lock.release()
        return
      }
      if (acquired) {
        try {
          await becomeActive()
          return
        } catch (err) {
          await closeTerm()
          await lock.release()
          if ((err as { code?: string }).code === 'EADDRINUSE' && !everBound) {
            // Someone else (often another Roster) owns this endpoint: retrying would let our
            // followers talk to that process instead. A configuration error, so stop. After a
            // demotion the port may still be held by our own just-closed sockets: retry then.
            status = 'stopped'
            const fatal = new Error(`--bind ${config.bind} (or its event port) is already in use`, { cause: err })
            for (const cb of fatalListeners) cb(fatal)
            return
          }
          log.error({ err }, 'could not take over as leader; releasing the lock and retrying')
        }
      }
      await new Promise<void>((resolve) => {
        wakeCampaign = resolve
        campaignTimer = setTimeout(resolve, CAMPAIGN_INTERVAL_MS)
      })
    }
  }

  async function becomeActive (): Promise<void> {
    const epoch = await store.claimEpoch()
    const loaded = await store.load()
    const tokens = await loadTokens(epoch)
    // stop() came while we waited for Postgres: give the lock back instead of taking over.
    if (status !== 'standby') {
      await lock.release()
      return
    }
    // Limits (socket-limits.ts): a peer that never finishes its handshake is dropped after 5 s,
    // one that announces an oversized frame at once. With keys, only followers get that far.
    // sendTimeout 0: neither socket ever blocks a send (a PUB, and a ROUTER without
    // ROUTER_MANDATORY, drop at the high-water mark instead), and with 0 zeromq.js sends at once
    // instead of first asking libzmq for ZMQ_EVENTS, a getpid() and a poll() per message.
    const security = curveServerOptions(config.clusterKeys)
    const router = new Router({ linger: 0, handover: true, sendHighWaterMark: 100_000, sendTimeout: 0, ...limitOptions(LEADER_ROUTER_MAX_BYTES), ...security })
    const pub = new Publisher({ linger: 0, sendHighWaterMark: 100_000, sendTimeout: 0, ...limitOptions(LEADER_PUB_MAX_BYTES), ...security })
    const quorum = createObserverQuorum()
    const requorum = new Set<string>()
    const assignment = createAssignment({
      watchers: config.watchers,
      onUnwatch: (providerId, workerId) => { quorum.unwatch(providerId, workerId); requorum.add(providerId) }
    })
    const t: Term = {
      epoch,
      head: loaded.revision,
      state: new Map(loaded.providers.map((p) => [p.id, p])),
      router,
      pub,
      routerOut: createSendQueue(router, (err) => log.debug({ err }, 'reply not delivered')),
      pubOut: createSendQueue(pub, (err) => log.error({ err }, 'publish failed')),
      workers: createWorkerRegistry(),
      identities: new Map(),
      assignment,
      quorum,
      requorum,
      dirtyWorkers: new Set(),
      queue: [],
      timers: [],
      flushTimer: null,
      assignedAt: 0,
      assignedTasks: 0,
      wake: null,
      pruneDue: true,
      prunedAt: -1,
      readied: new Set(),
      settling: true,
      // Per term: a new leader starts counting flaps afresh (it has no window of its own yet).
      damper: createFlapDamper(config.flapDamping ?? DEFAULT_FLAP_DAMPING),
      ttl: createTtlTracker(),
      reapable: new Set(),
      counts: createProviderCounts(loaded.providers.map((p) => p.service)),
      tokens: new Map(tokens.map((tk) => [tk.id, tk])),
      tokenGeneration: 0,
      tokenChain: Promise.resolve(),
      loop: Promise.resolve(),
      readLoop: Promise.resolve(),
      seenOut: new Map(),
      seenFlush: null
    }
    const now = Date.now()
    for (const p of t.state.values()) {
      if (needsWorker(p)) assignment.addProvider(p.id)
      if (p.deregisterAfterMs !== undefined) t.reapable.add(p.id)
      // The last renewal reached the previous leader, not us: a full TTL from the takeover, so
      // that a failover never turns a renewing provider down.
      if (p.check?.type === 'ttl' && p.state === 'up') t.ttl.grant(p.id, p.check.ttlMs, epochMs(p.lastSeen) ?? now, now)
    }
    term = t
    // The ZAP handler answers before the first peer can connect; it is released with the term.
    if (config.clusterKeys !== undefined) t.releaseZap = await acquireZapHandler(config.clusterKeys)
    for (const endpoint of config.localBind === undefined ? [config.bind] : [config.bind, config.localBind]) {
      await router.bind(endpoint)
      await pub.bind(pubEndpoint(endpoint))
    }
    everBound = true
    status = 'active'
    stats.takeovers++
    t.readLoop = readLoop(t).catch((err) => {
      log.error({ err }, 'leader read loop failed; stepping down')
      void demote()
    })
    t.loop = processLoop(t).catch((err) => {
      log.error({ err }, 'leader write loop failed; stepping down')
      void demote()
    })
    t.timers.push(
      setInterval(() => beat(t), BEAT_INTERVAL_MS),
      // Both liveness checks run after the turn's socket reads (common/after-reads.ts): after a
      // stall, the workers' PINGs and the providers' renewals that came in time are read first.
      everyAfterReads(() => { if (term === t) expireWorkers(t) }, 250),
      setTimeout(() => { t.settling = false; rebalance(t) }, TAKEOVER_SETTLE_MS),
      setInterval(() => {
        if (t.head === t.prunedAt) return
        t.pruneDue = true
        t.wake?.()
      }, PRUNE_INTERVAL_MS),
      setInterval(() => releaseFlapping(t), FLAP_RELEASE_CHECK_MS),
      everyAfterReads(() => { if (term === t) expireTtls(t) }, TTL_CHECK_INTERVAL_MS),
      setInterval(() => reapDown(t), REAP_CHECK_INTERVAL_MS)
    )
    log.info({ epoch, revision: t.head, providers: t.state.size, bind: config.bind, events: pubEndpoint(config.bind) }, 'active leader')
    for (const resolve of activeWaiters) resolve()
    activeWaiters = []
  }

  /** The stored tokens, with the bootstrap token added when there is no admin token and
   *  ROSTER_BOOTSTRAP_TOKEN was given. Without any admin token, says how to make one. */
  async function loadTokens (epoch: number): Promise<TokenRecord[]> {
    const tokens = await tokenStore.list()
    if (tokens.some((tk) => isAdmin(tk.scopes))) return tokens
    if (bootstrapHash === null) {
      // With auth off (`roster up`'s default) this is advice for later, and its banner already
      // says auth is off: a debug line, not one more line of every start.
      log[config.authOff === true ? 'debug' : 'warn']('no admin token is stored: a gateway with --auth on refuses every request until one is; ' +
        'start the leader with the environment variable ROSTER_BOOTSTRAP_TOKEN set to a secret of at least 32 characters to install one')
      return tokens
    }
    // The same secret may be stored with fewer scopes (an admin demoted it): not reinstalled.
    if (tokens.some((tk) => tk.secretHash === bootstrapHash)) {
      log.warn('no admin token is stored, and ROSTER_BOOTSTRAP_TOKEN is already a token without admin; set another secret to bootstrap')
      return tokens
    }
    const token: TokenRecord = { id: newTokenId(), name: 'bootstrap', scopes: ['admin'], secretHash: bootstrapHash, createdAt: new Date().toISOString(), expiresAt: null }
    await tokenStore.create(epoch, token)
    log.info({ tokenId: token.id }, 'installed the admin token `bootstrap` from ROSTER_BOOTSTRAP_TOKEN; revoke it once you have made your own')
    return [...tokens, token]
  }

  function beat (t: Term): void {
    publish(t, 'BEAT', { epoch: t.epoch, revision: t.head, tokens: t.tokenGeneration })
  }

  /** Stores a token change, then updates the list, announces it (a BEAT at once) and answers. */
  function tokenWrite (t: Term, identity: Buffer, requestId: string, op: TokenOp): void {
    const answer = (result: TokenResult): void => reply(t, identity, 'TOKEN_RESULT', { requestId, epoch: t.epoch, result })
    t.tokenChain = t.tokenChain.then(async () => {
      if (term !== t) return
      try {
        if (op.type === 'create') {
          if (t.tokens.size >= MAX_TOKENS) {
            answer({ ok: false, statusCode: 429, code: 'ROSTER_ERR_TOKEN_QUOTA', message: `at most ${MAX_TOKENS} tokens may exist; revoke some first` })
            return
          }
          await tokenStore.create(t.epoch, op.token)
          if (term !== t) return
          t.tokens.set(op.token.id, op.token)
        } else {
          const found = await tokenStore.revoke(t.epoch, op.id)
          if (term !== t) return
          if (!found) {
            answer({ ok: false, statusCode: 404, code: 'ROSTER_ERR_TOKEN_NOT_FOUND', message: `no token with id '${op.id}'` })
            return
          }
          t.tokens.delete(op.id)
        }
        t.tokenGeneration++
        beat(t)
        answer({ ok: true, statusCode: op.type === 'create' ? 201 : 200, generation: t.tokenGeneration })
      } catch (err) {
        if (err instanceof TokenConflictError) {
          answer({ ok: false, statusCode: 409, code: err.code, message: err.message })
          return
        }
        if (err instanceof FencedError) {
          log.error({ epoch: t.epoch }, 'a newer leader took over; stepping down')
          void demote()
          return
        }
        // Nothing about the registry's head is in doubt (tokens have no revision), so unlike a
        // failed commit this needs no step-down: the gateway answers 503 and the client retries.
        log.error({ err }, 'storing a token change failed')
        answer({ ok: false, statusCode: 503, code: 'ROSTER_ERR_STORE_UNAVAILABLE', message: 'the token could not be stored; retry shortly' })
      }
    })
  }

  async function closeTerm (): Promise<void> {
    const t = term
    if (t === null) return
    term = null
    for (const timer of t.timers) clearInterval(timer)
    if (t.flushTimer) clearTimeout(t.flushTimer)
    if (t.seenFlush) clearImmediate(t.seenFlush)
    t.wake?.()
    // Sockets first: followers see the connection close and fail over at once, instead of
    // waiting out their silence bound behind a commit that may hang (Postgres unreachable).
    // Whatever the loop still does for this term is dropped: reply() and publish() check `term`.
    t.router.close()
    t.pub.close()
    await t.loop
    await t.readLoop
    await t.tokenChain
    await t.releaseZap?.()
  }

  /** Stops acting at once (no more publishes or replies), then campaigns again. */
  async function demote (): Promise<void> {
    if (status !== 'active') return
    status = 'standby'
    await closeTerm()
    await lock.release().catch(() => {})
    campaign = campaignLoop().catch((err) => log.error({ err }, 'campaign failed'))
  }

  async function readLoop (t: Term): Promise<void> {
    for await (const [identity, ...frames] of t.router) {
      if (term !== t || identity === undefined) return
      const msg = decodeOrDrop(frames, Inbound.leaderRouter, bad, { peer: identity.subarray(0, 64).toString('hex') })
      if (msg === null) continue
      handle(t, identity, msg)
    }
  }

  function handle (t: Term, identity: Buffer, msg: Message): void {
    const now = Date.now()
    switch (msg.verb) {
      case 'PING':
        if (msg.body.role === 'worker') workerSeen(t, msg.body.peerId, identity, now, t.readied.has(msg.body.peerId))
        reply(t, identity, 'PONG', { epoch: t.epoch, revision: t.head })
        return
      case 'READY': {
        const { workerId, observations } = msg.body
        t.readied.add(workerId)
        workerSeen(t, workerId, identity, now, true)
        // The worker keeps what it watches while the provider has a free watcher's place:
        // after a leader change every watch stays where it was, so nothing restarts or flaps.
        for (const obs of observations) {
          const p = t.state.get(obs.providerId)
          if (p !== undefined && needsWorker(p)) t.assignment.addProvider(obs.providerId, workerId)
        }
        // The stored lastSeen is as of the provider's last commit: a new leader learns the
        // current one here, before the worker's next summary.
        for (const obs of observations) if (obs.state === 'up' && obs.lastSeen !== null) noteSeen(t, workerId, obs.providerId, obs.lastSeen, now)
        enqueueObservations(t, workerId, observations)
        t.dirtyWorkers.add(workerId)
        rebalance(t)
        return
      }
      case 'REPORT': {
        const { workerId, observations, seq } = msg.body
        workerSeen(t, workerId, identity, now, t.readied.has(workerId))
        enqueueObservations(t, workerId, observations)
        enqueue(t, { kind: 'ack', identity, seq })
        return
      }
      case 'SEEN':
        for (const [providerId, lastSeen] of msg.body.seen) noteSeen(t, msg.body.workerId, providerId, lastSeen, now)
        return
      case 'BYE':
        t.readied.delete(msg.body.workerId)
        if (t.workers.remove(msg.body.workerId)) dropWorker(t, msg.body.workerId)
        return
      case 'SNAPSHOT_REQ': {
        // Every page is taken now, at one revision; they differ only in size (socket-limits.ts).
        const pages = pageByBytes([...t.state.values()])
        pages.forEach((providers, page) => {
          reply(t, identity, 'SNAPSHOT', { requestId: msg.body.requestId, epoch: t.epoch, revision: t.head, providers, page, more: page < pages.length - 1 })
        })
        return
      }
      case 'SINCE_REQ':
        readChangeLog(t, identity, msg.body)
        return
      case 'WRITE':
        for (const { requestId, op } of msg.body.writes) t.queue.push({ kind: 'write', op, identity, requestId })
        t.wake?.()
        return
      case 'TOKEN_WRITE':
        tokenWrite(t, identity, msg.body.requestId, msg.body.op)
        return
      case 'TOKENS_REQ':
        reply(t, identity, 'TOKENS', { requestId: msg.body.requestId, epoch: t.epoch, generation: t.tokenGeneration, tokens: [...t.tokens.values()] })
    }
  }

  // Change-log reads (SINCE_REQ) run MAX_LOG_READS at a time, in arrival order; beyond
  // MAX_QUEUED_LOG_READS waiting, a request is dropped (counted): its gateway times out and retries
  // or sends its feed client a reset snapshot. However many clients resume, their reads hold one
  // pool connection and a bounded share of Postgres, and commits never queue behind them.
  let logReads = 0
  const logReadQueue: Array<() => void> = []
  let droppedLogReads = 0

  function readChangeLog (t: Term, identity: Buffer, body: Body<'SINCE_REQ'>): void {
    const run = (): void => {
      logReads++
      store.changesSince(body.revision, body.limit).then(
        ({ available, changes }) => {
          // One page of bytes at most: the gateway asks again from the last revision it got.
          const events = freshEvents(pageByBytes(changes)[0] ?? [], (id) => t.state.get(id))
          reply(t, identity, 'EVENTS', { requestId: body.requestId, epoch: t.epoch, available, events, head: t.head })
        },
        (err) => log.warn({ err }, 'could not read the change log; the gateway will retry')
      ).finally(() => {
        logReads--
        logReadQueue.shift()?.()
      })
    }
    if (logReads < MAX_LOG_READS) return run()
    if (logReadQueue.length >= MAX_QUEUED_LOG_READS) {
      // Logged at the first drop and every thousandth: a flood of requests is not a flood of lines.
      if (droppedLogReads++ % 1000 === 0) log.warn({ dropped: droppedLogReads, queued: logReadQueue.length }, 'too many change-log reads waiting; dropping requests')
      return
    }
    logReadQueue.push(run)
  }

  /** Renews a worker's liveness; `join` adds it to the assignment if it is not in it. A worker
   *  joins only after its READY in this term, so that after a takeover a PING cannot hand it
   *  providers that another worker is about to claim as its own. */
  function workerSeen (t: Term, workerId: string, identity: Buffer, now: number, join: boolean): void {
    t.identities.set(workerId, identity)
    t.workers.seen(workerId, now)
    if (join && !t.assignment.hasWorker(workerId)) {
      log.info({ workerId }, 'worker joined')
      t.assignment.addWorker(workerId)
      t.dirtyWorkers.add(workerId)
      rebalance(t)
    }
  }

  function expireWorkers (t: Term): void {
    for (const workerId of t.workers.expire(Date.now())) {
      log.warn({ workerId }, 'worker is silent; moving its providers')
      dropWorker(t, workerId)
    }
  }

  function dropWorker (t: Term, workerId: string): void {
    t.assignment.removeWorker(workerId)
    t.identities.delete(workerId)
    rebalance(t)
  }

  function enqueueObservations (t: Term, workerId: string, observations: Observation[]): void {
    for (const obs of observations) {
      // A worker that lost a provider to another (it was presumed dead) must not overrule the
      // provider's current watchers.
      const watchers = t.assignment.watchersOf(obs.providerId)
      const stored = t.state.get(obs.providerId)
      if (!watchers.has(workerId) || stored === undefined) continue
      const judged = t.quorum.observe(workerId, obs, watchers, stored.state)
      if (judged !== null) enqueue(t, { kind: 'observe', obs: judged })
    }
  }

  /** A worker's word that it saw `providerId` at `lastSeen` (a SEEN entry, or an up provider in
   *  its READY): kept if acceptSeen says so, else ignored without a word (late, duplicate and
   *  hostile entries look alike, and a log line per entry would be a flood). */
  function noteSeen (t: Term, workerId: string, providerId: string, lastSeen: number, now: number): void {
    const ms = acceptSeen(t.state.get(providerId), t.assignment.watchersOf(providerId), workerId, lastSeen, now)
    if (ms !== null) storeSeen(t, providerId, ms)
  }

  /** Sets a stored provider's lastSeen in memory (no commit, no revision) if it is later, and
   *  queues it for LAST_SEEN. */
  function storeSeen (t: Term, providerId: string, lastSeen: number): void {
    const p = t.state.get(providerId)
    if (p === undefined || (p.lastSeen !== null && Date.parse(p.lastSeen) >= lastSeen)) return
    t.state.set(providerId, withLastSeen(p, lastSeen))
    queueSeen(t, providerId, lastSeen)
  }

  /** LAST_SEEN goes out once per turn of the event loop: every summary read in one turn (from
   *  any number of workers) is one message to the gateways, or one per PAGE_ITEMS providers. */
  function queueSeen (t: Term, providerId: string, lastSeen: number): void {
    t.seenOut.set(providerId, lastSeen)
    t.seenFlush ??= setImmediate(() => {
      t.seenFlush = null
      const seen = [...t.seenOut]
      t.seenOut.clear()
      for (const page of chunks(seen, PAGE_ITEMS)) publish(t, 'LAST_SEEN', { epoch: t.epoch, seen: page })
    })
  }

  function releaseFlapping (t: Term): void {
    for (const { providerId, state, reason } of t.damper.release(Date.now())) {
      const provider = t.state.get(providerId)
      if (provider === undefined) continue
      const lastSeen = epochMs(provider.lastSeen)
      enqueue(t, { kind: 'observe', released: true, obs: { providerId, state, lastSeen, ...(state === 'down' && reason !== undefined ? { reason } : {}) } })
    }
  }

  function expireTtls (t: Term): void {
    if (t.ttl.size === 0) return
    // A renewal read in this turn was queued ahead of the expiry, which it voids (commitBatch).
    const now = Date.now()
    for (const { providerId, lastRenewal } of t.ttl.expire(now)) {
      enqueue(t, {
        kind: 'observe',
        ttl: true,
        obs: { providerId, state: 'down', lastSeen: lastRenewal, reason: TTL_EXPIRED_REASON, detectedAfterMs: Math.max(0, now - lastRenewal) }
      })
    }
  }

  function reapDown (t: Term): void {
    // After a takeover, workers' READY may still bring a `down` provider back up: wait for them.
    if (t.settling) return
    const now = Date.now()
    for (const id of t.reapable) {
      const p = t.state.get(id)
      if (p === undefined || p.state !== 'down' || p.deregisterAfterMs === undefined) continue
      // A repeat while the first is queued is harmless: decideReap finds nothing to remove.
      if (now - Date.parse(p.stateSince) >= p.deregisterAfterMs) enqueue(t, { kind: 'reap', providerId: id })
    }
  }

  /** Flap damping: a worker's (or the TTL tracker's) up/down becomes `down`/flapping while the
   *  provider is held. A release publishes the state that was held back, as it is. */
  function judge (t: Term, obs: Judgement, now: number, released: boolean): Judgement {
    if (released || (obs.state !== 'up' && obs.state !== 'down')) return obs
    return t.damper.observe(obs.providerId, obs.state, now, obs.reason) ? { ...obs, state: 'down', reason: 'flapping' } : obs
  }

  function enqueue (t: Term, item: QueueItem): void {
    t.queue.push(item)
    t.wake?.()
  }

  async function processLoop (t: Term): Promise<void> {
    while (term === t) {
      if (t.queue.length === 0 && !t.pruneDue) {
        await new Promise<void>((resolve) => { t.wake = resolve })
        t.wake = null
        continue
      }
      if (t.pruneDue) {
        t.pruneDue = false
        t.prunedAt = t.head
        await store.prune(historyLimit).catch((err) => log.warn({ err }, 'pruning the change log failed'))
      }
      const batch = t.queue.splice(0, MAX_BATCH)
      if (batch.length > 0) await commitBatch(t, batch)
    }
  }

  async function commitBatch (t: Term, batch: QueueItem[]): Promise<void> {
    const now = Date.now()
    // Decisions see the batch's own earlier changes through the overlay; the real state is
    // touched only after the commit succeeds.
    const overlay = new Map<string, Provider | null>()
    const lookup: Lookup = (id) => (overlay.has(id) ? (overlay.get(id) ?? undefined) : t.state.get(id))
    const changes: Change[] = []
    const after: Array<() => void> = []
    const answers: WriteAnswer[] = []
    let next = t.head
    const counts = t.counts.overlay()

    const record = (change: PendingChange): Change => {
      const provider = { ...change.provider, revision: ++next }
      overlay.set(provider.id, change.event === 'deregistered' ? null : provider)
      const c: Change = { revision: provider.revision, event: change.event, provider }
      counts.note(c)
      changes.push(c)
      return c
    }

    for (const item of batch) {
      if (item.kind === 'ack') {
        after.push(() => reply(t, item.identity, 'ACK', { epoch: t.epoch, seq: item.seq }))
      } else if (item.kind === 'reap') {
        const change = decideReap(lookup, item.providerId, now)
        if (change !== null) record(change)
      } else if (item.kind === 'observe') {
        if (item.ttl === true) {
          // A renewal processed since the expiry (earlier in this batch, or in one before it)
          // voids it; so does a registration that no longer has a ttl check.
          if (t.ttl.alive(item.obs.providerId, now) !== null || lookup(item.obs.providerId)?.check?.type !== 'ttl') continue
        }
        const change = decideObservation(lookup, judge(t, item.obs, now, item.released === true), now)
        if (change !== null) record(change)
      } else {
        const d = decideWrite(lookup, item.op, now, { limits: config.quotas ?? DEFAULT_QUOTAS, counts })
        let result: WriteResult
        if (!d.ok) {
          result = { ok: false, statusCode: d.statusCode, code: d.code, message: d.message }
        } else if (item.op.type === 'renew') {
          // Kept in memory only; a renewal changes the registry only when the provider was not up.
          let current = d.current as Provider
          t.ttl.renew(current.id, (current.check as TtlCheck).ttlMs, now)
          // A renewal of an up provider is its heartbeat: lastSeen moves, nothing is committed.
          // (`current` may be this batch's uncommitted change: only the stored one is updated.)
          if (current.state === 'up') {
            storeSeen(t, current.id, now)
            current = withLastSeen(current, now)
          }
          const change = current.state === 'up'
            ? null
            : decideObservation(lookup, judge(t, { providerId: current.id, state: 'up', lastSeen: now }, now, false), now)
          const c = change === null ? null : record(change)
          result = c === null
            ? { ok: true, statusCode: 200, revision: current.revision, provider: current }
            : { ok: true, statusCode: 200, revision: c.revision, provider: c.provider }
        } else if (d.change === null) {
          const current = d.current as Provider
          result = { ok: true, statusCode: d.statusCode, revision: current.revision, provider: current }
        } else {
          const c = record(d.change)
          result = c.event === 'deregistered'
            ? { ok: true, statusCode: d.statusCode, revision: c.revision }
            : { ok: true, statusCode: d.statusCode, revision: c.revision, provider: c.provider }
        }
        answers.push({ identity: item.identity, requestId: item.requestId, result })
      }
    }

    if (changes.length > 0) {
      try {
        await store.commit(t.epoch, changes)
      } catch (err) {
        if (err instanceof FencedError) {
          log.error({ epoch: t.epoch }, 'a newer leader took over; stepping down')
          void demote()
          return
        }
        if (err instanceof UnstorableError) {
          await isolateUnstorable(t, batch, err)
          return
        }
        log.error({ err, changes: changes.length }, 'commit failed; writes answered 503, observations will be resent')
        answerWrites(t, answers.map((a) => ({
          ...a,
          result: { ok: false, statusCode: 503, code: 'ROSTER_ERR_STORE_UNAVAILABLE', message: 'the registry could not be stored; retry shortly' }
        })))
        // Whether the batch committed is unknown (the connection may have dropped during COMMIT),
        // so t.head may be stale, and every later batch would reuse its revisions and be refused.
        // Step down: the next term reloads the head from Postgres.
        void demote()
        return
      }
      if (term !== t) return
      stats.commits++
      stats.changes += changes.length
      for (const cb of committedListeners) cb(changes)
      t.head = next
      for (const c of changes) applyCommitted(t, c)
      for (const page of chunks(changes, BATCH_ITEMS)) publish(t, 'EVENT', { epoch: t.epoch, changes: page })
      rebalance(t)
    }
    answerWrites(t, answers)
    for (const fn of after) fn()
  }

  /**
   * Postgres refused something in `batch` for its data and wrote none of it (registry-store.ts
   * says which errors those are). The halves are committed separately, each decided afresh
   * against what the one before committed, down to the single item whose change the database
   * refuses: that item alone is refused (a write is answered 400 ROSTER_ERR_UNSTORABLE, an
   * observation or a reaping is dropped with a log line), everything else commits, nobody steps
   * down, and revisions stay gapless since a refused commit used none. Cost: about 2·log2(n)
   * commits for one culprit in a batch of n, at most 2n − 1 if every item is refused. Caveat: a
   * provider observed up then down within the refused batch counts one more change in its flap
   * window when decided again.
   */
  async function isolateUnstorable (t: Term, batch: QueueItem[], err: UnstorableError): Promise<void> {
    if (batch.length > 1) {
      const half = Math.ceil(batch.length / 2)
      await commitBatch(t, batch.slice(0, half))
      if (term === t) await commitBatch(t, batch.slice(half))
      return
    }
    const item = batch[0]
    stats.unstorable++
    if (item?.kind === 'write') {
      log.warn({ err, op: item.op.type, service: item.op.service, id: item.op.id }, 'the database refused a write; answered 400')
      answerWrites(t, [{
        identity: item.identity,
        requestId: item.requestId,
        result: { ok: false, statusCode: 400, code: err.code, message: `the registry's database refused this write (${err.problem}); nothing was stored` }
      }])
    } else {
      const providerId = item?.kind === 'observe' ? item.obs.providerId : item?.kind === 'reap' ? item.providerId : undefined
      log.warn({ err, kind: item?.kind, providerId }, 'the database refused a change; dropped')
    }
  }

  function applyCommitted (t: Term, c: Change): void {
    const id = c.provider.id
    t.counts.note(c)
    const before = t.state.get(id)
    const watchers = t.assignment.watchersOf(id)
    const renotify = (): void => { for (const w of watchers) t.dirtyWorkers.add(w) }
    if (c.event === 'deregistered') {
      t.state.delete(id)
      t.damper.forget(id)
      t.ttl.forget(id)
      t.reapable.delete(id)
      renotify()
      t.assignment.removeProvider(id)
      t.quorum.forget(id)
      return
    }
    const rewatched = before !== undefined && !sameWatch(before, c.provider)
    // A summary accepted while this change was being committed is fresher than the change.
    const p = keepFresher(before, c.provider, rewatched)
    t.state.set(id, p)
    if (p !== c.provider) queueSeen(t, id, Date.parse(p.lastSeen as string))
    if (p.deregisterAfterMs !== undefined) t.reapable.add(id)
    else t.reapable.delete(id)
    // What was seen at the old endpoint or with the old check says nothing about the new one.
    if (rewatched) t.quorum.forget(id)
    // Workers watch heartbeats and http/tcp checks; ttl checks stay here.
    if (!needsWorker(p)) {
      renotify()
      t.assignment.removeProvider(id)
    } else if (before === undefined || !needsWorker(before)) {
      t.assignment.addProvider(id)
    } else if (rewatched || (before.state === 'maintenance') !== (p.state === 'maintenance')) {
      // A new endpoint or check, or a maintenance that began or ended: its watchers need the new task.
      renotify()
    }
    if (p.check?.type !== 'ttl' || rewatched) t.ttl.forget(id)
    if (before?.state === 'maintenance' && p.state === 'pending' && p.check?.type === 'ttl') {
      // Out of maintenance: a provider that kept renewing is up again at once.
      const lastRenewal = t.ttl.alive(id, Date.now())
      if (lastRenewal !== null) enqueue(t, { kind: 'observe', obs: { providerId: id, state: 'up', lastSeen: lastRenewal } })
    }
  }

  function rebalance (t: Term): void {
    if (!t.settling) {
      for (const w of t.assignment.balance()) t.dirtyWorkers.add(w)
      concludeQuorums(t)
    }
    if (t.dirtyWorkers.size === 0 || t.flushTimer !== null) return
    const paced = t.assignedAt + t.assignedTasks * ASSIGN_PACE_MS_PER_TASK - Date.now()
    t.flushTimer = setTimeout(() => {
      t.flushTimer = null
      if (term !== t) return
      t.assignedAt = Date.now()
      t.assignedTasks = 0
      for (const workerId of t.dirtyWorkers) {
        const identity = t.identities.get(workerId)
        if (identity === undefined) continue
        const tasks: Task[] = []
        for (const id of t.assignment.tasksOf(workerId)) {
          const p = t.state.get(id)
          if (p !== undefined) tasks.push(toTask(p))
        }
        t.assignedTasks += tasks.length
        const pages = Math.max(1, Math.ceil(tasks.length / PAGE_ITEMS))
        for (let page = 0; page < pages; page++) {
          reply(t, identity, 'ASSIGN', { epoch: t.epoch, tasks: tasks.slice(page * PAGE_ITEMS, (page + 1) * PAGE_ITEMS), page, more: page < pages - 1 })
        }
      }
      t.dirtyWorkers.clear()
    }, Math.max(ASSIGN_FLUSH_MS, paced))
  }

  /** A provider whose watcher left (dead, moved, or given the provider's place to another) is
   *  down if every watcher it has now sees it down: the one that left was the last dissent. */
  function concludeQuorums (t: Term): void {
    for (const id of t.requorum) {
      const p = t.state.get(id)
      const judged = p === undefined ? null : t.quorum.conclude(id, t.assignment.watchersOf(id), p.state)
      if (judged !== null) enqueue(t, { kind: 'observe', obs: judged })
    }
    t.requorum.clear()
  }

  function reply<V extends Verb> (t: Term, identity: Buffer, verb: V, body: Body<V>): void {
    if (term !== t) return
    t.routerOut.send([identity, ...encode(verb, body)])
  }

  /** Answers writes with one RESULT per gateway (per BATCH_ITEMS answers), in the order given. */
  function answerWrites (t: Term, answers: WriteAnswer[]): void {
    const byGateway = new Map<string, { identity: Buffer, results: Array<{ requestId: string, result: WriteResult }> }>()
    for (const { identity, requestId, result } of answers) {
      const key = identity.toString('latin1')
      let to = byGateway.get(key)
      if (to === undefined) byGateway.set(key, to = { identity, results: [] })
      to.results.push({ requestId, result })
    }
    for (const { identity, results } of byGateway.values()) {
      for (const page of chunks(results, BATCH_ITEMS)) reply(t, identity, 'RESULT', { epoch: t.epoch, results: page })
    }
  }

  function publish<V extends Verb> (t: Term, verb: V, body: Body<V>): void {
    if (term !== t) return
    t.pubOut.send(encode(verb, body))
  }

  return {
    async start () {
      if (status !== 'stopped') return
      status = 'standby'
      campaign = campaignLoop().catch((err) => log.error({ err }, 'campaign failed'))
    },
    async stop () {
      if (status === 'stopped') return
      status = 'stopped'
      if (campaignTimer) clearTimeout(campaignTimer)
      wakeCampaign?.()
      await campaign
      const t = term
      if (t !== null) {
        // Let what is already queued for peers go out before the sockets close.
        await t.routerOut.drain()
        await t.pubOut.drain()
      }
      await closeTerm()
      await lock.release()
    },
    whenActive () {
      if (status === 'active') return Promise.resolve()
      return new Promise((resolve) => activeWaiters.push(resolve))
    },
    get status () { return status },
    onFatal (cb) { fatalListeners.push(cb) },
    get term () {
      const t = term
      if (t === null || status !== 'active') return null
      return { epoch: t.epoch, tasksPerWorker: () => t.assignment.workers().map((w) => t.assignment.tasksOf(w).size) }
    },
    onCommitted (cb) { committedListeners.push(cb) },
    stats
  }
}

/** Splits items into pages of about PAGE_BYTES of JSON each (at least one item a page), so
 *  that no answer exceeds what the followers' sockets accept (socket-limits.ts). */
function pageByBytes<T> (items: T[]): T[][] {
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
function needsWorker (p: Provider): boolean {
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
