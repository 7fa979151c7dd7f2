// A batch of queued items (term-state.ts QueueItem), a pure module of the leader: decided against
// the term's state before its commit, applied to that state after it. decideBatch asks the
// registry's rules (registry.ts) about each item, numbers the changes from the head, words each
// write's answer, and applies the rules that need the term's memory (flap damping, a renewal kept
// in memory, a ttl expiry voided by a later renewal); it leaves the committed registry untouched,
// since the commit may fail. applyCommit brings the state up to a commit that succeeded. Nothing
// here does I/O: term.ts commits, publishes and answers, in that order.
import { Errors } from '../protocol/error-codes.js'
import { BATCH_ITEMS, type Body, type WriteOp, type WriteResult } from '../protocol/messages.js'
import type { Change, Provider, TtlCheck } from '../protocol/model.js'
import { chunks } from '../protocol/socket-limits.js'
import { keepFresher, withLastSeen } from './last-seen.js'
import type { MutableCounts, QuotaLimits } from './quota.js'
import { decideObservation, decideReap, decideWrite, sameWatch, type Judgement, type Lookup, type PendingChange } from './registry.js'
import { needsWorker, storeSeen, type QueueItem, type TermState } from './term-state.js'

/** A write's answer, sent once its batch is committed. */
export interface WriteAnswer { identity: Buffer, requestId: string, result: WriteResult }

export interface DecidedBatch {
  /** The changes to commit, numbered head + 1, head + 2, … */
  changes: Change[]
  /** Each write's answer, in the batch's order. */
  answers: WriteAnswer[]
  /** The REPORTs to acknowledge (ACK). Like the answers, only after the commit. */
  acks: Array<{ identity: Buffer, seq: number }>
}

/** The 503 a write gets when its batch's commit failed: nothing of it may be assumed stored,
 *  and a retry is safe. */
export const STORE_UNAVAILABLE: WriteResult = {
  ok: false, statusCode: Errors.storeUnavailable.status, code: Errors.storeUnavailable.code, message: 'the registry could not be stored; retry shortly'
}

/** The batch's own view: the term's registry with the batch's earlier changes over it. */
interface Overlay {
  lookup: Lookup
  counts: MutableCounts
  changes: Change[]
  /** Numbers a change with the next revision and makes it visible to later decisions. */
  record: (change: PendingChange) => Change
}

export function decideBatch (s: TermState, batch: readonly QueueItem[], now: number, limits: QuotaLimits): DecidedBatch {
  const o = overlay(s)
  const decided: DecidedBatch = { changes: o.changes, answers: [], acks: [] }
  for (const item of batch) {
    if (item.kind === 'ack') {
      decided.acks.push({ identity: item.identity, seq: item.seq })
    } else if (item.kind === 'reap') {
      const change = decideReap(o.lookup, item.providerId, now)
      if (change !== null) o.record(change)
    } else if (item.kind === 'observe') {
      decideObserved(s, o, item, now)
    } else {
      decided.answers.push({ identity: item.identity, requestId: item.requestId, result: answerWrite(s, o, item.op, now, limits) })
    }
  }
  return decided
}

function overlay (s: TermState): Overlay {
  const over = new Map<string, Provider | null>()
  const changes: Change[] = []
  const counts = s.counts.overlay()
  let next = s.head
  return {
    lookup: (id) => (over.has(id) ? (over.get(id) ?? undefined) : s.providers.get(id)),
    counts,
    changes,
    record (change) {
      const provider = { ...change.provider, revision: ++next }
      over.set(provider.id, change.event === 'deregistered' ? null : provider)
      const c: Change = { revision: provider.revision, event: change.event, provider }
      counts.note(c)
      changes.push(c)
      return c
    }
  }
}

function decideObserved (s: TermState, o: Overlay, item: Extract<QueueItem, { kind: 'observe' }>, now: number): void {
  const id = item.obs.providerId
  // A renewal processed since the expiry (earlier in this batch, or in one before it) voids it;
  // so does a registration that no longer has a ttl check.
  if (item.ttl === true && (s.ttl.alive(id, now) !== null || o.lookup(id)?.check?.type !== 'ttl')) return
  const change = decideObservation(o.lookup, judge(s, item.obs, now, item.released === true), now)
  if (change !== null) o.record(change)
}

/** A write's decision (registry.ts) as its answer: a refusal, the stored provider for a write
 *  that changes nothing, or the change's revision and provider (no provider once deregistered). */
function answerWrite (s: TermState, o: Overlay, op: WriteOp, now: number, limits: QuotaLimits): WriteResult {
  const d = decideWrite(o.lookup, op, now, { limits, counts: o.counts })
  if (!d.ok) return { ok: false, statusCode: d.statusCode, code: d.code, message: d.message }
  if (op.type === 'renew') return answerRenewal(s, o, d.current as Provider, now)
  if (d.change === null) {
    const current = d.current as Provider
    return { ok: true, statusCode: d.statusCode, revision: current.revision, provider: current }
  }
  const c = o.record(d.change)
  return c.event === 'deregistered'
    ? { ok: true, statusCode: d.statusCode, revision: c.revision }
    : { ok: true, statusCode: d.statusCode, revision: c.revision, provider: c.provider }
}

