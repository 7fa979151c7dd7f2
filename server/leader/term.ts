// One term of the active leader, its shell: the term's ROUTER (requests from gateways and
// workers) and PUB (the event feed and BEATs), its clocks, its one processing loop and its store
// calls. It carries out what the pure rules decide (term-state.ts for messages and clocks,
// batch.ts for a batch) and commits each batch in one transaction before anything of it is
// published, answered or acknowledged. Once closed it sends nothing more, so a term deposed while
// a commit was in flight leaves no trace on the wire. Campaigning and stepping down are leader.ts's.
import { Publisher, Router } from 'zeromq'
import { everyAfterReads } from '../common/after-reads.js'
import type { Log } from '../common/log.js'
import { acquireZapHandler, curveServerOptions, type ClusterKeys } from '../protocol/cluster-keys.js'
import { Errors } from '../protocol/error-codes.js'
import { pubEndpoint } from '../protocol/endpoints.js'
import { decodeOrDrop, encode, type BadFrames } from '../protocol/frames.js'
import { BATCH_ITEMS, Inbound, type Body, type Message, type TokenOp, type TokenResult, type Verb } from '../protocol/messages.js'
import type { Change, Provider } from '../protocol/model.js'
import { createSendQueue, type SendQueue } from '../protocol/send-queue.js'
import { chunks, LEADER_PUB_MAX_BYTES, LEADER_ROUTER_MAX_BYTES, limitOptions } from '../protocol/socket-limits.js'
import type { TokenRecord } from '../protocol/token-model.js'
import { FencedError, UnstorableError, type RegistryStore } from '../store/registry-store.js'
import { TokenConflictError, type TokenStore } from '../store/token-store.js'
import { applyCommit, decideBatch, refusedAnswer, resultMessages, STORE_UNAVAILABLE, type DecidedBatch, type WriteAnswer } from './batch.js'
import type { ChangeLogReads } from './change-log-reads.js'
import type { FlapDampingConfig } from './flap-damping.js'
import { freshEvents } from './last-seen.js'
import { DEFAULT_QUOTAS, type QuotaLimits } from './quota.js'
import {
  applyTokenChange, assignDelay, createTermState, endSettling, expireTtls, expireWorkers, pageByBytes, pongBody, reapDown, rebalance,
  releaseFlapping, snapshotPages, takeAssigns, takeSeen, tokenRefusal, workerBye, workerPing, workerReady, workerReport,
  workerSummary, type QueueItem, type TermState
} from './term-state.js'
import { TTL_CHECK_INTERVAL_MS } from './ttl-tracker.js'

/** 5 BEATs a second: a gateway that missed the tail of the feed learns the latest revision
 *  within 200 ms and repairs the gap, well inside the feed's "tens of milliseconds" for the
 *  common case where only one event is lost and the next event reveals the gap at once. */
export const BEAT_INTERVAL_MS = 200
/** Bounds one transaction: large enough to amortize a commit under load, small enough that
 *  the first write of a batch is not kept waiting behind thousands of others. */
export const MAX_BATCH = 500
/** Change-log rows kept for `since` resumes; older ones are pruned every PRUNE_INTERVAL_MS. */
export const DEFAULT_HISTORY_LIMIT = 100_000
const PRUNE_INTERVAL_MS = 30_000
/** How often held (flapping) providers are checked for release: well under any hold time. */
const FLAP_RELEASE_CHECK_MS = 500
/** How often providers down longer than their deregisterAfterMs are looked for: such a provider
 *  goes within a quarter of a second of its time (the shortest allowed is 1 s). */
const REAP_CHECK_INTERVAL_MS = 250
/** How often silent workers are looked for: one is dropped 1–1.25 s after its last message
 *  (worker-registry.ts WORKER_EXPIRY_MS plus this). */
const WORKER_CHECK_MS = 250

