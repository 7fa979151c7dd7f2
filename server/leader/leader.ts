// The leader: the registry's only writer. This is its outer shell, one per process: it campaigns
// for the leader lock and, while it holds it, runs one term (term.ts: the sockets, the loop and
// the commits of the active leader, over the pure rules of term-state.ts and batch.ts). Its state
// is explicit (stopped, standby, active). It stops acting the moment it loses the lock or is
// fenced by a newer epoch, and campaigns again. At each takeover it loads the API tokens (hashes
// only), installing the bootstrap token when no admin token is stored; the term keeps them, stores
// their changes (fenced likewise) and announces each in the next BEAT (gateway/token-table.ts).
import type { Log } from '../common/log.js'
import { hashSecret, newTokenId } from '../common/token-secret.js'
import { pubEndpoint } from '../protocol/endpoints.js'
import { createBadFrames, type BadFrames } from '../protocol/frames.js'
import type { Change } from '../protocol/model.js'
import { isAdmin } from '../protocol/scopes.js'
import type { TokenRecord } from '../protocol/token-model.js'
import type { LeaderLock } from '../store/leader-lock.js'
import type { RegistryStore } from '../store/registry-store.js'
import type { TokenStore } from '../store/token-store.js'
import { createChangeLogReads, type ChangeLogReads } from './change-log-reads.js'
import { bindTerm, closeTerm, createTerm, drainTerm, startTerm, type Term, type TermConfig, type TermDeps } from './term.js'

/** A standby retries the lock this often: after the active leader's session dies, a standby
 *  takes over within ~0.5 s plus its reload time, inside the 2 s write outage README.md › Running in production promises. */
export const CAMPAIGN_INTERVAL_MS = 500
/** After a takeover the leader waits this long before spreading providers, so that every
 *  worker's READY can first claim the providers it already watches: a worker sends READY at its
 *  first PONG (≤ 250 ms) or after noticing its old leader's silence (≤ 1.25 s). Meanwhile the
 *  workers keep watching their old tasks, so nothing goes unwatched. */
export const TAKEOVER_SETTLE_MS = 1500

/** The term's settings (term.ts TermConfig), and the leader's own. */
export interface LeaderConfig extends TermConfig {
  /** ROSTER_BOOTSTRAP_TOKEN: installed as an admin token named `bootstrap` when the leader takes
   *  over and no admin token is stored. Hashed at once; the secret is not kept. */
  bootstrapToken?: string
  /** `roster up` with auth off: no admin token is the normal case, said at info, not warn. A
   *  standalone leader cannot know its gateways' --auth, so it warns. */
  authOff?: boolean
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
  /** `unstorable`: items the database refused for their data (term.ts isolateUnstorable).
   *  `takeovers`: terms this process began as the active leader. */
  readonly stats: { readonly badFrames: number, commits: number, changes: number, unstorable: number, takeovers: number }
  /** While active: the term's epoch and the tasks of each worker in the assignment (what the
   *  metrics read at scrape time, leader/metrics.ts); null otherwise. */
  readonly term: { readonly epoch: number, readonly tasksPerWorker: () => number[] } | null
  /** Called after each commit with the changes it stored, before they are published. */
  onCommitted: (cb: (changes: readonly Change[]) => void) => void
}

type Status = Leader['status']

/** The leader's state, across its terms. */
interface LeaderState {
  readonly deps: LeaderDeps
  status: Status
  /** The current term: set before its sockets bind (so that a failed takeover closes them),
   *  cleared when it ends. */
  term: Term | null
  campaign: Promise<void> | null
  campaignTimer: NodeJS.Timeout | null
  wakeCampaign: (() => void) | null
  activeWaiters: Array<() => void>
  fatalListeners: Array<(err: Error) => void>
  committedListeners: Array<(changes: readonly Change[]) => void>
  /** Whether this process ever bound --bind: an EADDRINUSE before that is fatal (takeOver). */
  everBound: boolean
  readonly stats: Leader['stats']
  readonly bad: BadFrames
  /** Shared by the terms, so that a new term's reads queue behind the old one's. */
  readonly logReads: ChangeLogReads
  readonly bootstrapHash: string | null
}

