// The gateway's in-memory replica of the registry: the providers at one revision, an index by
// service, and a ring of the latest changes for feeds that resume with `since`. It is the Clone
// pattern's client state; the leader client feeds it, routes and the watch hub read it. It does
// no I/O, never reorders or skips a revision, and never calls a listener out of revision order.
import { isNewerSighting, type Change, type Provider } from '../protocol/model.js'

export type ApplyOutcome = 'applied' | 'duplicate' | 'gap'

export interface ServiceSummary { name: string, providers: number, up: number }

export interface ReplicaListener {
  /** Called synchronously inside `apply`, after the change is visible to reads. */
  change: (c: Change) => void
  /** Called synchronously inside `loadSnapshot`, after the new state is visible to reads. */
  reset: () => void
}

export interface Replica {
  /** The revision the replica reflects; 0 before the first snapshot. */
  readonly revision: number
  /** False until the first snapshot: before it, the replica knows nothing it could answer. */
  readonly ready: boolean
  /** Moves whenever what a read returns may have changed: at every change and snapshot, like the
   *  revision, and also at every lastSeen refresh, which has no revision. Caches of what reads
   *  return key on it. */
  readonly version: number
  /** Replaces everything; history restarts at `revision`; listeners get `reset`. */
  loadSnapshot: (revision: number, providers: readonly Provider[]) => void
  /** Applies a change only when it is `revision + 1`: older is a duplicate, newer is a gap the
   *  caller must repair (missing range or snapshot). Before the first snapshot: always a gap. */
  apply: (change: Change) => ApplyOutcome
  /** Sets the lastSeen of known providers (a LAST_SEEN from the leader: `[id, ms]` pairs) where
   *  it is later than the replica's and the provider is `up` or in `maintenance`. Not a change:
   *  the revision, the history and the listeners are untouched, since lastSeen moving is not an
   *  event. Returns how many providers it moved. */
  refreshLastSeen: (seen: ReadonlyArray<readonly [string, number]>) => number
  /** Providers, sorted by id, of one service or of all (sorted by service, then id). */
  providers: (service?: string) => Provider[]
  provider: (id: string) => Provider | undefined
  /** Services with at least one provider, sorted by name. */
  services: () => ServiceSummary[]
  /** The changes after `since`, oldest first, or null when `since` is older than the retained
   *  ring or ahead of `revision` (or there is no snapshot yet). `since === revision` gives []. */
  historySince: (since: number) => Change[] | null
  /** Resolves true as soon as `revision` is reached, false after `timeoutMs` if not. */
  waitForRevision: (revision: number, timeoutMs: number) => Promise<boolean>
  /** Returns the unsubscribe function. */
  subscribe: (listener: ReplicaListener) => () => void
}

export interface ReplicaOptions {
  /** Changes kept for `historySince`. Default 10 000: at a sustained 1 000 changes/s that is
   *  10 s of history, enough for a client to reconnect to another gateway; older resumes go
   *  to the leader's durable change log. */
  historyLimit?: number
}

interface Waiter { revision: number, resolve: (reached: boolean) => void, timer: NodeJS.Timeout }