export interface TermConfig {
  /** ROUTER endpoint; the PUB binds the next port. */
  bind: string
  /** A second ROUTER endpoint (ipc://) for the roles in this machine, its PUB beside it
   *  (protocol/endpoints.ts): `roster up` binds one in a private directory. */
  localBind?: string
  /** Change-log rows kept for `since` resumes (DEFAULT_HISTORY_LIMIT). */
  historyLimit?: number
  flapDamping?: FlapDampingConfig
  /** Workers that watch each provider (`--watchers`, default 1); with more than one, `down`
   *  needs all of them to agree (quorum.ts). */
  watchers?: number
  /** Provider quotas (`--max-providers-per-service`, `--max-providers`); quota.ts. */
  quotas?: QuotaLimits
  /** With keys, the ROUTER and PUB are CURVE servers that admit only the follower key. */
  clusterKeys?: ClusterKeys
}

/** The leader's counters that a term moves (leader.ts Leader.stats). */
export interface TermStats { commits: number, changes: number, unstorable: number }

export interface TermDeps {
  store: RegistryStore
  tokens: TokenStore
  log: Log
  config: TermConfig
  /** How long after the takeover providers are first spread (leader.ts TAKEOVER_SETTLE_MS). */
  settleMs: number
  stats: TermStats
  bad: BadFrames
  logReads: ChangeLogReads
  /** Told each commit's changes, before they are published. */
  onCommitted: (changes: readonly Change[]) => void
  /** The term cannot go on (a newer epoch, a commit in doubt, a failed loop): leader.ts steps down. */
  stepDown: () => void
}

/** Everything that exists only while this process is the active leader. */
export interface Term {
  readonly deps: TermDeps
  readonly state: TermState
  readonly router: Router
  readonly pub: Publisher
  readonly routerOut: SendQueue
  readonly pubOut: SendQueue
  /** Set by closeTerm: from then on nothing is sent and the loops end. */
  closed: boolean
  timers: NodeJS.Timeout[]
  flushTimer: NodeJS.Timeout | null
  seenFlush: NodeJS.Immediate | null
  /** Wakes the processing loop while it waits for work. */
  wake: (() => void) | null
  pruneDue: boolean
  /** The head when the change log was last pruned: with no change since, a prune would delete
   *  nothing, and skipping it keeps an idle leader from opening a pool connection for it. */
  prunedAt: number
  /** Token changes are stored one at a time, so the generation orders them. */
  tokenChain: Promise<void>
  loop: Promise<void>
  readLoop: Promise<void>
  /** Set while this term's sockets need the process's ZAP handler (cluster-keys.ts). */
  releaseZap?: () => Promise<void>
}

/** The term's state and sockets, nothing bound or started yet. */
export function createTerm (deps: TermDeps, epoch: number, loaded: { revision: number, providers: Provider[] }, tokens: TokenRecord[]): Term {
  const { config, log } = deps
  // Limits (socket-limits.ts): a peer that never finishes its handshake is dropped after 5 s,
  // one that announces an oversized frame at once. With keys, only followers get that far.
  // sendTimeout 0: neither socket ever blocks a send (a PUB, and a ROUTER without
  // ROUTER_MANDATORY, drop at the high-water mark instead), and with 0 zeromq.js sends at once
  // instead of first asking libzmq for ZMQ_EVENTS, a getpid() and a poll() per message.
  const security = curveServerOptions(config.clusterKeys)
  const router = new Router({ linger: 0, handover: true, sendHighWaterMark: 100_000, sendTimeout: 0, ...limitOptions(LEADER_ROUTER_MAX_BYTES), ...security })
  const pub = new Publisher({ linger: 0, sendHighWaterMark: 100_000, sendTimeout: 0, ...limitOptions(LEADER_PUB_MAX_BYTES), ...security })
  const s = createTermState({ epoch, ...loaded, tokens, watchers: config.watchers, flapDamping: config.flapDamping }, Date.now())
  return {
    deps,
    state: s,
    router,
    pub,
    routerOut: createSendQueue(router, (err) => log.debug({ err }, 'reply not delivered')),
    pubOut: createSendQueue(pub, (err) => log.error({ err }, 'publish failed')),
    closed: false,
    timers: [],
    flushTimer: null,
    seenFlush: null,
    wake: null,
    pruneDue: true,
    prunedAt: -1,
    tokenChain: Promise.resolve(),
    loop: Promise.resolve(),
    readLoop: Promise.resolve()
  }
}

