// The heartbeat contract's rules (README.md › The heartbeat protocol) on a fake clock: pending until the first
// heartbeat, down after exactly three silent intervals or when the connection drops, up again at
// the next heartbeat, and no false down after a takeover or an interval change.
import { describe, expect, it } from 'vitest'
import type { Task } from '../../server/protocol/messages.js'
import { createLiveness as createBareLiveness, DISCONNECT_QUIET_MS, type Liveness, type LivenessOptions } from '../../server/worker/liveness.js'

const E1 = 'tcp://127.0.0.1:9101'
const E2 = 'tcp://127.0.0.1:9102'
const T0 = 1_700_000_000_000

function task (providerId: string, overrides: Partial<Task> = {}): Task {
  return { providerId, heartbeat: E1, heartbeatIntervalMs: 100, state: 'pending', lastSeen: null, ...overrides }
}

/** Liveness as the rules below see it: every heartbeat arrives over its provider's own
 *  established connection (the worker's monitor reported the handshake before it). The
 *  connection rule itself is tested on the bare module at the end. */
function createLiveness (opts?: LivenessOptions): Liveness {
  const l = createBareLiveness(opts)
  const endpointOf = new Map<string, string>()
  const { assign, heartbeat } = l
  l.assign = (tasks, now) => {
    for (const t of tasks) if (t.heartbeat !== undefined) endpointOf.set(t.providerId, t.heartbeat)
    return assign(tasks, now)
  }
  l.heartbeat = (providerId, now) => {
    const endpoint = endpointOf.get(providerId)
    if (endpoint !== undefined) l.connected(endpoint)
    return heartbeat(providerId, now)
  }
  return l
}

