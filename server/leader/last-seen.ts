// The leader's rules for lastSeen freshness, a pure module (protocol README §11). A provider's
// lastSeen moves at every heartbeat, but that is not a registry change: it is never committed on
// its own, never numbered, never an event. Workers summarise it (SEEN), the leader keeps the
// freshest value in its in-memory providers (so snapshots, write answers, tasks and the next
// committed change of the provider carry it) and forwards what it accepted to the gateways
// (LAST_SEEN). This module decides what to accept and what a commit must not lose; term-state.ts
// and batch.ts apply that to the term's providers, term.ts does the I/O.
import { isNewerSighting, type Change, type Provider } from '../protocol/model.js'

/** How far ahead of the leader's clock a worker's lastSeen may be and still count: workers on
 *  other hosts run on their own clocks, and NTP keeps them within milliseconds, so a second is
 *  generous; a value beyond it is a broken clock or a hostile peer, and is ignored. A value
 *  within it is taken as `now`, so no reader ever sees a lastSeen in the leader's future. */
export const SEEN_FUTURE_TOLERANCE_MS = 1000

/**
 * The lastSeen (ms) to store for `providerId` from a worker's summary, or null to ignore it:
 * the provider is unknown, not assigned to that worker (like a REPORT), not `up` or in
 * `maintenance` (a pending or down provider's lastSeen comes with its next observation, and a
 * summary that raced a new endpoint must not give the new one the old one's life), too far in the
 * future, or not later than what is stored (summaries from several watchers, or late ones).
 */
export function acceptSeen (stored: Provider | undefined, watchers: ReadonlySet<string>, workerId: string, lastSeen: number, now: number): number | null {
  if (stored === undefined || !watchers.has(workerId)) return null
  if (lastSeen > now + SEEN_FUTURE_TOLERANCE_MS) return null
  const ms = Math.min(lastSeen, now)
  return isNewerSighting(stored, ms) ? ms : null
}

/** The provider with `lastSeen` (ms) set, revision untouched. */
export function withLastSeen (p: Provider, lastSeen: number): Provider {
  return { ...p, lastSeen: new Date(lastSeen).toISOString() }
}

/**
 * What the leader keeps after committing `committed` over `before`: the committed provider, but
 * with `before`'s lastSeen when that is later. The change was decided before its commit, and a
 * summary accepted meanwhile must not be undone by it. Not when the provider is watched anew (a
 * new endpoint or check: what was seen before says nothing about it), and not for a provider that
 * was not seen at all since (null).
 */
export function keepFresher (before: Provider | undefined, committed: Provider, rewatched: boolean): Provider {
  if (before === undefined || rewatched || before.lastSeen === null || committed.lastSeen === null) return committed
  return Date.parse(before.lastSeen) > Date.parse(committed.lastSeen) ? { ...committed, lastSeen: before.lastSeen } : committed
}

/**
 * Change-log entries as the leader serves them (EVENTS): an entry that is still its provider's
 * latest change carries the provider's current lastSeen, so a gateway that repairs a gap (or a
 * feed client that resumes) is as fresh as one that took a snapshot. Older entries are history,
 * and keep the value they were committed with.
 */
export function freshEvents (events: readonly Change[], current: (id: string) => Provider | undefined): Change[] {
  return events.map((c) => {
    const p = current(c.provider.id)
    if (c.event === 'deregistered' || p === undefined || p.revision !== c.revision || p.lastSeen === c.provider.lastSeen) return c
    return { ...c, provider: { ...c.provider, lastSeen: p.lastSeen } }
  })
}