export function createLeader (deps: LeaderDeps): Leader {
  const { bootstrapToken } = deps.config
  const bad = createBadFrames(deps.log, 'dropped a bad frame')
  const l: LeaderState = {
    deps,
    status: 'stopped',
    term: null,
    campaign: null,
    campaignTimer: null,
    wakeCampaign: null,
    activeWaiters: [],
    fatalListeners: [],
    committedListeners: [],
    everBound: false,
    stats: { get badFrames () { return bad.count }, commits: 0, changes: 0, unstorable: 0, takeovers: 0 },
    bad,
    logReads: createChangeLogReads(deps.store, deps.log),
    bootstrapHash: bootstrapToken === undefined || bootstrapToken === '' ? null : hashSecret(bootstrapToken)
  }
  deps.lock.onLost((err) => {
    deps.log.error({ err }, 'lost the leader lock; stepping down')
    void demote(l)
  })
  // A leader that stopped gracefully says so: a standby takes over at once, not at its next poll.
  deps.lock.onFreed(() => l.wakeCampaign?.())
  return {
    async start () {
      if (l.status !== 'stopped') return
      l.status = 'standby'
      startCampaign(l)
    },
    stop: async () => { await stop(l) },
    whenActive () {
      if (l.status === 'active') return Promise.resolve()
      return new Promise((resolve) => l.activeWaiters.push(resolve))
    },
    get status () { return l.status },
    onFatal (cb) { l.fatalListeners.push(cb) },
    get term () {
      const t = l.term
      if (t === null || l.status !== 'active') return null
      const { assignment } = t.state
      return { epoch: t.state.epoch, tasksPerWorker: () => assignment.workers().map((w) => assignment.tasksOf(w).size) }
    },
    onCommitted (cb) { l.committedListeners.push(cb) },
    stats: l.stats
  }
}

function startCampaign (l: LeaderState): void {
  l.campaign = campaignLoop(l).catch((err) => l.deps.log.error({ err }, 'campaign failed'))
}

async function campaignLoop (l: LeaderState): Promise<void> {
  const { lock, log } = l.deps
  while (l.status === 'standby') {
    let acquired = false
    try {
      acquired = await lock.tryAcquire()
    } catch (err) {
      log.warn({ err }, 'leader lock unavailable; retrying')
    }
    if (l.status !== 'standby') {
      if (acquired) await lock.release()
      return
    }
    if (acquired && await takeOver(l)) return
    await new Promise<void>((resolve) => {
      l.wakeCampaign = resolve
      l.campaignTimer = setTimeout(resolve, CAMPAIGN_INTERVAL_MS)
    })
  }
}

/** With the lock held: becomes the active leader, or gives the lock back. Returns whether the
 *  campaign is over (active, stopped meanwhile, or a fatal configuration error). */
async function takeOver (l: LeaderState): Promise<boolean> {
  try {
    await becomeActive(l)
    return true
  } catch (err) {
    await endTerm(l)
    await l.deps.lock.release()
    if ((err as { code?: string }).code === 'EADDRINUSE' && !l.everBound) {
      // Someone else (often another Roster) owns this endpoint: retrying would let our
      // followers talk to that process instead. A configuration error, so stop. After a
      // demotion the port may still be held by our own just-closed sockets: retry then.
      l.status = 'stopped'
      const fatal = new Error(`--bind ${l.deps.config.bind} (or its event port) is already in use`, { cause: err })
      for (const cb of l.fatalListeners) cb(fatal)
      return true
    }
    l.deps.log.error({ err }, 'could not take over as leader; releasing the lock and retrying')
    return false
  }
}

