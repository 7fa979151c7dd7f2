// Which live workers watch which provider: a pure bookkeeping module of the leader. Each provider
// gets `watchers` distinct workers (fewer while fewer are live: observer quorum, quorum.ts). It
// keeps the load even (no worker more than one watch above another) while moving as few watches as
// possible, and keeps a provider with the workers that last reported it, so that a leader change
// or a worker joining never restarts a healthy watch.

export interface Assignment {
  addWorker: (workerId: string) => void
  /** Removes a worker; its providers lose that watcher until the next balance() replaces it. */
  removeWorker: (workerId: string) => void
  hasWorker: (workerId: string) => boolean
  /** Adds or keeps a provider; `preferred` (a worker that reported it) becomes one of its
   *  watchers while it is live and the provider has a free place. */
  addProvider: (providerId: string, preferred?: string) => void
  removeProvider: (providerId: string) => void
  /** The workers watching the provider (empty while there is none). */
  watchersOf: (providerId: string) => ReadonlySet<string>
  tasksOf: (workerId: string) => ReadonlySet<string>
  workers: () => string[]
  /** Gives every provider its watchers and evens the load. */
  balance: () => void
  /** Notes that the provider's watchers need its task again (its endpoint, check or maintenance
   *  changed): it is in their next changes as watched. */
  retask: (providerId: string) => void
  /** What changed since the last call, per worker: provider → whether the worker now watches
   *  it (a worker just added maps to an empty change). The leader sends exactly that
   *  (term-state.ts takeAssigns), so a move costs two small messages, not two whole lists. */
  takeChanges: () => Map<string, Map<string, boolean>>
  /** Whether takeChanges would return anything. */
  readonly changed: boolean
}

export interface AssignmentOptions {
  /** Distinct workers per provider (`--watchers`), default 1. */
  watchers?: number
  /** Told each time a worker stops watching a provider (moved, removed, or the provider went),
   *  so that what that worker observed is no longer counted. */
  onUnwatch?: (providerId: string, workerId: string) => void
}

const NONE: ReadonlySet<string> = new Set()

export function createAssignment ({ watchers = 1, onUnwatch }: AssignmentOptions = {}): Assignment {
  const byWorker = new Map<string, Set<string>>()
  const byProvider = new Map<string, Set<string>>()
  let changes = new Map<string, Map<string, boolean>>()
  /** Providers that may have fewer watchers than they should (new, or one left), so that
   *  balance() looks at those and not at every provider: it runs after every commit. */
  const understaffed = new Set<string>()
  /** A worker joined while fewer than `watchers` were live: every provider can take one more. */
  let rescanAll = false

  function changed (workerId: string, providerId: string, watched: boolean): void {
    let change = changes.get(workerId)
    if (change === undefined) changes.set(workerId, change = new Map())
    change.set(providerId, watched)
  }

  function place (providerId: string, workerId: string): void {
    byWorker.get(workerId)?.add(providerId)
    byProvider.get(providerId)?.add(workerId)
    changed(workerId, providerId, true)
  }

  function unplace (providerId: string, workerId: string): void {
    byWorker.get(workerId)?.delete(providerId)
    byProvider.get(providerId)?.delete(workerId)
    changed(workerId, providerId, false)
    understaffed.add(providerId)
    onUnwatch?.(providerId, workerId)
  }

  /** The least loaded live worker that does not watch the provider yet. */
  function leastLoadedFor (providerId: string): string | undefined {
    const current = byProvider.get(providerId) ?? NONE
    let best: string | undefined
    let bestSize = Infinity
    for (const [w, set] of byWorker) if (set.size < bestSize && !current.has(w)) { best = w; bestSize = set.size }
    return best
  }

  return {
    addWorker (workerId) {
      if (byWorker.has(workerId)) return
      byWorker.set(workerId, new Set())
      if (!changes.has(workerId)) changes.set(workerId, new Map())
      if (byWorker.size <= watchers) rescanAll = true
    },
    removeWorker (workerId) {
      const set = byWorker.get(workerId)
      if (set === undefined) return
      for (const p of set) unplace(p, workerId)
      byWorker.delete(workerId)
      changes.delete(workerId)
    },
    hasWorker: (workerId) => byWorker.has(workerId),
    addProvider (providerId, preferred) {
      let current = byProvider.get(providerId)
      if (current === undefined) {
        current = new Set()
        byProvider.set(providerId, current)
        understaffed.add(providerId)
      }
      if (preferred !== undefined && byWorker.has(preferred) && !current.has(preferred) && current.size < watchers) {
        place(providerId, preferred)
      }
    },
    removeProvider (providerId) {
      for (const w of byProvider.get(providerId) ?? NONE) unplace(providerId, w)
      byProvider.delete(providerId)
      understaffed.delete(providerId)
    },
    watchersOf: (providerId) => byProvider.get(providerId) ?? NONE,
    tasksOf: (workerId) => byWorker.get(workerId) ?? NONE,
    workers: () => [...byWorker.keys()],
    balance () {
      const wanted = Math.min(watchers, byWorker.size)
      if (wanted > 0) {
        for (const p of rescanAll ? byProvider.keys() : understaffed) {
          const current = byProvider.get(p)
          while (current !== undefined && current.size < wanted) place(p, leastLoadedFor(p) as string)
        }
        understaffed.clear()
        rescanAll = false
      }
      evenOut(byWorker, (providerId, from, to) => {
        unplace(providerId, from)
        place(providerId, to)
      })
    },
    retask (providerId) {
      for (const w of byProvider.get(providerId) ?? NONE) changed(w, providerId, true)
    },
    takeChanges () {
      const out = changes
      changes = new Map()
      return out
    },
    get changed () { return changes.size > 0 }
  }
}

/** Moves one watch at a time from the fullest to the emptiest worker until they differ by at
 *  most one: the fewest moves that reach an even spread. The fullest always holds a provider
 *  the emptiest does not watch (it holds at least two more), so this ends. */
function evenOut (byWorker: ReadonlyMap<string, ReadonlySet<string>>, move: (providerId: string, from: string, to: string) => void): void {
  for (;;) {
    let max: [string, ReadonlySet<string>] | undefined
    let min: [string, ReadonlySet<string>] | undefined
    for (const entry of byWorker) {
      if (max === undefined || entry[1].size > max[1].size) max = entry
      if (min === undefined || entry[1].size < min[1].size) min = entry
    }
    if (max === undefined || min === undefined || max[1].size - min[1].size <= 1) return
    const target = min
    let moved: string | undefined
    for (const p of max[1]) if (!target[1].has(p)) { moved = p; break }
    move(moved as string, max[0], target[0])
  }
}
