// The worker's pure core towards the leader: whether it follows one (its status and epoch), the
// ASSIGN being received page by page, what applying a task list starts and stops, and what the
// worker owes the leader (outbox.ts). Given the leader link's news, the leader's messages, the
// worker's observations and the time, it returns the messages to send and the probe loops to
// start or stop; worker.ts carries them out. No I/O, no timers: tested without sockets
// (test/worker/session.test.ts). It must never send while no leader is followed, and never drop an
// unacknowledged observation of a provider that is still this worker's.
import type { MessageOf, Observation, Task } from '../protocol/messages.js'
import { chunks, PAGE_ITEMS } from '../protocol/socket-limits.js'
import type { CheckAssignOutcome, CheckBook, ProbeJob } from './checks.js'
import type { AssignOutcome, Liveness } from './liveness.js'
import { createOutbox, REPORT_MAX_OBSERVATIONS, REPORT_RESEND_MS, type Selection } from './outbox.js'

/**
 * - `seeking`: no leader (none yet, or it was lost). The worker keeps watching and queues its
 *   observations for the next one.
 * - `joining`: a leader answered and got READY; its first complete ASSIGN has not come yet (the
 *   tasks watched meanwhile are the previous leader's, which are still the truth).
 * - `serving`: the worker watches the task list of its leader's last complete ASSIGN, with the
 *   deltas since applied in order.
 */
export type SessionStatus = 'seeking' | 'joining' | 'serving'

/** A message for the leader. */
export type Outgoing = MessageOf<'READY' | 'REPORT' | 'SEEN' | 'BYE'>

/** What a message from the leader came to. */
export type Received =
  | { kind: 'ack' }
  /** A page of an ASSIGN with more to come. */
  | { kind: 'page' }
  /** An ASSIGN out of order, or a PONG naming one that never came: one was lost. The tasks stay
   *  as they are until the next complete list, which `resync` (READY, the worker's whole view)
   *  asks for. */
  | { kind: 'lost', seq: number, expected: number, resync: Outgoing[] }
  /** An ASSIGN (or a PONG naming one) while the complete list asked for has not come yet:
   *  dropped, as everything until that list. */
  | { kind: 'waiting' }
  /** A PONG that tells nothing new. */
  | { kind: 'pong' }
  /** A task list, applied (complete, or changed by a delta): start and stop these probe loops,
   *  then connect to the heartbeat endpoints liveness.ts now has, or disconnect from those it
   *  no longer has, among `endpoints` (null: any, after a complete list). */
  | { kind: 'assigned', tasks: number, probeStart: ProbeJob[], probeStop: string[], endpoints: ReadonlySet<string> | null }

export interface SessionOptions {
  workerId: string
  liveness: Liveness
  checks: CheckBook
  reportResendMs?: number
}

export interface Session {
  readonly status: SessionStatus
  /** The epoch of the leader followed; null while seeking. */
  readonly epoch: number | null
  /** A leader answered: the first one, or one with a newer epoch (leader-link.ts fences older
   *  ones). Returns READY pages with the worker's whole view, then REPORTs of every
   *  unacknowledged observation again, since a new leader may never have seen them. */
  leaderFound: (epoch: number, now: number) => Outgoing[]
  leaderLost: () => void
  /** Queues an observation for the next REPORT: a transition, or a view the leader lacks. */
  report: (obs: Observation) => void
  receive: (msg: MessageOf<'ASSIGN' | 'ACK' | 'PONG'>, now: number) => Received
  /** REPORTs of the observations never sent (none while seeking). */
  flush: (now: number) => Outgoing[]
  /** REPORTs of the observations never sent or due for a resend (none while seeking). */
  resend: (now: number) => Outgoing[]
  /** SEEN pages of the lastSeen values that moved since the last summary. None while seeking,
   *  and nothing is taken then: the next leader gets READY, which carries every lastSeen. */
  summary: () => Outgoing[]
  /** The worker stops: REPORTs of what was never sent, and BYE (none while seeking). */
  goodbye: (now: number) => Outgoing[]
  /** Observations not yet acknowledged. */
  readonly unacked: number
  readonly stats: { readonly reportsSent: number, readonly observationsResent: number, readonly acks: number }
}

/** A worker that asked for its complete list (READY) and has not had it asks again after this
 *  long: the leader paces complete lists by their size (leader/term-state.ts), 0.5 s at 10,000
 *  tasks, so sooner would only repeat the question. */
export const RESYNC_RETRY_MS = 5000

