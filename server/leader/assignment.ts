// Which live worker watches which provider: a pure bookkeeping module of the leader. It keeps
// the load even (no worker more than one provider above another) while moving as few providers
// as possible, and keeps a provider with the worker that last reported it, so that a leader
// change or a worker joining never restarts a healthy watch.

export interface Assignment {
  addWorker: (workerId: string) => void
  /** Removes a worker; its providers go back to the unassigned pool. */
  removeWorker: (workerId: string) => void
  hasWorker: (workerId: string) => boolean
  /** Adds or keeps a provider; `preferred` (the worker that reported it) wins while it is live. */
  addProvider: (providerId: string, preferred?: string) => void
  removeProvider: (providerId: string) => void
  ownerOf: (providerId: string) => string | undefined
  tasksOf: (workerId: string) => ReadonlySet<string>
  workers: () => string[]
  /** Assigns the unassigned pool and evens the load; returns the workers whose set changed. */
  balance: () => Set<string>
}

export function createAssignment (): Assignment {
  const byWorker = new Map<string, Set<string>>()
  const owner = new Map<string, string>()
  const unassigned = new Set<string>()
  const touched = new Set<string>()

  function place (providerId: string, workerId: string): void {
    byWorker.get(workerId)?.add(providerId)
    owner.set(providerId, workerId)
    unassigned.delete(providerId)
    touched.add(workerId)
  }

  function unplace (providerId: string): void {
    const w = owner.get(providerId)
    if (w === undefined) return
    byWorker.get(w)?.delete(providerId)
    owner.delete(providerId)
    touched.add(w)
  }

  function leastLoaded (): string | undefined {
    let best: string | undefined
    let bestSize = Infinity
    for (const [w, set] of byWorker) if (set.size < bestSize) { best = w; bestSize = set.size }
    return best
  }

  return {
    addWorker (workerId) {
      if (byWorker.has(workerId)) return
      byWorker.set(workerId, new Set())
      touched.add(workerId)
    },
    removeWorker (workerId) {
      const set = byWorker.get(workerId)
      if (set === undefined) return
      for (const p of set) { owner.delete(p); unassigned.add(p) }
      byWorker.delete(workerId)
      touched.delete(workerId)
    },
    hasWorker: (workerId) => byWorker.has(workerId),
    addProvider (providerId, preferred) {
      if (preferred !== undefined && byWorker.has(preferred)) {
        if (owner.get(providerId) !== preferred) { unplace(providerId); place(providerId, preferred) }
        return
      }
      if (!owner.has(providerId)) unassigned.add(providerId)
    },
    removeProvider (providerId) {
      unplace(providerId)
      unassigned.delete(providerId)
    },
    ownerOf: (providerId) => owner.get(providerId),
    tasksOf: (workerId) => byWorker.get(workerId) ?? new Set(),
    workers: () => [...byWorker.keys()],
    balance () {
      if (byWorker.size > 0) {
        for (const p of unassigned) place(p, leastLoaded() as string)
        // Move one provider at a time from the fullest to the emptiest worker until they differ
        // by at most one: the fewest moves that reach an even spread.
        for (;;) {
          let max: [string, Set<string>] | undefined
          let min: [string, Set<string>] | undefined
          for (const entry of byWorker) {
            if (max === undefined || entry[1].size > max[1].size) max = entry
            if (min === undefined || entry[1].size < min[1].size) min = entry
          }
          if (max === undefined || min === undefined || max[1].size - min[1].size <= 1) break
          const moved = max[1].values().next().value as string
          unplace(moved)
          place(moved, min[0])
        }
      }
      const changed = new Set(touched)
      touched.clear()
      return changed
    }
  }
}
