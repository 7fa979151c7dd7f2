// What the worker owes the leader: the latest unacknowledged observation of each provider, with
// the seq of the REPORT that last carried it and when. Pure: no I/O, no timers, time comes in as
// numbers, so the resend and ACK rules are tested with a fake clock (session.ts sends what it
// takes). It must never let an ACK settle an observation that no REPORT up to that seq carried.
import type { Observation } from '../protocol/messages.js'
import { chunks, PAGE_ITEMS } from '../protocol/socket-limits.js'

/** Unacknowledged observations are resent after 1 s: a leader commits a batch in milliseconds,
 *  so one second without an ACK means the REPORT (or its ACK) was lost with a dying leader or
 *  link, and a resend costs the leader only a no-op. worker.ts looks every 250 ms, so a resend
 *  happens 1–1.25 s after the previous send. */
export const REPORT_RESEND_MS = 1000

/** One REPORT (and one READY) carries at most this many observations (about 100 KB of JSON,
 *  2 MB at worst: socket-limits.ts), so a mass transition (a worker cut off from a whole rack)
 *  reaches the leader as several commit-sized batches rather than one huge frame. */
export const REPORT_MAX_OBSERVATIONS = PAGE_ITEMS

/** Which observations to take: never sent; never sent or sent `resendMs` ago or more; all. */
export type Selection = 'unsent' | 'due' | 'all'

/** One REPORT's worth: its seq and what it carries. */
export interface ReportPage { seq: number, observations: Observation[] }

export interface Outbox {
  /** Queues `obs` for the next REPORT in place of its provider's earlier observation, which is
   *  then unsent again: an ACK of a REPORT that carried the earlier one cannot settle it. */
  put: (obs: Observation) => void
  /** Takes the selected observations in order, in pages of REPORT_MAX_OBSERVATIONS, each page
   *  under the next seq, and marks them sent at `now`. */
  take: (which: Selection, now: number) => ReportPage[]
  /** The leader committed REPORT `seq`: settles everything carried by it and earlier seqs. */
  ack: (seq: number) => void
  /** Drops the observations of the providers for which `keep` is false: not ours to report. */
  retain: (keep: (providerId: string) => boolean) => void
  /** Unacknowledged observations (sent or not). */
  readonly size: number
  /** Observations taken again after an earlier send: no ACK came in time, or a new leader. */
  readonly resent: number
}

interface Pending { obs: Observation, seq: number, sentAt: number }

export function createOutbox (resendMs = REPORT_RESEND_MS): Outbox {
  /** Per provider; seq 0: not sent since it was put. */
  const pending = new Map<string, Pending>()
  let lastSeq = 0
  let resent = 0

  function selected (which: Selection, now: number): Pending[] {
    const all = [...pending.values()]
    if (which === 'all') return all
    const cutoff = now - resendMs
    return all.filter((p) => p.seq === 0 || (which === 'due' && p.sentAt <= cutoff))
  }

  return {
    put (obs) {
      pending.set(obs.providerId, { obs, seq: 0, sentAt: 0 })
    },
    take (which, now) {
      return chunks(selected(which, now), REPORT_MAX_OBSERVATIONS).map((page) => {
        const seq = ++lastSeq
        for (const p of page) {
          if (p.seq !== 0) resent++
          p.seq = seq
          p.sentAt = now
        }
        return { seq, observations: page.map((p) => p.obs) }
      })
    },
    ack (seq) {
      for (const [id, p] of pending) if (p.seq !== 0 && p.seq <= seq) pending.delete(id)
    },
    retain (keep) {
      for (const id of pending.keys()) if (!keep(id)) pending.delete(id)
    },
    get size () { return pending.size },
    get resent () { return resent }
  }
}