/** A ttl renewal is kept in memory only; it changes the registry only when the provider was not up. */
function answerRenewal (s: TermState, o: Overlay, found: Provider, now: number): WriteResult {
  s.ttl.renew(found.id, (found.check as TtlCheck).ttlMs, now)
  if (found.state === 'up') {
    // A renewal of an up provider is its heartbeat: lastSeen moves, nothing is committed.
    // (`found` may be this batch's uncommitted change: only the stored one is updated.)
    storeSeen(s, found.id, now)
    const current = withLastSeen(found, now)
    return { ok: true, statusCode: 200, revision: current.revision, provider: current }
  }
  const change = decideObservation(o.lookup, judge(s, { providerId: found.id, state: 'up', lastSeen: now }, now, false), now)
  const c = change === null ? null : o.record(change)
  return c === null
    ? { ok: true, statusCode: 200, revision: found.revision, provider: found }
    : { ok: true, statusCode: 200, revision: c.revision, provider: c.provider }
}

/** Flap damping: a worker's (or the TTL tracker's) up/down becomes `down`/flapping while the
 *  provider is held. A release publishes the state that was held back, as it is. */
function judge (s: TermState, obs: Judgement, now: number, released: boolean): Judgement {
  if (released || (obs.state !== 'up' && obs.state !== 'down')) return obs
  return s.damper.observe(obs.providerId, obs.state, now, obs.reason) ? { ...obs, state: 'down', reason: 'flapping' } : obs
}

/** Brings the state up to a commit of `changes` (decideBatch's, in order), which succeeded. */
export function applyCommit (s: TermState, changes: readonly Change[], now: number): void {
  s.head = changes.at(-1)?.revision ?? s.head
  for (const c of changes) applyChange(s, c, now)
}

function applyChange (s: TermState, c: Change, now: number): void {
  const id = c.provider.id
  s.counts.note(c)
  const before = s.providers.get(id)
  if (c.event === 'deregistered') {
    s.providers.delete(id)
    s.damper.forget(id)
    s.ttl.forget(id)
    s.reapable.delete(id)
    s.assignment.removeProvider(id) // its watchers are told to drop it
    s.quorum.forget(id)
    return
  }
  const rewatched = before !== undefined && !sameWatch(before, c.provider)
  // A summary accepted while this change was being committed is fresher than the change.
  const p = keepFresher(before, c.provider, rewatched)
  s.providers.set(id, p)
  if (p !== c.provider) s.seenOut.set(id, Date.parse(p.lastSeen as string))
  if (p.deregisterAfterMs !== undefined) s.reapable.add(id)
  else s.reapable.delete(id)
  // What was seen at the old endpoint or with the old check says nothing about the new one.
  if (rewatched) s.quorum.forget(id)
  rewatch(s, before, p, rewatched)
  if (p.check?.type !== 'ttl' || rewatched) s.ttl.forget(id)
  if (before?.state === 'maintenance' && p.state === 'pending' && p.check?.type === 'ttl') {
    // Out of maintenance: a provider that kept renewing is up again at once.
    const lastRenewal = s.ttl.alive(id, now)
    if (lastRenewal !== null) s.queue.push({ kind: 'observe', obs: { providerId: id, state: 'up', lastSeen: lastRenewal } })
  }
}

/** Workers watch heartbeats and http/tcp checks; ttl checks stay with the leader. */
function rewatch (s: TermState, before: Provider | undefined, p: Provider, rewatched: boolean): void {
  if (!needsWorker(p)) {
    s.assignment.removeProvider(p.id) // its watchers are told to drop it
  } else if (before === undefined || !needsWorker(before)) {
    s.assignment.addProvider(p.id)
  } else if (rewatched || (before.state === 'maintenance') !== (p.state === 'maintenance')) {
    // A new endpoint or check, or a maintenance that began or ended: its watchers need the new task.
    s.assignment.retask(p.id)
  }
}

/** The answer to the one write of a batch that Postgres refused for its data (term.ts
 *  isolateUnstorable): 400, with the database's reason. */
export function refusedAnswer (item: Extract<QueueItem, { kind: 'write' }>, problem: string): WriteAnswer {
  return {
    identity: item.identity,
    requestId: item.requestId,
    result: { ok: false, statusCode: Errors.unstorable.status, code: Errors.unstorable.code, message: `the registry's database refused this write (${problem}); nothing was stored` }
  }
}

/** The answers as RESULT messages: one per gateway (per BATCH_ITEMS answers), in the order given. */
export function resultMessages (answers: readonly WriteAnswer[], epoch: number): Array<{ identity: Buffer, body: Body<'RESULT'> }> {
  const byGateway = new Map<string, { identity: Buffer, results: Array<{ requestId: string, result: WriteResult }> }>()
  for (const { identity, requestId, result } of answers) {
    const key = identity.toString('latin1')
    let to = byGateway.get(key)
    if (to === undefined) byGateway.set(key, to = { identity, results: [] })
    to.results.push({ requestId, result })
  }
  return [...byGateway.values()].flatMap(({ identity, results }) => chunks(results, BATCH_ITEMS).map((page) => ({ identity, body: { epoch, results: page } })))
}
