// The worker's outbox on a fake clock: an observation goes out once, is resent when no ACK came
// within the resend period (not a millisecond before), under a new seq each time; an ACK settles
// what it and earlier REPORTs carried, and never an observation replaced since.
import { describe, expect, it } from 'vitest'
import type { Observation } from '../../server/protocol/messages.js'
import { createOutbox, REPORT_MAX_OBSERVATIONS, REPORT_RESEND_MS } from '../../server/worker/outbox.js'

const T0 = 1_700_000_000_000

function up (providerId: string, lastSeen = T0): Observation {
  return { providerId, state: 'up', lastSeen }
}

function down (providerId: string): Observation {
  return { providerId, state: 'down', lastSeen: T0, reason: 'silent', detectedAfterMs: 300 }
}

describe('outbox', () => {
  it('sends an observation once, then resends it after the resend period under a new seq until an ACK', () => {
    const box = createOutbox()
    box.put(up('a'))
    expect(box.take('unsent', T0)).toEqual([{ seq: 1, observations: [up('a')] }])
    expect(box.take('unsent', T0 + 10)).toEqual([])
    expect(box.take('due', T0 + REPORT_RESEND_MS - 1)).toEqual([])
    expect(box.take('due', T0 + REPORT_RESEND_MS)).toEqual([{ seq: 2, observations: [up('a')] }])
    expect(box.resent).toBe(1)
    // The resend restarted its period.
    expect(box.take('due', T0 + REPORT_RESEND_MS + 999)).toEqual([])
    box.ack(2)
    expect(box.size).toBe(0)
    expect(box.take('due', T0 + 10 * REPORT_RESEND_MS)).toEqual([])
  })

  it('takes what was never sent along with what is due, in the order it was first put', () => {
    const box = createOutbox(500)
    box.put(up('a'))
    box.take('unsent', T0)
    box.put(up('b'))
    expect(box.take('due', T0 + 100)).toEqual([{ seq: 2, observations: [up('b')] }])
    box.put(up('c'))
    expect(box.take('due', T0 + 500)).toEqual([{ seq: 3, observations: [up('a'), up('c')] }])
  })

  it('settles with an ACK everything carried up to its seq, and nothing sent after it', () => {
    const box = createOutbox()
    box.put(up('a'))
    box.take('unsent', T0)
    box.put(up('b'))
    box.take('unsent', T0 + 1)
    box.put(up('c')) // not sent yet
    box.ack(1)
    expect(box.size).toBe(2)
    expect(box.take('all', T0 + 2)).toEqual([{ seq: 3, observations: [up('b'), up('c')] }])
    box.ack(3)
    expect(box.size).toBe(0)
  })

  it('never lets the ACK of an earlier REPORT settle a newer observation of the same provider', () => {
    const box = createOutbox()
    box.put(up('a'))
    box.take('unsent', T0)
    box.put(down('a')) // replaced before the ACK of seq 1 came
    box.ack(1)
    expect(box.size).toBe(1)
    expect(box.take('unsent', T0 + 5)).toEqual([{ seq: 2, observations: [down('a')] }])
    // Replaced and then sent: not counted as a resend.
    expect(box.resent).toBe(0)
  })

  it('splits what it takes into REPORT-sized pages, each under its own seq, and an ACK covers earlier pages', () => {
    const box = createOutbox()
    const n = 2 * REPORT_MAX_OBSERVATIONS + 5
    for (let i = 0; i < n; i++) box.put(up(`p${i}`))
    const pages = box.take('unsent', T0)
    expect(pages.map((p) => [p.seq, p.observations.length])).toEqual([[1, REPORT_MAX_OBSERVATIONS], [2, REPORT_MAX_OBSERVATIONS], [3, 5]])
    expect(pages.flatMap((p) => p.observations.map((o) => o.providerId))).toEqual(Array.from({ length: n }, (_, i) => `p${i}`))
    box.ack(2)
    expect(box.size).toBe(5)
  })

  it('takes everything with `all` (a new leader), counting what was sent before as resent', () => {
    const box = createOutbox()
    box.put(up('a'))
    box.take('unsent', T0)
    box.put(up('b'))
    expect(box.take('all', T0 + 1)).toEqual([{ seq: 2, observations: [up('a'), up('b')] }])
    expect(box.resent).toBe(1)
  })

  it('forgets the providers `retain` rejects, sent or not', () => {
    const box = createOutbox()
    box.put(up('a'))
    box.take('unsent', T0)
    box.put(up('b'))
    box.put(up('c'))
    box.retain((id) => id === 'b')
    expect(box.size).toBe(1)
    expect(box.take('all', T0 + 1)).toEqual([{ seq: 2, observations: [up('b')] }])
  })
})