export function createReplica (opts: ReplicaOptions = {}): Replica {
  const historyLimit = opts.historyLimit ?? 10_000
  if (!Number.isInteger(historyLimit) || historyLimit < 0) throw new RangeError(`historyLimit must be an integer ≥ 0, got ${historyLimit}`)

  let revision = 0
  let ready = false
  const byId = new Map<string, Provider>()
  const byService = new Map<string, Map<string, Provider>>()
  const upByService = new Map<string, number>()
  const listeners = new Set<ReplicaListener>()
  let waiters: Waiter[] = []

  // The ring holds the changes (revision - size, revision], contiguous because `apply` accepts
  // only revision + 1, so a change's slot follows from its revision.
  const ring: (Change | undefined)[] = new Array<Change | undefined>(historyLimit)
  let ringStart = 0
  let ringSize = 0

  // Sorted read caches, rebuilt lazily after a change touches them: reads are the hot path
  // (benchmarked against an empty Fastify route) and far outnumber changes.
  const listCache = new Map<string, Provider[]>()
  let allCache: Provider[] | null = null
  let servicesCache: ServiceSummary[] | null = null

  function byIdOrder (a: Provider, b: Provider): number {
    return a.id < b.id ? -1 : a.id > b.id ? 1 : 0
  }

  let version = 0

  function invalidate (service: string): void {
    version++
    listCache.delete(service)
    allCache = null
    servicesCache = null
  }

  function remove (id: string): void {
    const old = byId.get(id)
    if (old === undefined) return
    byId.delete(id)
    const members = byService.get(old.service)
    members?.delete(id)
    if (old.state === 'up') upByService.set(old.service, (upByService.get(old.service) ?? 1) - 1)
    if (members !== undefined && members.size === 0) {
      byService.delete(old.service)
      upByService.delete(old.service)
    }
    invalidate(old.service)
  }

  function put (p: Provider): void {
    // Ids are unique registry-wide; removing first also handles a provider that (against the
    // leader's rules) shows up under another service, so the index cannot keep a stale entry.
    remove(p.id)
    byId.set(p.id, p)
    let members = byService.get(p.service)
    if (members === undefined) {
      members = new Map()
      byService.set(p.service, members)
    }
    members.set(p.id, p)
    if (p.state === 'up') upByService.set(p.service, (upByService.get(p.service) ?? 0) + 1)
    invalidate(p.service)
  }

  function record (change: Change): void {
    if (historyLimit === 0) return
    if (ringSize < historyLimit) {
      ring[(ringStart + ringSize) % historyLimit] = change
      ringSize++
    } else {
      ring[ringStart] = change
      ringStart = (ringStart + 1) % historyLimit
    }
  }

  function settleWaiters (): void {
    if (waiters.length === 0) return
    const still: Waiter[] = []
    for (const w of waiters) {
      if (w.revision <= revision) {
        clearTimeout(w.timer)
        w.resolve(true)
      } else {
        still.push(w)
      }
    }
    waiters = still
  }

  // A throwing listener must not leave the others uninformed or the replica half-updated: the
  // state is already consistent when listeners run, so every listener is called and the first
  // error is rethrown to the caller (the leader client), which logs it.
  function notify (call: (l: ReplicaListener) => void): void {
    let failure: unknown = null
    for (const l of [...listeners]) {
      try {
        call(l)
      } catch (err) {
        failure ??= err
      }
    }
    if (failure !== null) throw failure
  }

  return {
    get revision () { return revision },
    get ready () { return ready },
    get version () { return version },

    loadSnapshot (snapshotRevision, providers) {
      if (!Number.isInteger(snapshotRevision) || snapshotRevision < 0) {
        throw new RangeError(`snapshot revision must be an integer ≥ 0, got ${snapshotRevision}`)
      }
      byId.clear()
      byService.clear()
      upByService.clear()
      listCache.clear()
      for (const p of providers) put(p)
      revision = snapshotRevision
      ready = true
      ring.fill(undefined)
      ringStart = 0
      ringSize = 0
      allCache = null
      servicesCache = null
      settleWaiters()
      notify((l) => l.reset())
    },

    apply (change) {
      if (!ready) return 'gap'
      if (change.revision <= revision) return 'duplicate'
      if (change.revision !== revision + 1) return 'gap'
      if (change.event === 'deregistered') remove(change.provider.id)
      else put(change.provider)
      revision = change.revision
      record(change)
      settleWaiters()
      notify((l) => l.change(change))
      return 'applied'
    },

    refreshLastSeen (seen) {
      let moved = 0
      for (const [id, ms] of seen) {
        const p = byId.get(id)
        if (p === undefined || !isNewerSighting(p, ms)) continue
        // A new object, as for a change: a read that already holds the old one is not altered.
        const fresh = { ...p, lastSeen: new Date(ms).toISOString() }
        byId.set(id, fresh)
        byService.get(p.service)?.set(id, fresh)
        invalidate(p.service)
        moved++
      }
      return moved
    },

    providers (service) {
      if (service === undefined) {
        allCache ??= [...byService.keys()].sort().flatMap((s) => cachedList(s))
        return allCache.slice()
      }
      return cachedList(service).slice()
    },

    provider (id) {
      return byId.get(id)
    },

    services () {
      servicesCache ??= [...byService.entries()]
        .map(([name, members]) => ({ name, providers: members.size, up: upByService.get(name) ?? 0 }))
        .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      return servicesCache.map((s) => ({ ...s }))
    },

    historySince (since) {
      if (!ready || !Number.isInteger(since) || since > revision || since < revision - ringSize) return null
      const count = revision - since
      const out: Change[] = new Array<Change>(count)
      for (let i = 0; i < count; i++) {
        out[i] = ring[(ringStart + ringSize - count + i) % historyLimit] as Change
      }
      return out
    },

    waitForRevision (wanted, timeoutMs) {
      if (ready && revision >= wanted) return Promise.resolve(true)
      return new Promise<boolean>((resolve) => {
        const waiter: Waiter = {
          revision: wanted,
          resolve,
          timer: setTimeout(() => {
            waiters = waiters.filter((w) => w !== waiter)
            resolve(false)
          }, timeoutMs)
        }
        waiters.push(waiter)
      })
    },

    subscribe (listener) {
      listeners.add(listener)
      return () => { listeners.delete(listener) }
    }
  }

  function cachedList (service: string): Provider[] {
    let list = listCache.get(service)
    if (list === undefined) {
      const members = byService.get(service)
      // Unknown names are not cached: clients choose them, so caching them would grow without bound.
      if (members === undefined) return []
      list = [...members.values()].sort(byIdOrder)
      listCache.set(service, list)
    }
    return list
  }
}