async function becomeActive (l: LeaderState): Promise<void> {
  const { store, lock, log, config } = l.deps
  const epoch = await store.claimEpoch()
  const loaded = await store.load()
  const tokens = await loadTokens(l, epoch)
  // stop() came while we waited for Postgres: give the lock back instead of taking over.
  if (l.status !== 'standby') {
    await lock.release()
    return
  }
  const t = createTerm(termDeps(l), epoch, loaded, tokens)
  l.term = t
  await bindTerm(t)
  l.everBound = true
  l.status = 'active'
  l.stats.takeovers++
  startTerm(t)
  log.info({ epoch, revision: t.state.head, providers: t.state.providers.size, bind: config.bind, events: pubEndpoint(config.bind) }, 'active leader')
  for (const resolve of l.activeWaiters) resolve()
  l.activeWaiters = []
}

function termDeps (l: LeaderState): TermDeps {
  const { store, tokens, log, config } = l.deps
  return {
    store,
    tokens,
    log,
    config,
    settleMs: TAKEOVER_SETTLE_MS,
    stats: l.stats,
    bad: l.bad,
    logReads: l.logReads,
    onCommitted: (changes) => { for (const cb of l.committedListeners) cb(changes) },
    stepDown: () => { void demote(l) }
  }
}

/** The stored tokens, with the bootstrap token added when there is no admin token and
 *  ROSTER_BOOTSTRAP_TOKEN was given. Without any admin token, says how to make one. */
async function loadTokens (l: LeaderState, epoch: number): Promise<TokenRecord[]> {
  const { tokens: tokenStore, log, config } = l.deps
  const tokens = await tokenStore.list()
  if (tokens.some((tk) => isAdmin(tk.scopes))) return tokens
  if (l.bootstrapHash === null) {
    // With auth off (`roster up`'s default) this is advice for later, and its banner already
    // says auth is off: a debug line, not one more line of every start.
    log[config.authOff === true ? 'debug' : 'warn']('no admin token is stored: a gateway with --auth on refuses every request until one is; ' +
      'start the leader with the environment variable ROSTER_BOOTSTRAP_TOKEN set to a secret of at least 32 characters to install one')
    return tokens
  }
  // The same secret may be stored with fewer scopes (an admin demoted it): not reinstalled.
  if (tokens.some((tk) => tk.secretHash === l.bootstrapHash)) {
    log.warn('no admin token is stored, and ROSTER_BOOTSTRAP_TOKEN is already a token without admin; set another secret to bootstrap')
    return tokens
  }
  const token: TokenRecord = { id: newTokenId(), name: 'bootstrap', scopes: ['admin'], secretHash: l.bootstrapHash, createdAt: new Date().toISOString(), expiresAt: null }
  await tokenStore.create(epoch, token)
  log.info({ tokenId: token.id }, 'installed the admin token `bootstrap` from ROSTER_BOOTSTRAP_TOKEN; revoke it once you have made your own')
  return [...tokens, token]
}

/** Stops acting at once (no more publishes or replies), then campaigns again. */
async function demote (l: LeaderState): Promise<void> {
  if (l.status !== 'active') return
  l.status = 'standby'
  await endTerm(l)
  await l.deps.lock.release().catch(() => {})
  startCampaign(l)
}

async function stop (l: LeaderState): Promise<void> {
  if (l.status === 'stopped') return
  l.status = 'stopped'
  if (l.campaignTimer) clearTimeout(l.campaignTimer)
  l.wakeCampaign?.()
  await l.campaign
  // Let what is already queued for peers go out before the sockets close.
  if (l.term !== null) await drainTerm(l.term)
  await endTerm(l)
  await l.deps.lock.release()
}

/** The one way a term ends: taken from the state first, so nothing else acts for it. */
async function endTerm (l: LeaderState): Promise<void> {
  const t = l.term
  if (t === null) return
  l.term = null
  await closeTerm(t)
}
