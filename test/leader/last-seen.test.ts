// The leader's lastSeen rules (server/leader/last-seen.ts), pure: which summary entries count,
// what a commit must not undo, and what the change log's entries carry when served.
import { describe, expect, it } from 'vitest'
import { acceptSeen, freshEvents, keepFresher, SEEN_FUTURE_TOLERANCE_MS, withLastSeen } from '../../server/leader/last-seen.js'
import type { Change, Provider } from '../../server/protocol/model.js'

const T0 = Date.parse('2026-11-27T10:00:00.000Z')
const iso = (ms: number): string => new Date(ms).toISOString()

function provider (overrides: Partial<Provider> = {}): Provider {
  return {
    id: 'p1', service: 'orders', host: '10.0.0.5', port: 8080, protocol: 'http', heartbeat: 'tcp://10.0.0.5:9100', heartbeatIntervalMs: 100,
    tags: [], meta: {}, state: 'up', stateSince: iso(T0), lastSeen: iso(T0), revision: 7, ...overrides
  }
}

const W1 = new Set(['w1'])

describe('acceptSeen', () => {
  it('takes a later lastSeen from a watcher of an up or maintenance provider', () => {
    expect(acceptSeen(provider(), W1, 'w1', T0 + 500, T0 + 600)).toBe(T0 + 500)
    expect(acceptSeen(provider({ state: 'maintenance' }), W1, 'w1', T0 + 500, T0 + 600)).toBe(T0 + 500)
    expect(acceptSeen(provider({ lastSeen: null }), W1, 'w1', T0 + 500, T0 + 600)).toBe(T0 + 500)
  })

  it('ignores unknown providers, workers that do not watch the provider, and pending or down ones', () => {
    expect(acceptSeen(undefined, W1, 'w1', T0 + 500, T0 + 600)).toBeNull()
    expect(acceptSeen(provider(), W1, 'w2', T0 + 500, T0 + 600)).toBeNull()
    expect(acceptSeen(provider(), new Set(), 'w1', T0 + 500, T0 + 600)).toBeNull()
    // A summary that raced a new endpoint (pending, lastSeen null) must not bring the old one's life.
    expect(acceptSeen(provider({ state: 'pending', lastSeen: null }), W1, 'w1', T0 + 500, T0 + 600)).toBeNull()
    expect(acceptSeen(provider({ state: 'down' }), W1, 'w1', T0 + 500, T0 + 600)).toBeNull()
  })

  it('ignores a value not later than the stored one, and one in the future beyond the tolerance', () => {
    expect(acceptSeen(provider(), W1, 'w1', T0, T0 + 600)).toBeNull()
    expect(acceptSeen(provider(), W1, 'w1', T0 - 1, T0 + 600)).toBeNull()
    expect(acceptSeen(provider(), W1, 'w1', T0 + 600 + SEEN_FUTURE_TOLERANCE_MS + 1, T0 + 600)).toBeNull()
    expect(acceptSeen(provider(), W1, 'w1', Number.MAX_SAFE_INTEGER, T0 + 600)).toBeNull()
    // Within the tolerance (another host's clock slightly ahead): taken as now, never later.
    expect(acceptSeen(provider(), W1, 'w1', T0 + 900, T0 + 600)).toBe(T0 + 600)
  })
})

describe('keepFresher', () => {
  it('keeps a lastSeen accepted while the change was committed, unless the provider is watched anew', () => {
    const before = provider({ lastSeen: iso(T0 + 900) })
    const committed = provider({ state: 'maintenance', lastSeen: iso(T0 + 400), revision: 8 })
    expect(keepFresher(before, committed, false)).toEqual({ ...committed, lastSeen: iso(T0 + 900) })
    expect(keepFresher(before, committed, true)).toBe(committed)
    // The committed one is as fresh or fresher (a down carries the last heartbeat): itself.
    expect(keepFresher(before, provider({ lastSeen: iso(T0 + 950), revision: 8 }), false).lastSeen).toBe(iso(T0 + 950))
    expect(keepFresher(undefined, committed, false)).toBe(committed)
    // A registration at a new endpoint resets lastSeen to null: it stays null.
    const reset = provider({ state: 'pending', lastSeen: null, revision: 8 })
    expect(keepFresher(before, reset, true)).toBe(reset)
  })
})

describe('freshEvents', () => {
  it("gives a provider's latest change its current lastSeen, and leaves history as committed", () => {
    const current = withLastSeen(provider({ revision: 9 }), T0 + 3000)
    const log: Change[] = [
      { revision: 8, event: 'down', provider: provider({ state: 'down', revision: 8 }) },
      { revision: 9, event: 'up', provider: provider({ revision: 9 }) },
      { revision: 10, event: 'deregistered', provider: provider({ id: 'gone', revision: 10 }) }
    ]
    const served = freshEvents(log, (id) => (id === 'p1' ? current : undefined))
    expect(served[0]).toBe(log[0])
    expect(served[1]).toEqual({ ...log[1], provider: { ...log[1]?.provider, lastSeen: iso(T0 + 3000) } })
    expect(served[2]).toBe(log[2])
    // The log's own entries are not altered.
    expect(log[1]?.provider.lastSeen).toBe(iso(T0))
  })
})
