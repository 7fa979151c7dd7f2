// Flap damping, a pure module of the leader: a provider whose observed presence changes more
// than `maxChanges` times within `windowMs` is held `down` with reason `flapping` until no
// change has been observed for `holdMs`; then its last observed state is published. None of
// Consul, etcd, ZooKeeper, Eureka or Nacos damps over a time window; clients of a flapping
// provider otherwise see (and act on) every bounce. Time is passed in; nothing here does I/O.

export interface FlapDampingConfig {
  /** Changes tolerated within the window; one more makes the provider flapping. Default 5. */
  maxChanges: number
  /** Default 60 s: five bounces a minute is already far beyond a deploy's one restart. */
  windowMs: number
  /** Stable time needed to leave the flapping hold. Default 30 s. */
  holdMs: number
}

export const DEFAULT_FLAP_DAMPING: FlapDampingConfig = { maxChanges: 5, windowMs: 60_000, holdMs: 30_000 }

export type Observed = 'up' | 'down'

export interface FlapDamper {
  /** Records an observation; a repeat of the last observed state (a worker's resend) is not a
   *  change. Returns true while the provider is held. */
  observe: (providerId: string, state: Observed, now: number, reason?: string) => boolean
  isHeld: (providerId: string) => boolean
  /** Providers whose hold has ended, with the state (and down reason) to publish. */
  release: (now: number) => Array<{ providerId: string, state: Observed, reason?: string }>
  forget: (providerId: string) => void
}

interface Track { changes: number[], held: boolean, last: Observed, reason?: string, lastChangeAt: number }

export function createFlapDamper (config: FlapDampingConfig = DEFAULT_FLAP_DAMPING): FlapDamper {
  const tracks = new Map<string, Track>()
  return {
    observe (providerId, state, now, reason) {
      let t = tracks.get(providerId)
      if (t !== undefined && t.last === state) return t.held
      if (t === undefined) tracks.set(providerId, (t = { changes: [], held: false, last: state, lastChangeAt: now }))
      t.changes.push(now)
      t.reason = reason
      // Only the window's changes matter; older ones are dropped so memory stays bounded.
      while (t.changes.length > 0 && (t.changes[0] as number) <= now - config.windowMs) t.changes.shift()
      if (t.changes.length > config.maxChanges + 1) t.changes.shift()
      t.last = state
      t.lastChangeAt = now
      if (t.changes.length > config.maxChanges) t.held = true
      return t.held
    },
    isHeld: (providerId) => tracks.get(providerId)?.held ?? false,
    release (now) {
      const out: Array<{ providerId: string, state: Observed, reason?: string }> = []
      for (const [providerId, t] of tracks) {
        if (t.held && now - t.lastChangeAt >= config.holdMs) {
          t.held = false
          t.changes = []
          out.push({ providerId, state: t.last, ...(t.reason === undefined ? {} : { reason: t.reason }) })
        } else if (!t.held && (t.changes.at(-1) ?? -Infinity) <= now - config.windowMs) {
          tracks.delete(providerId)
        }
      }
      return out
    },
    forget: (providerId) => { tracks.delete(providerId) }
  }
}
