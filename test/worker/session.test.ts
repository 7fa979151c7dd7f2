// The worker's relationship with the leader, without sockets or timers: nothing is sent while no
// leader is followed and nothing owed is lost meanwhile; a leader that answers (a new epoch) gets
// READY with the whole view and every unacknowledged observation again; ASSIGN pages make a task
// list only when complete and in order; applying one starts and stops checks, forgets what is no
// longer this worker's and reports the views the leader lacks; ACKs settle, resends wait their time.
import { describe, expect, it } from 'vitest'
import type { MessageOf, Observation, Probe, Task } from '../../server/protocol/messages.js'
import { createCheckBook } from '../../server/worker/checks.js'
import { createLiveness, type Liveness } from '../../server/worker/liveness.js'
import { REPORT_MAX_OBSERVATIONS, REPORT_RESEND_MS } from '../../server/worker/outbox.js'
import { createSession, RESYNC_RETRY_MS, type Outgoing, type Session } from '../../server/worker/session.js'

const T0 = 1_700_000_000_000
const E1 = 'tcp://127.0.0.1:9101'
const E2 = 'tcp://127.0.0.1:9102'
const HTTP: Probe = { type: 'http', host: '127.0.0.1', port: 8080, path: '/health', intervalMs: 100, timeoutMs: 50 }
const W = 'worker-1'

function hb (providerId: string, overrides: Partial<Task> = {}): Task {
  return { providerId, heartbeat: E1, heartbeatIntervalMs: 100, state: 'pending', lastSeen: null, ...overrides }
}

function checked (providerId: string, overrides: Partial<Task> = {}): Task {
  return { providerId, heartbeatIntervalMs: 1000, check: HTTP, state: 'pending', lastSeen: null, ...overrides }
}

/** The seq of the last ASSIGN made by assign() or delta(); setup() starts it again. */
let assignSeq = 0

/** A complete list's page, with the next seq (or `seq`, to act out a lost one). */
function assign (tasks: Task[], page?: number, more?: boolean, seq = assignSeq + 1): MessageOf<'ASSIGN'> {
  assignSeq = seq
  return { verb: 'ASSIGN', body: { epoch: 1, seq, tasks, ...(page !== undefined ? { page } : {}), ...(more !== undefined ? { more } : {}) } }
}

function delta (tasks: Task[], removed: string[], seq = assignSeq + 1): MessageOf<'ASSIGN'> {
  assignSeq = seq
  return { verb: 'ASSIGN', body: { epoch: 1, seq, tasks, delta: true, removed } }
}

function pong (assigned: number): MessageOf<'PONG'> {
  return { verb: 'PONG', body: { epoch: 1, revision: 0, assigned } }
}

function ack (seq: number): MessageOf<'ACK'> {
  return { verb: 'ACK', body: { epoch: 1, seq } }
}

function setup (): { session: Session, liveness: Liveness } {
  assignSeq = 0
  const liveness = createLiveness()
  const session = createSession({ workerId: W, liveness, checks: createCheckBook() })
  return { session, liveness }
}

/** A heartbeat over the provider's own established connection (as the shell delivers it). */
function beat (liveness: Liveness, providerId: string, now: number, endpoint = E1): Observation | null {
  liveness.connected(endpoint)
  return liveness.heartbeat(providerId, now)
}

function verbs (out: Outgoing[]): string[] {
  return out.map((m) => m.verb)
}

function reported (out: Outgoing[]): Array<[number, string[]]> {
  return out.flatMap((m) => m.verb === 'REPORT' ? [[m.body.seq, m.body.observations.map((o) => `${o.providerId}:${o.state}`)] as [number, string[]]] : [])
}

