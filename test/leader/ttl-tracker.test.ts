// The TTL tracker on a fake clock: a renewal keeps a provider alive for exactly ttlMs, an
// expiry is reported once, and a grant (leader takeover) gives a full TTL without a renewal.
import { describe, expect, it } from 'vitest'
import { createTtlTracker } from '../../server/leader/ttl-tracker.js'

const T0 = 1_700_000_000_000

describe('ttl tracker', () => {
  it('keeps a renewed provider alive for exactly ttlMs, then reports it expired once', () => {
    const ttl = createTtlTracker()
    ttl.renew('a', 1000, T0)
    ttl.renew('b', 5000, T0)
    expect(ttl.alive('a', T0 + 999)).toBe(T0)
    expect(ttl.expire(T0 + 999)).toEqual([])
    expect(ttl.expire(T0 + 1000)).toEqual([{ providerId: 'a', lastRenewal: T0, ttlMs: 1000 }])
    expect(ttl.alive('a', T0 + 1000)).toBeNull()
    expect(ttl.expire(T0 + 2000)).toEqual([])
    expect(ttl.size).toBe(1)
  })

  it('moves the deadline with every renewal', () => {
    const ttl = createTtlTracker()
    ttl.renew('a', 1000, T0)
    ttl.renew('a', 1000, T0 + 900)
    expect(ttl.expire(T0 + 1500)).toEqual([])
    expect(ttl.expire(T0 + 1900)).toEqual([{ providerId: 'a', lastRenewal: T0 + 900, ttlMs: 1000 }])
  })

  it('grants a full TTL from now while remembering the last known renewal', () => {
    const ttl = createTtlTracker()
    ttl.grant('a', 1000, T0 - 60_000, T0)
    expect(ttl.alive('a', T0 + 999)).toBe(T0 - 60_000)
    expect(ttl.expire(T0 + 1000)).toEqual([{ providerId: 'a', lastRenewal: T0 - 60_000, ttlMs: 1000 }])
  })

  it('forgets a provider', () => {
    const ttl = createTtlTracker()
    ttl.renew('a', 1000, T0)
    ttl.forget('a')
    expect(ttl.expire(T0 + 10_000)).toEqual([])
    expect(ttl.alive('a', T0)).toBeNull()
  })
})
