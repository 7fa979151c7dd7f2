// The chaos run's verdicts on small hand-made histories: each check passes on a correct one and
// names the violation on a broken one (a lost acknowledged write, a watcher gap, a duplicate, an
// event outside the filter, a wrong final state), and the outage arithmetic.
import { describe, expect, it } from 'vitest'
import { checkAcknowledged, checkPresence, checkTransitions, checkWatcher, firstAckSentAfter, longestGap, type LogRow, type StoredRow, type WatcherRecord, type WriteRecord } from '../../chaos/checks.js'

const row = (revision: number, event: string, providerId: string, service: string, seq: string | null = null, state = 'pending'): LogRow =>
  ({ revision, event, providerId, service, state, seq })

const log: LogRow[] = [
  row(1, 'registered', 'a', 's1', '1'),
  row(2, 'registered', 'b', 's2', '2'),
  row(3, 'updated', 'a', 's1', '3'),
  row(4, 'deregistered', 'b', 's2', '2'),
  row(5, 'up', 'e', 'emit', '0', 'up')
]
const stored = new Map<string, StoredRow>([
  ['a', { id: 'a', service: 's1', state: 'pending', seq: '3' }],
  ['e', { id: 'e', service: 'emit', state: 'up', seq: '0' }]
])

describe('checkAcknowledged', () => {
  const writes: WriteRecord[] = [
    { op: 'put', id: 'a', service: 's1', seq: '1', outcome: 'acked', revision: 1 },
    { op: 'put', id: 'b', service: 's2', seq: '2', outcome: 'acked', revision: 2 },
    { op: 'put', id: 'a', service: 's1', seq: '3', outcome: 'acked', revision: 3 },
    { op: 'delete', id: 'b', service: 's2', seq: '4', outcome: 'acked', revision: 4 }
  ]

  it('passes when every acknowledged write is logged at its revision and the last ones are stored', () => {
    const r = checkAcknowledged(writes, log, stored)
    expect(r.findings).toEqual([])
    expect(r.ok).toBe(true)
  })

  it('names a write acknowledged at a revision the log does not have, or has for another write', () => {
    const r = checkAcknowledged([...writes, { op: 'put', id: 'c', service: 's1', seq: '9', outcome: 'acked', revision: 7 }], log, stored)
    expect(r.ok).toBe(false)
    expect(r.findings.join('\n')).toMatch(/put c seq 9 acknowledged at revision 7, which is not in the change log/)
    expect(r.findings.join('\n')).toMatch(/c: last write .* not stored/)
    const wrongSeq = checkAcknowledged([{ op: 'put', id: 'a', service: 's1', seq: '2', outcome: 'acked', revision: 3 }], log, stored)
    expect(wrongSeq.findings.join('\n')).toMatch(/the log has updated a seq 3 there/)
  })

  it('names a provider whose acknowledged deregistration left it stored, and an unexpected answer', () => {
    const withB = new Map(stored).set('b', { id: 'b', service: 's2', state: 'pending', seq: '2' })
    expect(checkAcknowledged(writes, log, withB).findings.join('\n')).toMatch(/b: deregistration acknowledged at revision 4, but the provider is still stored/)
    const r = checkAcknowledged([{ op: 'delete', id: 'z', service: 's1', seq: '5', outcome: 'unexpected', detail: '404' }], log, stored)
    expect(r.ok).toBe(false)
  })

  it('does not judge a provider whose last write is ambiguous', () => {
    const r = checkAcknowledged([...writes, { op: 'delete', id: 'a', service: 's1', seq: '5', outcome: 'ambiguous' }], log, stored)
    expect(r.ok).toBe(true)
  })
})

