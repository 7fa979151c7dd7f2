// TTL checks, a pure module of the leader: when each ttl-checked provider last renewed and when
// that renewal runs out. Renewals live only here, in the active leader's memory: they can come
// several times a second per provider and a Postgres commit each would cost more than the whole
// rest of the registry, while what they prove (the provider is alive) is only news when it
// changes the state, which the leader does commit. Time is passed in; nothing here does I/O.

/** How often the leader looks for expired TTLs: an expiry is noticed at most this late. Small
 *  next to the shortest TTL (100 ms), and a pass over the tracked providers costs microseconds
 *  per thousand. */
export const TTL_CHECK_INTERVAL_MS = 25

export interface Expired { providerId: string, lastRenewal: number, ttlMs: number }

export interface TtlTracker {
  /** A renewal at `now`: the provider is alive until `now + ttlMs`. */
  renew: (providerId: string, ttlMs: number, now: number) => void
  /** Grants a full `ttlMs` from `now` without a renewal: after a leader takeover (the new leader
   *  cannot know when the last renewal reached its predecessor) or a changed ttlMs. `lastRenewal`
   *  is what was last known (for lastSeen and detectedAfterMs). */
  grant: (providerId: string, ttlMs: number, lastRenewal: number, now: number) => void
  /** Removes and returns every provider whose TTL ran out at or before `now`. */
  expire: (now: number) => Expired[]
  /** The last renewal of a provider whose TTL has not run out, or null. */
  alive: (providerId: string, now: number) => number | null
  forget: (providerId: string) => void
  readonly size: number
}

interface Entry { lastRenewal: number, deadline: number, ttlMs: number }

export function createTtlTracker (): TtlTracker {
  const entries = new Map<string, Entry>()
  return {
    renew (providerId, ttlMs, now) {
      entries.set(providerId, { lastRenewal: now, deadline: now + ttlMs, ttlMs })
    },
    grant (providerId, ttlMs, lastRenewal, now) {
      entries.set(providerId, { lastRenewal, deadline: now + ttlMs, ttlMs })
    },
    expire (now) {
      const out: Expired[] = []
      for (const [providerId, e] of entries) {
        if (e.deadline > now) continue
        entries.delete(providerId)
        out.push({ providerId, lastRenewal: e.lastRenewal, ttlMs: e.ttlMs })
      }
      return out
    },
    alive (providerId, now) {
      const e = entries.get(providerId)
      return e === undefined || e.deadline <= now ? null : e.lastRenewal
    },
    forget (providerId) { entries.delete(providerId) },
    get size () { return entries.size }
  }
}
