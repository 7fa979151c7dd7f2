// The chaos run's verdicts, as pure functions of what the run recorded and what Postgres holds:
// no I/O here, so each rule is unit-tested on small hand-made histories (test/chaos/checks.test.ts).
// A check returns findings (one line each, the first few of a kind) and never throws on bad
// data: a violation is a finding, not a crash.

/** One row of the change log (`changes`), as the run reads it back. */
export interface LogRow {
  revision: number
  event: string
  providerId: string
  service: string
  state: string
  /** meta.seq of the provider after the change (the chaos writers stamp every write). */
  seq: string | null
}

/** One write a chaos writer issued, with how it ended. */
export interface WriteRecord {
  op: 'put' | 'delete'
  id: string
  service: string
  seq: string
  /** acked: a 2xx came back (with `revision`). ambiguous: no definite answer (timeouts, a
   *  dropped connection, or a retried DELETE answered 404), so it may or may not have
   *  committed. unexpected: a status the run never expects (`detail` says which). */
  outcome: 'acked' | 'ambiguous' | 'unexpected'
  revision?: number
  detail?: string
}

/** A provider row as stored (`providers`). */
export interface StoredRow { id: string, service: string, state: string, seq: string | null }

export interface CheckResult { name: string, ok: boolean, findings: string[], summary: string }

/** At most this many findings of one check are listed; the count says how many there were. */
const MAX_FINDINGS = 8

function result (name: string, findings: string[], summary: string): CheckResult {
  const shown = findings.length > MAX_FINDINGS
    ? [...findings.slice(0, MAX_FINDINGS), `… and ${findings.length - MAX_FINDINGS} more`]
    : findings
  return { name, ok: findings.length === 0, findings: shown, summary }
}

/**
 * Every acknowledged write is in the change log at the revision it was acknowledged with, with
 * the content written; and a provider whose last write was acknowledged is stored as that write
 * left it (present with its seq after a PUT, absent after a DELETE).
 */
export function checkAcknowledged (writes: readonly WriteRecord[], log: readonly LogRow[], stored: ReadonlyMap<string, StoredRow>): CheckResult {
  const findings: string[] = []
  const byRevision = new Map(log.map((r) => [r.revision, r]))
  const last = new Map<string, WriteRecord>()
  let acked = 0
  for (const w of writes) {
    last.set(w.id, w)
    if (w.outcome === 'unexpected') { findings.push(`${w.op} ${w.id} seq ${w.seq}: ${w.detail ?? 'unexpected answer'}`); continue }
    if (w.outcome !== 'acked') continue
    acked++
    const row = w.revision === undefined ? undefined : byRevision.get(w.revision)
    const events = w.op === 'put' ? ['registered', 'updated'] : ['deregistered']
    if (row === undefined) {
      findings.push(`${w.op} ${w.id} seq ${w.seq} acknowledged at revision ${String(w.revision)}, which is not in the change log`)
    } else if (row.providerId !== w.id || !events.includes(row.event) || (w.op === 'put' && row.seq !== w.seq)) {
      findings.push(`${w.op} ${w.id} seq ${w.seq} acknowledged at revision ${row.revision}, but the log has ${row.event} ${row.providerId} seq ${String(row.seq)} there`)
    }
  }
  for (const [id, w] of last) {
    if (w.outcome !== 'acked') continue
    const row = stored.get(id)
    if (w.op === 'put' && row === undefined) findings.push(`${id}: last write (put seq ${w.seq}, revision ${String(w.revision)}) acknowledged, but the provider is not stored`)
    else if (w.op === 'put' && row !== undefined && row.seq !== w.seq) findings.push(`${id}: last write (put seq ${w.seq}) acknowledged, but the stored provider has seq ${String(row.seq)}`)
    else if (w.op === 'delete' && row !== undefined) findings.push(`${id}: deregistration acknowledged at revision ${String(w.revision)}, but the provider is still stored`)
  }
  const ambiguous = writes.filter((w) => w.outcome === 'ambiguous').length
  return result('acknowledged writes are stored', findings, `${acked} acknowledged writes (${ambiguous} ambiguous, not judged) over ${last.size} providers`)
}

/** What one WebSocket watcher saw, across all its connections. */
export interface WatcherRecord {
  name: string
  /** Services it asked for; null: all. */
  services: readonly string[] | null
  /** The revision of its first snapshot: the log is compared from there on. */
  startRevision: number
  events: ReadonlyArray<{ revision: number, event: string, providerId: string, service: string, state: string }>
  /** Anything the watcher itself saw go wrong (a snapshot after a resume, a bad frame). */
  problems: readonly string[]
}

const fmtEvent = (e: { revision: number, event: string, providerId: string, state: string } | undefined): string =>
  e === undefined ? 'nothing' : `${e.revision} ${e.event} ${e.providerId} (${e.state})`

/**
 * A watcher's events strictly increase in revision and equal the change log for its filter from
 * its start revision through `head` (the log's last revision when the run ended): nothing
 * missing, nothing twice, nothing outside its filter, each with the logged event and state.
 */