describe('liveness', () => {
  it('keeps a provider pending until its first heartbeat, then reports up once', () => {
    const l = createLiveness()
    l.assign([task('p1')], T0)
    expect(l.observations()).toEqual([{ providerId: 'p1', state: 'pending', lastSeen: null }])
    // A pending provider never goes silent: it has not started.
    expect(l.expire(T0 + 1_000_000)).toEqual([])
    expect(l.nextDeadline()).toBeNull()

    expect(l.heartbeat('p1', T0 + 10)).toEqual({ providerId: 'p1', state: 'up', lastSeen: T0 + 10 })
    expect(l.heartbeat('p1', T0 + 110)).toBeNull()
    expect(l.observations()).toEqual([{ providerId: 'p1', state: 'up', lastSeen: T0 + 110 }])
  })

  it('ignores heartbeats of providers it does not watch', () => {
    const l = createLiveness()
    l.assign([task('p1')], T0)
    expect(l.heartbeat('stranger', T0)).toBeNull()
    expect(l.has('stranger')).toBe(false)
  })

  it('reports silent after exactly three intervals, not a millisecond before, and only once', () => {
    const l = createLiveness()
    l.assign([task('p1')], T0)
    l.heartbeat('p1', T0)
    expect(l.nextDeadline()).toBe(T0 + 300)
    expect(l.expire(T0 + 299)).toEqual([])
    expect(l.expire(T0 + 300)).toEqual([{ providerId: 'p1', state: 'down', lastSeen: T0, reason: 'silent', detectedAfterMs: 300 }])
    expect(l.expire(T0 + 10_000)).toEqual([])
    expect(l.nextDeadline()).toBeNull()
  })

  it('counts silence from the last heartbeat, and comes back up at the next one', () => {
    const l = createLiveness()
    l.assign([task('p1')], T0)
    for (let t = T0; t <= T0 + 1000; t += 100) l.heartbeat('p1', t)
    // The timer may wake at a stale (earlier) bound; expire() then finds nothing due.
    expect(l.nextDeadline()).toBeLessThanOrEqual(T0 + 1300)
    expect(l.expire(T0 + 1299)).toEqual([])
    expect(l.nextDeadline()).toBe(T0 + 1300)
    expect(l.expire(T0 + 1300)).toEqual([{ providerId: 'p1', state: 'down', lastSeen: T0 + 1000, reason: 'silent', detectedAfterMs: 300 }])
    expect(l.heartbeat('p1', T0 + 5000)).toEqual({ providerId: 'p1', state: 'up', lastSeen: T0 + 5000 })
    expect(l.expire(T0 + 5299)).toEqual([])
    expect(l.expire(T0 + 5300)).toHaveLength(1)
  })

  it('honours livenessMisses', () => {
    const l = createLiveness({ livenessMisses: 5 })
    l.assign([task('p1')], T0)
    l.heartbeat('p1', T0)
    expect(l.expire(T0 + 499)).toEqual([])
    expect(l.expire(T0 + 500)).toHaveLength(1)
  })

  it('puts every up provider of a dropped endpoint down as disconnected, and only those', () => {
    const l = createLiveness()
    l.assign([task('a'), task('b'), task('pending'), task('other', { heartbeat: E2 })], T0)
    l.heartbeat('a', T0)
    l.heartbeat('b', T0)
    l.heartbeat('other', T0)
    const down = l.disconnected(E1, T0 + 50)
    expect(down).toEqual([
      { providerId: 'a', state: 'down', lastSeen: T0, reason: 'disconnected', detectedAfterMs: 50 },
      { providerId: 'b', state: 'down', lastSeen: T0, reason: 'disconnected', detectedAfterMs: 50 }
    ])
    expect(l.disconnected(E1, T0 + 60)).toEqual([])
    // Already down: the silence deadline does not report it a second time.
    expect(l.expire(T0 + 10_000).map((o) => o.providerId)).toEqual(['other'])
    expect(l.observations().find((o) => o.providerId === 'pending')?.state).toBe('pending')
  })

  it('ignores a heartbeat read right after a disconnect (it travelled on the dead connection)', () => {
    const l = createLiveness()
    l.assign([task('p1')], T0)
    l.heartbeat('p1', T0)
    l.disconnected(E1, T0 + 10)
    expect(l.heartbeat('p1', T0 + 10 + DISCONNECT_QUIET_MS - 1)).toBeNull()
    expect(l.observations()[0]).toMatchObject({ state: 'down', lastSeen: T0 })
    expect(l.heartbeat('p1', T0 + 10 + DISCONNECT_QUIET_MS)).toEqual({ providerId: 'p1', state: 'up', lastSeen: T0 + 10 + DISCONNECT_QUIET_MS })
  })

  it('gives a taken-over provider three intervals from the takeover, however old its lastSeen', () => {
    const l = createLiveness()
    // The previous watcher died 10 s ago, long after the provider's last heartbeat it recorded.
    l.assign([task('p1', { state: 'up', lastSeen: T0 - 10_000 })], T0)
    expect(l.observations()).toEqual([{ providerId: 'p1', state: 'up', lastSeen: T0 - 10_000 }])
    expect(l.expire(T0)).toEqual([])
    expect(l.expire(T0 + 299)).toEqual([])
    expect(l.expire(T0 + 300)).toEqual([{ providerId: 'p1', state: 'down', lastSeen: T0 - 10_000, reason: 'silent', detectedAfterMs: 10_300 }])
  })

  it('takes over from a lastSeen in its future (clock skew) without cutting the grace short', () => {
    const l = createLiveness()
    l.assign([task('p1', { state: 'up', lastSeen: T0 + 1000 })], T0)
    expect(l.expire(T0 + 1299)).toEqual([])
    expect(l.expire(T0 + 1300)).toHaveLength(1)
  })

  it('a heartbeat after a takeover continues the provider without a transition', () => {
    const l = createLiveness()
    l.assign([task('p1', { state: 'up', lastSeen: T0 - 50 }), task('p2', { state: 'down', lastSeen: T0 - 5000 })], T0)
    expect(l.heartbeat('p1', T0 + 100)).toBeNull()
    expect(l.heartbeat('p2', T0 + 100)).toEqual({ providerId: 'p2', state: 'up', lastSeen: T0 + 100 })
    // A provider the leader knows as down stays down without a deadline until it speaks.
    const l2 = createLiveness()
    l2.assign([task('p2', { state: 'down', lastSeen: T0 - 5000 })], T0)
    expect(l2.expire(T0 + 1_000_000)).toEqual([])
  })

  it('keeps its own view of providers kept across assign(), and forgets removed ones', () => {
    const l = createLiveness()
    l.assign([task('p1'), task('p2')], T0)
    l.heartbeat('p1', T0)
    // The leader has not processed our `up` report yet and still says pending.
    l.assign([task('p1', { state: 'pending', lastSeen: null })], T0 + 100)
    expect(l.observations()).toEqual([{ providerId: 'p1', state: 'up', lastSeen: T0 }])
    expect(l.has('p2')).toBe(false)
    expect(l.heartbeat('p2', T0 + 110)).toBeNull()
    expect(l.expire(T0 + 299)).toEqual([])
    expect(l.expire(T0 + 300)).toHaveLength(1)
  })

  it('forgets a removed provider entirely: no expiry, no disconnect, no endpoint', () => {
    const l = createLiveness()
    l.assign([task('p1'), task('p2', { heartbeat: E2 })], T0)
    l.heartbeat('p1', T0)
    l.assign([task('p2', { heartbeat: E2 })], T0 + 10)
    expect(l.endpoints()).toEqual(new Set([E2]))
    expect(l.disconnected(E1, T0 + 20)).toEqual([])
    expect(l.expire(T0 + 100_000)).toEqual([])
    expect(l.size).toBe(1)
    // Re-added later, it starts again from what the leader says.
    l.assign([task('p1', { state: 'down', lastSeen: T0 })], T0 + 200)
    expect(l.observations().find((o) => o.providerId === 'p1')).toEqual({ providerId: 'p1', state: 'down', lastSeen: T0 })
  })

  it('re-times a kept provider whose interval changed, counting from the change', () => {
    const l = createLiveness()
    l.assign([task('fast'), task('slow', { heartbeatIntervalMs: 1000 })], T0)
    l.heartbeat('fast', T0)
    l.heartbeat('slow', T0)
    // fast: 100 → 1000 ms at T0 + 50; slow: 1000 → 100 ms at T0 + 50.
    l.assign([task('fast', { heartbeatIntervalMs: 1000 }), task('slow', { heartbeatIntervalMs: 100 })], T0 + 50)
    expect(l.expire(T0 + 349)).toEqual([])
    expect(l.expire(T0 + 350).map((o) => o.providerId)).toEqual(['slow'])
    expect(l.expire(T0 + 3049)).toEqual([])
    expect(l.expire(T0 + 3050).map((o) => o.providerId)).toEqual(['fast'])
  })

  it('follows a kept provider to its new endpoint, starting over there from the task', () => {
    const l = createLiveness()
    l.assign([task('p1')], T0)
    l.heartbeat('p1', T0)
    // The leader made it pending for the new endpoint: nothing has been seen there yet.
    expect(l.assign([task('p1', { heartbeat: E2 })], T0 + 10)).toEqual({ report: [], restarted: ['p1'], touched: new Set([E1, E2]) })
    expect(l.endpoints()).toEqual(new Set([E2]))
    expect(l.observations()).toEqual([{ providerId: 'p1', state: 'pending', lastSeen: null }])
    expect(l.disconnected(E1, T0 + 20)).toEqual([])
    expect(l.heartbeat('p1', T0 + 25)).toEqual({ providerId: 'p1', state: 'up', lastSeen: T0 + 25 })
    expect(l.disconnected(E2, T0 + 30)).toEqual([{ providerId: 'p1', state: 'down', lastSeen: T0 + 25, reason: 'disconnected', detectedAfterMs: 5 }])
  })

  it('reports its own view of a kept provider when the task says otherwise, except in maintenance', () => {
    const l = createLiveness()
    l.assign([task('up'), task('down'), task('held'), task('same')], T0)
    l.heartbeat('up', T0)
    l.heartbeat('down', T0)
    l.heartbeat('held', T0)
    l.heartbeat('same', T0)
    l.disconnected(E1, T0 + 5) // all four go down …
    l.heartbeat('up', T0 + 200) // … 'up' comes back (after the quiet window)
    l.heartbeat('held', T0 + 200)
    l.heartbeat('same', T0 + 200)
    const outcome = l.assign([
      // The leader took it out of maintenance: pending, though it is beating.
      task('up', { state: 'pending' }),
      task('down', { state: 'up', lastSeen: T0 }),
      task('held', { state: 'pending', maintenance: true }),
      task('same', { state: 'up', lastSeen: T0 + 200 })
    ], T0 + 210)
    expect(outcome.restarted).toEqual([])
    expect(outcome.report).toEqual([
      { providerId: 'up', state: 'up', lastSeen: T0 + 200 },
      { providerId: 'down', state: 'down', lastSeen: T0, reason: 'disconnected' }
    ])
  })

  it('lists the endpoints in use, once each', () => {
    const l = createLiveness()
    l.assign([task('a'), task('b'), task('c', { heartbeat: E2 })], T0)
    expect(l.endpoints()).toEqual(new Set([E1, E2]))
    l.assign([], T0)
    expect(l.endpoints()).toEqual(new Set())
  })

  it('handles 10,000 providers: heartbeats stay cheap and expiry finds exactly the silent ones', () => {
    const l = createLiveness()
    const n = 10_000
    const tasks = Array.from({ length: n }, (_, i) => task(`p${i}`, { heartbeat: `tcp://10.0.${i >> 8}.${i & 255}:9100`, heartbeatIntervalMs: 50 + (i % 7) * 10 }))
    l.assign(tasks, T0)
    const started = performance.now()
    for (let round = 0; round < 20; round++) {
      const t = T0 + round * 50
      for (let i = 0; i < n; i++) if (i % 100 !== 0 || round === 0) l.heartbeat(`p${i}`, t)
      l.expire(t)
    }
    const elapsedMs = performance.now() - started
    // Every provider i % 100 === 0 fell silent after round 0; the others never did.
    const down = l.expire(T0 + 19 * 50).map((o) => o.providerId)
    const all = l.observations().filter((o) => o.state === 'down').map((o) => o.providerId)
    expect(down).toEqual([])
    expect(all.sort()).toEqual(Array.from({ length: n / 100 }, (_, k) => `p${k * 100}`).sort())
    // 200,000 heartbeats plus expiry passes: far below a second even on a loaded machine.
    expect(elapsedMs).toBeLessThan(2000)
  })
})

