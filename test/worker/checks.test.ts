// The check bookkeeping's rules on a fake clock: pending until the first run, down at the first
// failure with its detail and how stale the last success was, up at the next success, results of
// a previous assignment dropped, and the worker's own view reported when the leader's differs.
import { describe, expect, it } from 'vitest'
import type { Probe, Task } from '../../server/protocol/messages.js'
import { createCheckBook } from '../../server/worker/checks.js'

const T0 = 1_700_000_000_000
const HTTP: Probe = { type: 'http', host: '127.0.0.1', port: 8080, path: '/health', intervalMs: 100, timeoutMs: 50 }
const TCP: Probe = { type: 'tcp', host: '127.0.0.1', port: 8081, intervalMs: 100, timeoutMs: 50 }

function task (providerId: string, check: Probe | undefined, overrides: Partial<Task> = {}): Task {
  return { providerId, heartbeatIntervalMs: 1000, ...(check === undefined ? { heartbeat: 'tcp://127.0.0.1:9100' } : { check }), state: 'pending', lastSeen: null, ...overrides }
}

describe('check book', () => {
  it('starts a probe for every task with a check, and ignores heartbeat tasks', () => {
    const book = createCheckBook()
    const out = book.assign([task('a', HTTP), task('b', TCP), task('hb', undefined)])
    expect(out.start.map((j) => [j.providerId, j.probe.type])).toEqual([['a', 'http'], ['b', 'tcp']])
    expect(out.stop).toEqual([])
    expect(book.size).toBe(2)
    expect(book.has('hb')).toBe(false)
    expect(book.observations()).toEqual([
      { providerId: 'a', state: 'pending', lastSeen: null },
      { providerId: 'b', state: 'pending', lastSeen: null }
    ])
  })

  it('goes up at a success, down at the first failure with its detail, and up again', () => {
    const book = createCheckBook()
    const [job] = book.assign([task('a', HTTP)]).start
    if (job === undefined) throw new Error('no job')
    expect(book.result('a', job.generation, { ok: true }, T0)).toEqual({ providerId: 'a', state: 'up', lastSeen: T0 })
    expect(book.result('a', job.generation, { ok: true }, T0 + 100)).toBeNull()
    expect(book.result('a', job.generation, { ok: false, detail: 'HTTP 503' }, T0 + 230)).toEqual({
      providerId: 'a', state: 'down', lastSeen: T0 + 100, reason: 'check-failed', detail: 'HTTP 503', detectedAfterMs: 130
    })
    // Still failing: no second down.
    expect(book.result('a', job.generation, { ok: false, detail: 'ECONNREFUSED' }, T0 + 330)).toBeNull()
    expect(book.result('a', job.generation, { ok: true }, T0 + 430)).toEqual({ providerId: 'a', state: 'up', lastSeen: T0 + 430 })
  })

  it('reports a provider whose check never passed down at its first failure, with no detectedAfterMs', () => {
    const book = createCheckBook()
    const [job] = book.assign([task('a', TCP)]).start
    expect(book.result('a', job!.generation, { ok: false, detail: 'ECONNREFUSED' }, T0)).toEqual({
      providerId: 'a', state: 'down', lastSeen: null, reason: 'check-failed', detail: 'ECONNREFUSED'
    })
  })

  it('continues from the leader\'s state for a provider it takes over', () => {
    const book = createCheckBook()
    const [job] = book.assign([task('a', HTTP, { state: 'up', lastSeen: T0 - 500 })]).start
    expect(book.result('a', job!.generation, { ok: true }, T0)).toBeNull()
    expect(book.result('a', job!.generation, { ok: false, detail: 'timeout after 50 ms' }, T0 + 100)).toMatchObject({ state: 'down', detectedAfterMs: 100 })
  })

  it('keeps a provider whose check is unchanged, restarts one whose check changed, and drops stale results', () => {
    const book = createCheckBook()
    const first = book.assign([task('a', HTTP), task('b', TCP)]).start
    const a1 = first.find((j) => j.providerId === 'a')!
    const b1 = first.find((j) => j.providerId === 'b')!
    book.result('a', a1.generation, { ok: true }, T0)
    const out = book.assign([task('a', { ...HTTP }), task('b', { ...TCP, port: 9999 })])
    expect(out.start.map((j) => j.providerId)).toEqual(['b'])
    expect(out.stop).toEqual(['b'])
    expect(book.current('a', a1.generation)).toBe(true)
    expect(book.current('b', b1.generation)).toBe(false)
    // A run of b's old check that ends now decides nothing.
    expect(book.result('b', b1.generation, { ok: true }, T0 + 5)).toBeNull()
    expect(book.observations().find((o) => o.providerId === 'b')).toEqual({ providerId: 'b', state: 'pending', lastSeen: null })
    // Removed: stopped, and its results dropped.
    expect(book.assign([task('b', { ...TCP, port: 9999 })]).stop).toEqual(['a'])
    expect(book.result('a', a1.generation, { ok: false, detail: 'x' }, T0 + 10)).toBeNull()
  })

  it('reports its own view when the task differs (maintenance ended), but not while in maintenance', () => {
    const book = createCheckBook()
    const [job] = book.assign([task('a', HTTP)]).start
    book.result('a', job!.generation, { ok: true }, T0)
    expect(book.assign([task('a', HTTP, { state: 'pending', maintenance: true })]).report).toEqual([])
    expect(book.assign([task('a', HTTP, { state: 'pending' })]).report).toEqual([{ providerId: 'a', state: 'up', lastSeen: T0 }])
    expect(book.assign([task('a', HTTP, { state: 'up', lastSeen: T0 })]).report).toEqual([])
  })

  it('summarises each up provider whose last success moved since the previous summary', () => {
    const book = createCheckBook()
    const [a, b] = book.assign([task('a', HTTP), task('b', TCP, { state: 'up', lastSeen: T0 - 100 })]).start
    if (a === undefined || b === undefined) throw new Error('no jobs')
    expect(book.freshlySeen()).toEqual([])
    book.result('a', a.generation, { ok: true }, T0)
    book.result('b', b.generation, { ok: true }, T0 + 5)
    expect(book.freshlySeen()).toEqual([['a', T0], ['b', T0 + 5]])
    expect(book.freshlySeen()).toEqual([])
    book.result('a', a.generation, { ok: true }, T0 + 100)
    book.result('b', b.generation, { ok: false, detail: 'ECONNREFUSED' }, T0 + 105)
    expect(book.freshlySeen()).toEqual([['a', T0 + 100]])
  })
})