/** Binds the term's sockets; rejects (EADDRINUSE) when an endpoint is taken. */
export async function bindTerm (t: Term): Promise<void> {
  const { bind, localBind, clusterKeys } = t.deps.config
  // The ZAP handler answers before the first peer can connect; it is released with the term.
  if (clusterKeys !== undefined) t.releaseZap = await acquireZapHandler(clusterKeys)
  for (const endpoint of localBind === undefined ? [bind] : [bind, localBind]) {
    await t.router.bind(endpoint)
    await t.pub.bind(pubEndpoint(endpoint))
  }
}

/** Starts the term's loops and clocks. */
export function startTerm (t: Term): void {
  const { log, settleMs, stepDown } = t.deps
  t.readLoop = readLoop(t).catch((err) => {
    log.error({ err }, 'leader read loop failed; stepping down')
    stepDown()
  })
  t.loop = processLoop(t).catch((err) => {
    log.error({ err }, 'leader write loop failed; stepping down')
    stepDown()
  })
  const silentWorkers = (s: TermState): void => {
    for (const workerId of expireWorkers(s, Date.now())) log.warn({ workerId }, 'worker is silent; moving its providers')
  }
  t.timers.push(
    setInterval(() => beat(t), BEAT_INTERVAL_MS),
    // Both liveness checks run after the turn's socket reads (common/after-reads.ts): after a
    // stall, the workers' PINGs and the providers' renewals that came in time are read first.
    everyAfterReads(() => runRule(t, silentWorkers), WORKER_CHECK_MS),
    everyAfterReads(() => runRule(t, (s) => expireTtls(s, Date.now())), TTL_CHECK_INTERVAL_MS),
    setTimeout(() => runRule(t, endSettling), settleMs),
    setInterval(() => runRule(t, (s) => releaseFlapping(s, Date.now())), FLAP_RELEASE_CHECK_MS),
    setInterval(() => runRule(t, (s) => reapDown(s, Date.now())), REAP_CHECK_INTERVAL_MS),
    setInterval(() => {
      if (t.state.head === t.prunedAt) return
      t.pruneDue = true
      t.wake?.()
    }, PRUNE_INTERVAL_MS)
  )
}

/** Lets what is already queued for peers go out (before a graceful stop closes the sockets). */
export async function drainTerm (t: Term): Promise<void> {
  await t.routerOut.drain()
  await t.pubOut.drain()
}

/** Ends the term: nothing more is sent, its clocks stop, its sockets close, its loops end. */
export async function closeTerm (t: Term): Promise<void> {
  if (t.closed) return
  t.closed = true
  for (const timer of t.timers) clearInterval(timer)
  if (t.flushTimer) clearTimeout(t.flushTimer)
  if (t.seenFlush) clearImmediate(t.seenFlush)
  t.wake?.()
  // Sockets first: followers see the connection close and fail over at once, instead of
  // waiting out their silence bound behind a commit that may hang (Postgres unreachable).
  // Whatever the loop still does for this term is dropped: reply() and publish() check `closed`.
  t.router.close()
  t.pub.close()
  await t.loop
  await t.readLoop
  await t.tokenChain
  await t.releaseZap?.()
}

/** Runs a rule of the term's state, then carries out what it left owed. */
function runRule (t: Term, rule: (s: TermState) => void): void {
  if (t.closed) return
  rule(t.state)
  kick(t)
}

/** After the state changed: wakes the loop for queued items, and arms the ASSIGN and
 *  LAST_SEEN flushes that are owed (term-state.ts assignDelay, takeSeen). */
function kick (t: Term): void {
  if (t.closed) return
  if (t.state.queue.length > 0) t.wake?.()
  if (t.flushTimer === null) {
    const delay = assignDelay(t.state, Date.now())
    if (delay !== null) t.flushTimer = setTimeout(() => flushAssigns(t), delay)
  }
  if (t.state.seenOut.size > 0) t.seenFlush ??= setImmediate(() => flushSeen(t))
}

function flushAssigns (t: Term): void {
  t.flushTimer = null
  if (t.closed) return
  for (const { identity, body } of takeAssigns(t.state, Date.now())) reply(t, identity, 'ASSIGN', body)
}

function flushSeen (t: Term): void {
  t.seenFlush = null
  for (const body of takeSeen(t.state)) publish(t, 'LAST_SEEN', body)
}