describe('heartbeats count only over the provider\'s own connection', () => {
  it('ignores a heartbeat for a provider whose endpoint has not completed a handshake', () => {
    const l = createBareLiveness()
    l.assign([task('p1'), task('p2', { heartbeat: E2 })], T0)
    // E2 (another provider's publisher) is connected and forges p1's id: p1 stays pending.
    l.connected(E2)
    expect(l.heard('p1')).toBe(false)
    expect(l.heartbeat('p1', T0 + 10)).toBeNull()
    expect(l.observations().find((o) => o.providerId === 'p1')).toEqual({ providerId: 'p1', state: 'pending', lastSeen: null })
    l.connected(E1)
    expect(l.heard('p1')).toBe(true)
    expect(l.heartbeat('p1', T0 + 20)).toEqual({ providerId: 'p1', state: 'up', lastSeen: T0 + 20 })
  })

  it('a dead provider stays down while someone else keeps sending its id, and is up again once its own endpoint reconnects', () => {
    const l = createBareLiveness()
    l.assign([task('p1', { state: 'up', lastSeen: T0 }), task('p2', { heartbeat: E2 })], T0)
    l.connected(E1)
    l.connected(E2)
    expect(l.disconnected(E1, T0 + 50)).toMatchObject([{ providerId: 'p1', state: 'down', reason: 'disconnected' }])
    for (let t = T0 + 100; t <= T0 + 5000; t += 100) expect(l.heartbeat('p1', t)).toBeNull()
    expect(l.observations().find((o) => o.providerId === 'p1')).toMatchObject({ state: 'down', lastSeen: T0 })
    l.connected(E1)
    expect(l.heartbeat('p1', T0 + 5100)).toEqual({ providerId: 'p1', state: 'up', lastSeen: T0 + 5100 })
  })

  it('counts a heartbeat only from the provider\'s own connection when told where it came from', () => {
    const l = createBareLiveness()
    l.assign([task('p1'), task('p2', { heartbeat: E2 })], T0)
    l.connected(E1)
    l.connected(E2)
    // Both endpoints are up, but p1's id over E2's connection is another publisher's forgery.
    expect(l.heard('p1', E2)).toBe(false)
    expect(l.heard('p1', E1)).toBe(true)
  })

  it('forgets a connection the worker closed itself, and one whose endpoint is no longer watched', () => {
    const l = createBareLiveness()
    l.assign([task('p1')], T0)
    l.connected(E1)
    l.closed(E1)
    expect(l.heard('p1')).toBe(false)
    l.connected(E1)
    l.assign([], T0)
    l.assign([task('p1')], T0)
    expect(l.heard('p1')).toBe(false)
    // A handshake from an endpoint nobody watches opens nothing.
    l.connected(E2)
    l.assign([task('p2', { heartbeat: E2 })], T0)
    expect(l.heard('p2')).toBe(false)
  })

  it('summarises each up provider whose lastSeen moved since the previous summary, and nothing else', () => {
    const l = createLiveness()
    l.assign([task('p1'), task('p2', { heartbeat: E2 }), task('p3', { state: 'up', lastSeen: T0 - 50 })], T0)
    // p3 comes with the leader's lastSeen: not news. Nothing beat yet.
    expect(l.freshlySeen()).toEqual([])
    l.heartbeat('p1', T0 + 10)
    l.heartbeat('p1', T0 + 110)
    l.heartbeat('p3', T0 + 20)
    expect(l.freshlySeen()).toEqual([['p1', T0 + 110], ['p3', T0 + 20]])
    // Nothing moved since: an empty summary.
    expect(l.freshlySeen()).toEqual([])
    l.heartbeat('p1', T0 + 210)
    expect(l.freshlySeen()).toEqual([['p1', T0 + 210]])
    // A provider that went down is not summarised: its down carried its lastSeen.
    l.heartbeat('p2', T0 + 220)
    l.disconnected(E2, T0 + 230)
    expect(l.freshlySeen()).toEqual([])
  })

  it('starts a provider moved to a new endpoint over, with the task\'s lastSeen as what the leader knows', () => {
    const l = createLiveness()
    l.assign([task('p1')], T0)
    l.heartbeat('p1', T0 + 10)
    l.assign([task('p1', { heartbeat: E2, state: 'pending', lastSeen: null })], T0 + 20)
    expect(l.freshlySeen()).toEqual([])
    l.heartbeat('p1', T0 + 30)
    expect(l.freshlySeen()).toEqual([['p1', T0 + 30]])
  })
})