describe('checkWatcher', () => {
  const ev = (r: LogRow): WatcherRecord['events'][number] => ({ revision: r.revision, event: r.event, providerId: r.providerId, service: r.service, state: r.state })
  const watcher = (services: string[] | null, events: WatcherRecord['events'], startRevision = 0): WatcherRecord =>
    ({ name: 'w', services, startRevision, events, problems: [] })

  it('passes on exactly the log for its filter from its start revision', () => {
    expect(checkWatcher(watcher(null, log.map(ev)), log, 5).findings).toEqual([])
    expect(checkWatcher(watcher(['s2'], [ev(log[3] as LogRow)], 2), log, 5).ok).toBe(true)
    // Events after the head the run read are not judged.
    expect(checkWatcher(watcher(['emit'], [ev(log[4] as LogRow), { ...ev(log[4] as LogRow), revision: 9 }]), log, 5).ok).toBe(true)
  })

  it('names a gap, a duplicate, an event outside the filter and a wrong state', () => {
    const gap = checkWatcher(watcher(null, [log[0], log[2], log[3], log[4]].map((r) => ev(r as LogRow))), log, 5)
    expect(gap.findings.join('\n')).toMatch(/missed 1 logged changes, first: 2 registered b/)
    const dup = checkWatcher(watcher(null, [...log.map(ev), ev(log[4] as LogRow)]), log, 5)
    expect(dup.findings.join('\n')).toMatch(/revision 5 came after 5/)
    const outside = checkWatcher(watcher(['s1'], [log[0], log[1], log[2]].map((r) => ev(r as LogRow))), log, 5)
    expect(outside.findings.join('\n')).toMatch(/1 events not in the log for its filter, first: 2 registered b/)
    const state = checkWatcher(watcher(['emit'], [{ ...ev(log[4] as LogRow), state: 'down' }]), log, 5)
    expect(state.findings.join('\n')).toMatch(/revision 5: got 5 up e \(down\), the log has 5 up e \(up\)/)
  })

  it('fails on a problem the watcher itself reported', () => {
    const w = { ...watcher(null, log.map(ev)), problems: ['resumed with since=3 on http://x but got a snapshot at revision 5'] }
    expect(checkWatcher(w, log, 5).ok).toBe(false)
  })
})

describe('checkPresence', () => {
  it('compares each provider with its emitter', () => {
    expect(checkPresence(new Map([['e', 'up']]), stored).ok).toBe(true)
    expect(checkPresence(new Map([['e', 'down']]), stored).findings).toEqual(['e: emitter dead or silent, stored state up'])
    expect(checkPresence(new Map([['x', 'up']]), stored).findings).toEqual(['x: emitter beating, stored state (not stored)'])
  })
})

describe('checkTransitions', () => {
  const presence: LogRow[] = [
    row(1, 'registered', 'e', 'emit'), row(2, 'up', 'e', 'emit', null, 'up'), row(3, 'down', 'e', 'emit', null, 'down'), row(4, 'up', 'e', 'emit', null, 'up')
  ]
  it('passes when the up/down changes are exactly the emitter\'s transitions', () => {
    expect(checkTransitions(new Map([['e', ['up', 'down', 'up'] as const]]), presence).findings).toEqual([])
  })
  it('names a false down and a missed one', () => {
    const falseDown = checkTransitions(new Map([['e', ['up'] as const]]), presence)
    expect(falseDown.findings).toEqual(['e: emitter went up, the log says up down up; first difference at #2 (revision 3)'])
    const missed = checkTransitions(new Map([['e', ['up', 'down', 'up', 'down'] as const]]), presence)
    expect(missed.findings).toEqual(['e: emitter went up down up down, the log says up down up; first difference at #4'])
  })
})

describe('outage arithmetic', () => {
  it('finds the longest span without an acknowledged write, edges included', () => {
    expect(longestGap([10, 20, 60, 70], 0, 100)).toEqual({ ms: 40, from: 20, to: 60 })
    expect(longestGap([10, 20], 0, 100)).toEqual({ ms: 80, from: 20, to: 100 })
    expect(longestGap([], 5, 30)).toEqual({ ms: 25, from: 5, to: 30 })
    expect(longestGap([1, 200], 50, 100)).toEqual({ ms: 50, from: 50, to: 100 })
  })

  it('finds the first acknowledgement of a write sent at or after a moment', () => {
    expect(firstAckSentAfter([{ op: 'put', sentAt: 25, at: 30 }, { op: 'put', sentAt: 5, at: 10 }, { op: 'delete', sentAt: 16, at: 40 }], 15)).toBe(30)
    // Answered after the moment but sent before it: not proof of a working leader.
    expect(firstAckSentAfter([{ op: 'put', sentAt: 10, at: 20 }], 15)).toBe(null)
  })
})