async function readLoop (t: Term): Promise<void> {
  for await (const [identity, ...frames] of t.router) {
    if (t.closed || identity === undefined) return
    const msg = decodeOrDrop(frames, Inbound.leaderRouter, t.deps.bad, { peer: identity.subarray(0, 64).toString('hex') })
    if (msg === null) continue
    handle(t, identity, msg)
    kick(t)
  }
}

/** One message from a gateway or a worker: a rule of term-state.ts, or a store call. */
function handle (t: Term, identity: Buffer, msg: Message): void {
  const s = t.state
  const now = Date.now()
  switch (msg.verb) {
    case 'PING':
      if (msg.body.role === 'worker') noteJoin(t, msg.body.peerId, workerPing(s, msg.body.peerId, identity, now))
      reply(t, identity, 'PONG', pongBody(s, msg.body))
      return
    case 'READY':
      noteJoin(t, msg.body.workerId, workerReady(s, msg.body.workerId, identity, msg.body.observations, now))
      return
    case 'REPORT':
      noteJoin(t, msg.body.workerId, workerReport(s, msg.body.workerId, identity, msg.body.seq, msg.body.observations, now))
      return
    case 'SEEN':
      workerSummary(s, msg.body.workerId, msg.body.seen, now)
      return
    case 'BYE':
      workerBye(s, msg.body.workerId)
      return
    case 'SNAPSHOT_REQ':
      for (const page of snapshotPages(s, msg.body.requestId)) reply(t, identity, 'SNAPSHOT', page)
      return
    case 'SINCE_REQ':
      readChangeLog(t, identity, msg.body)
      return
    case 'WRITE':
      for (const { requestId, op } of msg.body.writes) s.queue.push({ kind: 'write', op, identity, requestId })
      return
    case 'TOKEN_WRITE':
      tokenWrite(t, identity, msg.body.requestId, msg.body.op)
      return
    case 'TOKENS_REQ':
      reply(t, identity, 'TOKENS', { requestId: msg.body.requestId, epoch: s.epoch, generation: s.tokenGeneration, tokens: [...s.tokens.values()] })
  }
}

function noteJoin (t: Term, workerId: string, joined: boolean): void {
  if (joined) t.deps.log.info({ workerId }, 'worker joined')
}

function readChangeLog (t: Term, identity: Buffer, { requestId, revision, limit }: Body<'SINCE_REQ'>): void {
  t.deps.logReads.read(revision, limit, ({ available, changes }) => {
    // One page of bytes at most: the gateway asks again from the last revision it got.
    const events = freshEvents(pageByBytes(changes)[0] ?? [], (id) => t.state.providers.get(id))
    reply(t, identity, 'EVENTS', { requestId, epoch: t.state.epoch, available, events, head: t.state.head })
  })
}

async function processLoop (t: Term): Promise<void> {
  const { store, log, config } = t.deps
  while (!t.closed) {
    if (t.state.queue.length === 0 && !t.pruneDue) {
      await new Promise<void>((resolve) => { t.wake = resolve })
      t.wake = null
      continue
    }
    if (t.pruneDue) {
      t.pruneDue = false
      t.prunedAt = t.state.head
      await store.prune(config.historyLimit ?? DEFAULT_HISTORY_LIMIT).catch((err) => log.warn({ err }, 'pruning the change log failed'))
    }
    const batch = t.state.queue.splice(0, MAX_BATCH)
    if (batch.length > 0) await commitBatch(t, batch)
  }
}

/** Decides a batch (batch.ts), commits its changes, and only after the commit applies them,
 *  publishes them, answers the writes and acknowledges the reports. */
async function commitBatch (t: Term, batch: QueueItem[]): Promise<void> {
  const { state: s, deps } = t
  const decided = decideBatch(s, batch, Date.now(), deps.config.quotas ?? DEFAULT_QUOTAS)
  kick(t)
  const { changes } = decided
  if (changes.length > 0) {
    try {
      await deps.store.commit(s.epoch, changes)
    } catch (err) {
      await commitFailed(t, batch, decided, err)
      return
    }
    if (t.closed) return
    deps.stats.commits++
    deps.stats.changes += changes.length
    deps.onCommitted(changes)
    applyCommit(s, changes, Date.now())
    for (const page of chunks(changes, BATCH_ITEMS)) publish(t, 'EVENT', { epoch: s.epoch, changes: page })
    rebalance(s)
    kick(t)
  }
  answerWrites(t, decided.answers)
  for (const { identity, seq } of decided.acks) reply(t, identity, 'ACK', { epoch: s.epoch, seq })
}

