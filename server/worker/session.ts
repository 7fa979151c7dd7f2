// The worker's pure core towards the leader: whether it follows one (its status and epoch), the
// ASSIGN being received page by page, what applying a task list starts and stops, and what the
// worker owes the leader (outbox.ts). Given the leader link's news, the leader's messages, the
// worker's observations and the time, it returns the messages to send and the probe loops to
// start or stop; worker.ts carries them out. No I/O, no timers: tested without sockets
// (test/worker/session.test.ts). It must never send while no leader is followed, and never drop an
// unacknowledged observation of a provider that is still this worker's.
import type { MessageOf, Observation, Task } from '../protocol/messages.js'
import { chunks, PAGE_ITEMS } from '../protocol/socket-limits.js'
import type { CheckBook, ProbeJob } from './checks.js'
import type { Liveness } from './liveness.js'
import { createOutbox, REPORT_MAX_OBSERVATIONS, REPORT_RESEND_MS, type Selection } from './outbox.js'

/**
 * - `seeking`: no leader (none yet, or it was lost). The worker keeps watching and queues its
 *   observations for the next one.
 * - `joining`: a leader answered and got READY; its first complete ASSIGN has not come yet (the
 *   tasks watched meanwhile are the previous leader's, which are still the truth).
 * - `serving`: the worker watches the task list of its leader's last complete ASSIGN.
 */
export type SessionStatus = 'seeking' | 'joining' | 'serving'

/** A message for the leader. */
export type Outgoing = MessageOf<'READY' | 'REPORT' | 'SEEN' | 'BYE'>

/** What a message from the leader came to. */
export type Received =
  | { kind: 'ack' }
  /** A page of an ASSIGN with more to come. */
  | { kind: 'page' }
  /** A page out of order (one was lost): the pages so far are dropped, the tasks stay as they
   *  were until the next complete ASSIGN (the leader sends one at the next READY). */
  | { kind: 'lost-page', page: number, expected: number }
  /** A complete task list, applied: start and stop these probe loops, then connect to the
   *  heartbeat endpoints liveness.ts now has. */
  | { kind: 'assigned', tasks: number, probeStart: ProbeJob[], probeStop: string[] }

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
  receive: (msg: MessageOf<'ASSIGN' | 'ACK'>, now: number) => Received
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

export function createSession (opts: SessionOptions): Session {
  const { workerId, liveness, checks } = opts
  const outbox = createOutbox(opts.reportResendMs ?? REPORT_RESEND_MS)
  let status: SessionStatus = 'seeking'
  let epoch: number | null = null
  /** The pages of the ASSIGN being received (protocol/messages.ts), and the next one expected. */
  let pages: Task[] = []
  let nextPage = 0
  const stats = { reportsSent: 0, get observationsResent () { return outbox.resent }, acks: 0 }

  function reports (which: Selection, now: number): Outgoing[] {
    if (status === 'seeking') return []
    const out = outbox.take(which, now).map(({ seq, observations }): Outgoing => ({ verb: 'REPORT', body: { workerId, seq, observations } }))
    stats.reportsSent += out.length
    return out
  }

  function takePage (body: MessageOf<'ASSIGN'>['body'], now: number): Received {
    const page = body.page ?? 0
    if (page !== 0 && page !== nextPage) {
      const expected = nextPage
      pages = []
      nextPage = 0
      return { kind: 'lost-page', page, expected }
    }
    if (page === 0) pages = []
    for (const task of body.tasks) pages.push(task)
    nextPage = page + 1
    if (body.more === true) return { kind: 'page' }
    const tasks = pages
    pages = []
    nextPage = 0
    return apply(tasks, now)
  }

  function apply (tasks: Task[], now: number): Received {
    const watched = liveness.assign(tasks, now)
    const checked = checks.assign(tasks)
    // Observations of providers now watched elsewhere, or about a previous endpoint, are not
    // ours to report any more.
    const restarted = new Set(watched.restarted)
    outbox.retain((id) => !restarted.has(id) && (liveness.has(id) || checks.has(id)))
    // The leader's view of these differs from ours (for one, it just took them out of
    // maintenance): tell it ours, or they would stay as it says until their next transition.
    for (const obs of [...watched.report, ...checked.report]) outbox.put(obs)
    if (status === 'joining') status = 'serving'
    return { kind: 'assigned', tasks: tasks.length, probeStart: checked.start, probeStop: checked.stop }
  }

  return {
    get status () { return status },
    get epoch () { return epoch },
    leaderFound (leaderEpoch, now) {
      status = 'joining'
      epoch = leaderEpoch
      pages = []
      nextPage = 0
      // In pages, each a READY of its own (the leader treats each alike), and one even when
      // there is nothing to say: READY is how the leader learns this worker exists.
      const observations = [...liveness.observations(), ...checks.observations()]
      const ready = observations.length === 0 ? [[]] : chunks(observations, REPORT_MAX_OBSERVATIONS)
      return [
        ...ready.map((page): Outgoing => ({ verb: 'READY', body: { workerId, observations: page } })),
        ...reports('all', now)
      ]
    },
    leaderLost () {
      status = 'seeking'
      epoch = null
    },
    report: (obs) => { outbox.put(obs) },
    receive (msg, now) {
      if (msg.verb === 'ASSIGN') return takePage(msg.body, now)
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