describe('worker session', () => {
  it('sends nothing while seeking a leader, and keeps what it owes for the next one', () => {
    const { session, liveness } = setup()
    expect(session.status).toBe('seeking')
    expect(session.epoch).toBeNull()
    session.leaderFound(6, T0 - 10)
    session.receive(assign([hb('a')]), T0 - 10)
    session.leaderLost()
    expect(session.status).toBe('seeking')
    session.report(beat(liveness, 'a', T0) as Observation)
    expect(session.flush(T0)).toEqual([])
    expect(session.resend(T0 + 10 * REPORT_RESEND_MS)).toEqual([])
    expect(session.summary()).toEqual([])
    expect(session.goodbye(T0)).toEqual([])
    expect(session.unacked).toBe(1)

    const out = session.leaderFound(7, T0 + 1)
    expect(session.status).toBe('joining')
    expect(session.epoch).toBe(7)
    expect(out).toEqual([
      { verb: 'READY', body: { workerId: W, observations: [{ providerId: 'a', state: 'up', lastSeen: T0 }] } },
      { verb: 'REPORT', body: { workerId: W, seq: 1, observations: [{ providerId: 'a', state: 'up', lastSeen: T0 }] } }
    ])
    // The summary while seeking took nothing: the next one still carries the heartbeat.
    expect(session.summary()).toEqual([{ verb: 'SEEN', body: { workerId: W, seen: [['a', T0]] } }])
  })

  it('says READY even with nothing to say, and in pages when the view is large', () => {
    const { session } = setup()
    expect(session.leaderFound(1, T0)).toEqual([{ verb: 'READY', body: { workerId: W, observations: [] } }])
    session.receive(assign(Array.from({ length: REPORT_MAX_OBSERVATIONS + 1 }, (_, i) => hb(`p${i}`))), T0)
    const ready = session.leaderFound(2, T0 + 1)
    expect(ready.map((m) => m.verb === 'READY' ? m.body.observations.length : -1)).toEqual([REPORT_MAX_OBSERVATIONS, 1])
  })

  it('goes joining, then serving at the first complete ASSIGN; back to seeking when the leader is lost', () => {
    const { session } = setup()
    session.leaderFound(1, T0)
    expect(session.receive(assign([hb('a')], 0, true), T0)).toEqual({ kind: 'page' })
    expect(session.status).toBe('joining')
    const got = session.receive(assign([checked('c')], 1), T0)
    expect(got).toMatchObject({ kind: 'assigned', tasks: 2, probeStop: [] })
    expect(got.kind === 'assigned' && got.probeStart.map((j) => j.providerId)).toEqual(['c'])
    expect(session.status).toBe('serving')
    session.leaderLost()
    expect(session.status).toBe('seeking')
    expect(session.epoch).toBeNull()
  })

  it('drops what follows a lost ASSIGN, asks for the complete list once, and keeps its tasks until it comes', () => {
    const { session, liveness } = setup()
    session.leaderFound(1, T0) // its READY asked for the list at T0
    session.receive(assign([hb('a')]), T0)
    expect(session.receive(assign([hb('b')], 0, true), T0)).toEqual({ kind: 'page' })
    // seq 3 (page 1) never came.
    const later = T0 + RESYNC_RETRY_MS
    expect(session.receive(assign([hb('c')], 2, false, 4), later)).toEqual({
      kind: 'lost', seq: 4, expected: 3, resync: [{ verb: 'READY', body: { workerId: W, observations: [{ providerId: 'a', state: 'pending', lastSeen: null }] } }]
    })
    expect(liveness.has('a')).toBe(true)
    expect(liveness.has('b')).toBe(false)
    // Nothing decides anything until a complete list starts afresh, and the question is not repeated.
    expect(session.receive(assign([hb('d')], 3), later + 1)).toEqual({ kind: 'waiting' })
    expect(session.receive(delta([hb('d')], ['a']), later + 2)).toEqual({ kind: 'waiting' })
    expect(liveness.has('a')).toBe(true)
    expect(session.receive(assign([hb('e')]), later + 3)).toMatchObject({ kind: 'assigned', tasks: 1 })
    expect([liveness.has('a'), liveness.has('e')]).toEqual([false, true])
    // A gap after the list came is asked about at once.
    expect(session.receive(delta([], ['e'], 9), later + 4)).toMatchObject({ kind: 'lost', seq: 9, expected: 8, resync: [{ verb: 'READY' }] })
  })

  it('applies a delta to its list: adds, replaces and removes tasks, in order only', () => {
    const { session, liveness } = setup()
    session.leaderFound(1, T0)
    session.receive(assign([hb('a'), hb('b'), checked('c')]), T0)
    const got = session.receive(delta([hb('b', { heartbeat: 'tcp://127.0.0.1:2' }), hb('n')], ['a', 'c']), T0)
    // Only the endpoints it touched are to be connected or dropped.
    expect(got).toEqual({ kind: 'assigned', tasks: 2, probeStart: [], probeStop: ['c'], endpoints: new Set([E1, 'tcp://127.0.0.1:2']) })
    expect([liveness.has('a'), liveness.has('b'), liveness.has('n')]).toEqual([false, true, true])
    expect([...liveness.endpoints()].sort()).toEqual(['tcp://127.0.0.1:2', E1])
    // A delta must follow the last ASSIGN: one that skips a seq changes nothing.
    expect(session.receive(delta([], ['b'], assignSeq + 2), T0 + RESYNC_RETRY_MS)).toMatchObject({ kind: 'lost' })
    expect(liveness.has('b')).toBe(true)
    // Nor may one come between the pages of a complete list.
    session.receive(assign([hb('b')]), T0 + 2 * RESYNC_RETRY_MS)
    session.receive(assign([hb('x')], 0, true), T0 + 2 * RESYNC_RETRY_MS)
    expect(session.receive(delta([], ['b']), T0 + 2 * RESYNC_RETRY_MS)).toMatchObject({ kind: 'lost' })
    expect(liveness.has('b')).toBe(true)
  })

  it('takes a delta only after a complete list from this leader', () => {
    const { session, liveness } = setup()
    session.leaderFound(1, T0)
    expect(session.receive(delta([hb('a')], []), T0)).toEqual({ kind: 'waiting' })
    expect(liveness.has('a')).toBe(false)
    session.receive(assign([hb('a')]), T0)
    session.leaderFound(2, T0 + 1)
    expect(session.receive(delta([], ['a']), T0 + 1)).toEqual({ kind: 'waiting' })
    expect(liveness.has('a')).toBe(true)
    // Had the list not come within RESYNC_RETRY_MS, the worker asks again.
    expect(session.receive(delta([], ['a']), T0 + 1 + RESYNC_RETRY_MS)).toMatchObject({ kind: 'lost', resync: [{ verb: 'READY' }] })
  })

  it('asks for the complete list when a PONG names an ASSIGN that never came', () => {
    const { session } = setup()
    expect(session.receive(pong(3), T0)).toEqual({ kind: 'pong' }) // seeking: no leader to ask
    session.leaderFound(1, T0)
    expect(session.receive(pong(0), T0)).toEqual({ kind: 'pong' })
    session.receive(assign([hb('a')]), T0)
    expect(session.receive(pong(1), T0)).toEqual({ kind: 'pong' })
    expect(session.receive(pong(2), T0)).toMatchObject({ kind: 'lost', seq: 2, expected: 2, resync: [{ verb: 'READY' }] })
    // Asked: the next PONGs are no news until the list comes (or is overdue).
    expect(session.receive(pong(2), T0 + 250)).toEqual({ kind: 'waiting' })
    expect(session.receive(pong(2), T0 + RESYNC_RETRY_MS)).toMatchObject({ kind: 'lost', resync: [{ verb: 'READY' }] })
  })

  it('flushes each observation once, resends it only after the resend period, and stops at its ACK', () => {
    const { session, liveness } = setup()
    session.leaderFound(1, T0)
    session.receive(assign([hb('a'), hb('b')]), T0)
    session.report(beat(liveness, 'a', T0) as Observation)
    expect(reported(session.flush(T0))).toEqual([[1, ['a:up']]])
    expect(session.flush(T0 + 1)).toEqual([])
    session.report(beat(liveness, 'b', T0 + 400) as Observation)
    // b was never sent: it goes with the next resend tick even though a is not due yet.
    expect(reported(session.resend(T0 + 500))).toEqual([[2, ['b:up']]])
    expect(session.resend(T0 + REPORT_RESEND_MS - 1)).toEqual([])
    expect(reported(session.resend(T0 + REPORT_RESEND_MS))).toEqual([[3, ['a:up']]])
    expect(session.stats.observationsResent).toBe(1)
    expect(session.receive(ack(3), T0 + REPORT_RESEND_MS + 5)).toEqual({ kind: 'ack' })
    expect(session.unacked).toBe(0)
    expect(session.resend(T0 + 10 * REPORT_RESEND_MS)).toEqual([])
    expect(session.stats).toEqual({ reportsSent: 3, observationsResent: 1, acks: 1 })
  })

  it('hands a leader with a newer epoch its whole view and everything unacknowledged, under new seqs', () => {
    const { session, liveness } = setup()
    session.leaderFound(1, T0)
    session.receive(assign([hb('a'), hb('b')]), T0)
    session.report(beat(liveness, 'a', T0) as Observation)
    session.report(beat(liveness, 'b', T0) as Observation)
    expect(reported(session.flush(T0))).toEqual([[1, ['a:up', 'b:up']]])
    session.receive(ack(1), T0 + 1)
    for (const obs of liveness.disconnected(E1, T0 + 50)) session.report(obs)
    expect(reported(session.flush(T0 + 50))).toEqual([[2, ['a:down', 'b:down']]])
    // The leader dies before it acknowledges; the next one has a newer epoch.
    session.leaderLost()
    const out = session.leaderFound(2, T0 + 100)
    expect(session.status).toBe('joining')
    expect(session.epoch).toBe(2)
    expect(verbs(out)).toEqual(['READY', 'REPORT'])
    expect(out[0]?.verb === 'READY' && out[0].body.observations.map((o) => `${o.providerId}:${o.state}:${o.reason ?? ''}`))
      .toEqual(['a:down:disconnected', 'b:down:disconnected'])
    expect(reported(out)).toEqual([[3, ['a:down', 'b:down']]])
    expect(session.stats.observationsResent).toBe(2)
    session.receive(ack(3), T0 + 101)
    expect(session.unacked).toBe(0)
  })

  it('on a new task list: forgets what is no longer its to report, reports views the leader lacks, stops removed checks', () => {
    const { session, liveness } = setup()
    session.leaderFound(1, T0)
    session.receive(assign([hb('a'), hb('b'), hb('m'), hb('gone'), checked('c')]), T0)
    for (const id of ['a', 'b', 'm', 'gone']) session.report(beat(liveness, id, T0) as Observation)
    expect(reported(session.flush(T0))).toEqual([[1, ['a:up', 'b:up', 'm:up', 'gone:up']]])

    const got = session.receive(assign([
      hb('a', { state: 'down', lastSeen: T0 - 500 }), // the leader has not committed our `up`
      hb('b', { heartbeat: E2 }), // moved: what we said about E1 is no longer true
      hb('m', { state: 'pending', maintenance: true }) // in maintenance: the leader's view stands
    ]), T0 + 10)
    expect(got).toEqual({ kind: 'assigned', tasks: 3, probeStart: [], probeStop: ['c'], endpoints: null })
    expect(session.unacked).toBe(2)
    expect(reported(session.flush(T0 + 10))).toEqual([[2, ['a:up']]])
    // m keeps its place in the outbox and its resend time; a was just sent.
    expect(reported(session.resend(T0 + REPORT_RESEND_MS))).toEqual([[3, ['m:up']]])
  })

  it('says goodbye with what it never sent and BYE, and nothing at all with no leader', () => {
    const { session, liveness } = setup()
    session.leaderFound(1, T0)
    session.receive(assign([hb('a'), hb('b')]), T0)
    session.report(beat(liveness, 'a', T0) as Observation)
    session.flush(T0)
    session.report(beat(liveness, 'b', T0 + 5) as Observation)
    const bye = session.goodbye(T0 + 10)
    expect(verbs(bye)).toEqual(['REPORT', 'BYE'])
    expect(reported(bye)).toEqual([[2, ['b:up']]])
    expect(bye[1]).toEqual({ verb: 'BYE', body: { workerId: W } })
    session.leaderLost()
    expect(session.goodbye(T0 + 20)).toEqual([])
  })

  it('summarises only lastSeen values that moved, in SEEN, while following a leader', () => {
    const { session, liveness } = setup()
    session.leaderFound(1, T0)
    session.receive(assign([hb('a'), hb('b'), hb('p')]), T0)
    beat(liveness, 'a', T0)
    beat(liveness, 'b', T0)
    expect(session.summary()).toEqual([{ verb: 'SEEN', body: { workerId: W, seen: [['a', T0], ['b', T0]] } }])
    expect(session.summary()).toEqual([])
    beat(liveness, 'b', T0 + 100)
    expect(session.summary()).toEqual([{ verb: 'SEEN', body: { workerId: W, seen: [['b', T0 + 100]] } }])
  })
})
