// Liveness of the workers as the leader sees them (Paranoid Pirate): each PING, READY or REPORT
// renews a worker's expiry; a worker silent past its expiry is presumed dead. Pure: time is
// passed in, so the rules are tested with a fake clock.

/** Workers PING every 250 ms (protocol/leader-link.ts); 4 missed pings → a dead worker is
 *  dropped 1–1.25 s after its last message, and its providers move to live workers. */
export const WORKER_EXPIRY_MS = 1000

export interface WorkerRegistry {
  /** Renews a worker; returns true when it was not known (new, or expired earlier). */
  seen: (workerId: string, now: number) => boolean
  remove: (workerId: string) => boolean
  /** Removes and returns the workers whose expiry has passed. */
  expire: (now: number) => string[]
  readonly size: number
}

export function createWorkerRegistry (expiryMs = WORKER_EXPIRY_MS): WorkerRegistry {
  const lastSeen = new Map<string, number>()
  return {
    seen (workerId, now) {
      const isNew = !lastSeen.has(workerId)
      lastSeen.set(workerId, now)
      return isNew
    },
    remove: (workerId) => lastSeen.delete(workerId),
    expire (now) {
      const dead: string[] = []
      for (const [w, t] of lastSeen) if (now - t > expiryMs) dead.push(w)
      for (const w of dead) lastSeen.delete(w)
      return dead
    },
    get size () { return lastSeen.size }
  }
}