export function checkWatcher (w: WatcherRecord, log: readonly LogRow[], head: number): CheckResult {
  const findings = [...w.problems]
  for (let i = 1; i < w.events.length; i++) {
    const prev = w.events[i - 1]!
    const cur = w.events[i]!
    if (cur.revision <= prev.revision) findings.push(`revision ${cur.revision} came after ${prev.revision} (not strictly increasing)`)
  }
  const wanted = (service: string): boolean => w.services === null || w.services.includes(service)
  const expected = log.filter((r) => r.revision > w.startRevision && r.revision <= head && wanted(r.service))
  const seen = w.events.filter((e) => e.revision <= head)
  const expectedRevs = new Set(expected.map((r) => r.revision))
  const seenRevs = new Set(seen.map((e) => e.revision))
  const missing = expected.filter((r) => !seenRevs.has(r.revision))
  const extra = seen.filter((e) => !expectedRevs.has(e.revision))
  if (missing.length > 0) findings.push(`missed ${missing.length} logged changes, first: ${missing.slice(0, 3).map(fmtEvent).join('; ')}`)
  if (extra.length > 0) findings.push(`got ${extra.length} events not in the log for its filter, first: ${extra.slice(0, 3).map(fmtEvent).join('; ')}`)
  const byRevision = new Map(expected.map((r) => [r.revision, r]))
  for (const e of seen) {
    const r = byRevision.get(e.revision)
    if (r !== undefined && (r.event !== e.event || r.providerId !== e.providerId || r.state !== e.state)) {
      findings.push(`revision ${e.revision}: got ${fmtEvent(e)}, the log has ${fmtEvent(r)}`)
    }
  }
  const filter = w.services === null ? 'all services' : w.services.join(',')
  return result(`watcher ${w.name} (${filter}) equals the change log`, findings, `${seen.length} events after revision ${w.startRevision} through ${head}, ${expected.length} in the log`)
}

/** Each chaos provider's expected state (from its emitter: beating → up, dead or silent →
 *  down) against the stored one. */
export function checkPresence (expected: ReadonlyMap<string, 'up' | 'down'>, stored: ReadonlyMap<string, StoredRow>): CheckResult {
  const findings: string[] = []
  for (const [id, want] of expected) {
    const got = stored.get(id)?.state
    if (got !== want) findings.push(`${id}: emitter ${want === 'up' ? 'beating' : 'dead or silent'}, stored state ${got ?? '(not stored)'}`)
  }
  const up = [...expected.values()].filter((s) => s === 'up').length
  return result('provider states match their emitters', findings, `${expected.size} providers, ${up} expected up`)
}

/**
 * Each chaos provider's presence events in the change log (`up`/`down`, in revision order)
 * are exactly its emitter's transitions: up once seen, then down for each kill or silence and
 * up for each revival or resume. Consecutive changes of one provider are a round apart, far
 * more than detection takes, so an extra `down` is a false one (a provider reported dead
 * because its watcher or leader died) and a missing one a death nobody noticed.
 */
export function checkTransitions (expected: ReadonlyMap<string, ReadonlyArray<'up' | 'down'>>, log: readonly LogRow[]): CheckResult {
  const findings: string[] = []
  let total = 0
  for (const [id, want] of expected) {
    const got = log.filter((r) => r.providerId === id && (r.event === 'up' || r.event === 'down'))
    total += got.length
    const events = got.map((r) => r.event)
    if (events.join(' ') !== want.join(' ')) {
      const at = events.findIndex((e, i) => e !== want[i])
      const i = at === -1 ? Math.min(events.length, want.length) : at
      findings.push(`${id}: emitter went ${want.join(' ')}, the log says ${events.join(' ') || '(nothing)'}; first difference at #${i + 1}${got[i] === undefined ? '' : ` (revision ${got[i]!.revision})`}`)
    }
  }
  return result('presence changes match the emitters\' transitions', findings, `${total} up/down changes over ${expected.size} providers`)
}

export interface Gap { ms: number, from: number, to: number }

/**
 * The longest span within [start, end] with no acknowledged write: writers try continuously in
 * that window, so each such span is a write outage as a client sees it (plus at most one
 * writer pause).
 */
export function longestGap (ackTimes: readonly number[], start: number, end: number): Gap {
  const times = ackTimes.filter((t) => t >= start && t <= end).sort((a, b) => a - b)
  let best: Gap = { ms: 0, from: start, to: start }
  let prev = start
  for (const t of [...times, end]) {
    if (t - prev > best.ms) best = { ms: t - prev, from: prev, to: t }
    prev = t
  }
  return best
}

/** An acknowledged write: when its (last) request was sent and when the answer came. */
export interface Ack { op: 'put' | 'delete', sentAt: number, at: number }

/** When the first write sent at or after `t` was acknowledged, or null: a write answered after
 *  `t` but sent before it may have been committed before `t`, so it proves nothing. */
export function firstAckSentAfter (acks: readonly Ack[], t: number): number | null {
  let best: number | null = null
  for (const a of acks) if (a.sentAt >= t && (best === null || a.at < best)) best = a.at
  return best
}