export function createSession (opts: SessionOptions): Session {
  const { workerId, liveness, checks } = opts
  const outbox = createOutbox(opts.reportResendMs ?? REPORT_RESEND_MS)
  let status: SessionStatus = 'seeking'
  let epoch: number | null = null
  /** The pages of the complete list being received, and the next one expected. */
  let pages: Task[] = []
  let nextPage = 0
  /** The seq of the last ASSIGN taken from this leader; null until its first complete list. */
  let lastSeq: number | null = null
  /** When READY last asked for a complete list that has not come yet (null: none asked). */
  let resyncAskedAt: number | null = null
  const stats = { reportsSent: 0, get observationsResent () { return outbox.resent }, acks: 0 }

  function reports (which: Selection, now: number): Outgoing[] {
    if (status === 'seeking') return []
    const out = outbox.take(which, now).map(({ seq, observations }): Outgoing => ({ verb: 'REPORT', body: { workerId, seq, observations } }))
    stats.reportsSent += out.length
    return out
  }

  function ready (): Outgoing[] {
    // In pages, each a READY of its own (the leader treats each alike), and one even when
    // there is nothing to say: READY is how the leader learns this worker exists.
    const observations = [...liveness.observations(), ...checks.observations()]
    const pagesOf = observations.length === 0 ? [[]] : chunks(observations, REPORT_MAX_OBSERVATIONS)
    return pagesOf.map((page): Outgoing => ({ verb: 'READY', body: { workerId, observations: page } }))
  }

  /** `seq` does not follow the last ASSIGN taken: drop what was being received and ask for the
   *  complete list, unless it was asked for and may still come. */
  function behind (seq: number, now: number): Received {
    if (lastSeq === null && resyncAskedAt !== null && now - resyncAskedAt < RESYNC_RETRY_MS) return { kind: 'waiting' }
    const expected = (lastSeq ?? 0) + 1
    pages = []
    nextPage = 0
    lastSeq = null
    resyncAskedAt = now
    return { kind: 'lost', seq, expected, resync: ready() }
  }

  function take (body: MessageOf<'ASSIGN'>['body'], now: number): Received {
    const page = body.page ?? 0
    // A complete list starts afresh; anything else must follow the last ASSIGN taken, a page the
    // page before it, and a delta a complete list.
    const starts = body.delta !== true && page === 0
    const follows = lastSeq !== null && body.seq === lastSeq + 1 && (body.delta === true ? nextPage === 0 : page === nextPage)
    if (!starts && !follows) return behind(body.seq, now)
    lastSeq = body.seq
    if (body.delta === true) {
      const removed = body.removed ?? []
      const watched = liveness.update(body.tasks, removed, now)
      return applied(watched, checks.update(body.tasks, removed), watched.touched)
    }
    if (page === 0) pages = []
    for (const task of body.tasks) pages.push(task)
    nextPage = page + 1
    if (body.more === true) return { kind: 'page' }
    const list = pages
    pages = []
    nextPage = 0
    resyncAskedAt = null
    return applied(liveness.assign(list, now), checks.assign(list), null)
  }

  /** What a new task list (complete, or changed by a delta) means for the reports and probes. */
  function applied (watched: AssignOutcome, checked: CheckAssignOutcome, endpoints: ReadonlySet<string> | null): Received {
    // Observations of providers now watched elsewhere, or about a previous endpoint, are not
    // ours to report any more.
    const restarted = new Set(watched.restarted)
    outbox.retain((id) => !restarted.has(id) && (liveness.has(id) || checks.has(id)))
    // The leader's view of these differs from ours (for one, it just took them out of
    // maintenance): tell it ours, or they would stay as it says until their next transition.
    for (const obs of [...watched.report, ...checked.report]) outbox.put(obs)
    if (status === 'joining') status = 'serving'
    return { kind: 'assigned', tasks: liveness.size + checks.size, probeStart: checked.start, probeStop: checked.stop, endpoints }
  }

  return {
    get status () { return status },
    get epoch () { return epoch },
    leaderFound (leaderEpoch, now) {
      status = 'joining'
      epoch = leaderEpoch
      pages = []
      nextPage = 0
      lastSeq = null
      resyncAskedAt = now
      return [...ready(), ...reports('all', now)]
    },
    leaderLost () {
      status = 'seeking'
      epoch = null
    },
    report: (obs) => { outbox.put(obs) },
    receive (msg, now) {
      if (msg.verb === 'ASSIGN') return take(msg.body, now)
      if (msg.verb === 'PONG') {
        // The PONG came after every ASSIGN sent before it (one connection, in order).
        const assigned = msg.body.assigned ?? 0
        return status !== 'seeking' && assigned > (lastSeq ?? 0) ? behind(assigned, now) : { kind: 'pong' }
      }
      stats.acks++
      outbox.ack(msg.body.seq)
      return { kind: 'ack' }
    },
    flush (now) { return reports('unsent', now) },
    resend (now) { return reports('due', now) },
    summary () {
      if (status === 'seeking') return []
      const seen = [...liveness.freshlySeen(), ...checks.freshlySeen()]
      return chunks(seen, PAGE_ITEMS).map((page): Outgoing => ({ verb: 'SEEN', body: { workerId, seen: page } }))
    },
    goodbye (now) {
      if (status === 'seeking') return []
      return [...reports('unsent', now), { verb: 'BYE', body: { workerId } }]
    },
    get unacked () { return outbox.size },
    stats
  }
}
