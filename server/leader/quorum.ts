// Observer quorum, a pure module of the leader: with `--watchers N` several workers watch each
// provider, and the leader declares it `down` only when every one of its current watchers sees
// it down; any watcher that still receives heartbeats keeps it `up`. A worker cut off from a
// provider (its own network, its own overload) is thereby told apart from a provider that died:
// the first is one dissenting view, the second makes all watchers agree within milliseconds of
// each other (each sees the same TCP close or the same silence). With one watcher, every
// observation passes through unchanged. Nothing here does I/O.
import type { Observation } from '../protocol/messages.js'
import type { ProviderState } from '../protocol/model.js'
import type { Judgement } from './registry.js'

export interface ObserverQuorum {
  /** Records one watcher's observation; returns what the provider's watchers conclude
   *  together, or null while some watcher still sees it alive. `stored` is the provider's
   *  current state: what a watcher that has not reported yet was told when it started. */
  observe: (workerId: string, obs: Observation, watchers: ReadonlySet<string>, stored: ProviderState) => Judgement | null
  /** After the watcher set changed: `down` if every remaining watcher sees the provider down. */
  conclude: (providerId: string, watchers: ReadonlySet<string>, stored: ProviderState) => Judgement | null
  /** A worker stopped watching the provider: its view no longer counts (nor later, if it is
   *  given the provider again: it starts afresh from the state its new task carries). */
  unwatch: (providerId: string, workerId: string) => void
  forget: (providerId: string) => void
}

export function createObserverQuorum (): ObserverQuorum {
  const views = new Map<string, Map<string, Observation>>()

  /** The down every watcher agrees on, or null. It carries the freshest sign of life any of
   *  them had (lastSeen), and the time from there to the decision that `latest` completed. */
  function agreedDown (providerId: string, watchers: ReadonlySet<string>, stored: ProviderState, latest?: Observation): Judgement | null {
    const seen = views.get(providerId)
    let freshest: Observation | undefined
    for (const w of watchers) {
      const view = seen?.get(w)
      if (view === undefined ? stored !== 'down' : view.state !== 'down') return null
      if (view !== undefined && (freshest === undefined || (view.lastSeen ?? -Infinity) > (freshest.lastSeen ?? -Infinity))) freshest = view
    }
    const decided = latest ?? freshest
    if (decided === undefined) return null
    if (freshest?.lastSeen == null || decided.lastSeen === null || freshest.lastSeen <= decided.lastSeen) return decided
    // Another watcher heard from the provider after the deciding one did (clocks of different
    // hosts may differ; the clamp keeps a skew from making the figure negative).
    const later = freshest.lastSeen - decided.lastSeen
    return {
      ...decided,
      lastSeen: freshest.lastSeen,
      ...(decided.detectedAfterMs === undefined ? {} : { detectedAfterMs: Math.max(0, decided.detectedAfterMs - later) })
    }
  }

  return {
    observe (workerId, obs, watchers, stored) {
      let seen = views.get(obs.providerId)
      if (seen === undefined) {
        seen = new Map()
        views.set(obs.providerId, seen)
      }
      seen.set(workerId, obs)
      if (obs.state !== 'down' || watchers.size <= 1) return obs
      return agreedDown(obs.providerId, watchers, stored, obs)
    },
    conclude (providerId, watchers, stored) {
      if (watchers.size === 0 || stored === 'down') return null
      return agreedDown(providerId, watchers, stored)
    },
    unwatch (providerId, workerId) {
      views.get(providerId)?.delete(workerId)
    },
    forget (providerId) {
      views.delete(providerId)
    }
  }
}