async function commitFailed (t: Term, batch: QueueItem[], decided: DecidedBatch, err: unknown): Promise<void> {
  const { log, stepDown } = t.deps
  if (err instanceof FencedError) {
    log.error({ epoch: t.state.epoch }, 'a newer leader took over; stepping down')
    stepDown()
  } else if (err instanceof UnstorableError) {
    await isolateUnstorable(t, batch, err)
  } else {
    log.error({ err, changes: decided.changes.length }, 'commit failed; writes answered 503, observations will be resent')
    answerWrites(t, decided.answers.map((a) => ({ ...a, result: STORE_UNAVAILABLE })))
    // Whether the batch committed is unknown (the connection may have dropped during COMMIT),
    // so the head may be stale, and every later batch would reuse its revisions and be refused.
    // Step down: the next term reloads the head from Postgres.
    stepDown()
  }
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
    if (!t.closed) await commitBatch(t, batch.slice(half))
    return
  }
  const item = batch[0] as QueueItem
  const { log, stats } = t.deps
  stats.unstorable++
  if (item.kind === 'write') {
    log.warn({ err, op: item.op.type, service: item.op.service, id: item.op.id }, 'the database refused a write; answered 400')
    answerWrites(t, [refusedAnswer(item, err.problem)])
  } else {
    const providerId = item.kind === 'observe' ? item.obs.providerId : item.kind === 'reap' ? item.providerId : undefined
    log.warn({ err, kind: item.kind, providerId }, 'the database refused a change; dropped')
  }
}

/** Stores a token change, then updates the list, announces it (a BEAT at once) and answers. */
function tokenWrite (t: Term, identity: Buffer, requestId: string, op: TokenOp): void {
  t.tokenChain = t.tokenChain.then(async () => {
    if (t.closed) return
    const result = await storeToken(t, op).catch((err) => tokenFailure(t, err))
    if (result !== null) reply(t, identity, 'TOKEN_RESULT', { requestId, epoch: t.state.epoch, result })
  })
}

/** The answer to a stored token change; null when the term ended meanwhile (nobody to tell). */
async function storeToken (t: Term, op: TokenOp): Promise<TokenResult | null> {
  const { state: s, deps } = t
  const refusal = tokenRefusal(s, op)
  if (refusal !== null) return refusal
  let found = true
  if (op.type === 'create') await deps.tokens.create(s.epoch, op.token)
  else found = await deps.tokens.revoke(s.epoch, op.id)
  if (t.closed) return null
  const result = applyTokenChange(s, op, found)
  if (result.ok) beat(t)
  return result
}

function tokenFailure (t: Term, err: unknown): TokenResult | null {
  const { log, stepDown } = t.deps
  if (err instanceof TokenConflictError) return { ok: false, statusCode: Errors.tokenConflict.status, code: err.code, message: err.message }
  if (err instanceof FencedError) {
    log.error({ epoch: t.state.epoch }, 'a newer leader took over; stepping down')
    stepDown()
    return null
  }
  // Nothing about the registry's head is in doubt (tokens have no revision), so unlike a
  // failed commit this needs no step-down: the gateway answers 503 and the client retries.
  log.error({ err }, 'storing a token change failed')
  return { ok: false, statusCode: Errors.storeUnavailable.status, code: Errors.storeUnavailable.code, message: 'the token could not be stored; retry shortly' }
}

function beat (t: Term): void {
  publish(t, 'BEAT', { epoch: t.state.epoch, revision: t.state.head, tokens: t.state.tokenGeneration })
}

function answerWrites (t: Term, answers: readonly WriteAnswer[]): void {
  for (const { identity, body } of resultMessages(answers, t.state.epoch)) reply(t, identity, 'RESULT', body)
}

function reply<V extends Verb> (t: Term, identity: Buffer, verb: V, body: Body<V>): void {
  if (t.closed) return
  t.routerOut.send([identity, ...encode(verb, body)])
}

function publish<V extends Verb> (t: Term, verb: V, body: Body<V>): void {
  if (t.closed) return
  t.pubOut.send(encode(verb, body))
}
