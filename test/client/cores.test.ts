// The client's two pure cores, with an injected clock and randomness: the gateway pool (the
// order calls try the gateways in, cooldowns, backoff) and the feed cursor (what a watch hands
// on and what it drops across reconnections). The I/O around them is tested against real
// gateways in the other files of this folder.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { admit } from '../../client/feed-cursor.js'
import { BACKOFF_FIRST_MS, BACKOFF_MAX_MS, backoffMs, GATEWAY_COOLDOWN_MS, GatewayPool } from '../../client/gateway-pool.js'

const [A, B, C] = ['http://a:7070', 'http://b:7070', 'http://c:7070']

describe('the gateway pool', () => {
  it('starts each call one gateway further round the ring', () => {
    const pool = new GatewayPool([A, B, C], () => 0)
    expect([pool.order(), pool.order(), pool.order(), pool.order()]).toEqual([[A, B, C], [B, C, A], [C, A, B], [A, B, C]])
  })

  it('tries a gateway that failed last until its cooldown ends, and at once again once it answers', () => {
    let now = 1000
    const pool = new GatewayPool([A, B, C], () => now)
    pool.failed(A)
    expect(pool.order()).toEqual([B, C, A])
    expect(pool.order()).toEqual([B, C, A])
    now += GATEWAY_COOLDOWN_MS - 1
    expect(pool.order()).toEqual([C, B, A])
    now += 1
    expect(pool.order()).toEqual([A, B, C])
    pool.failed(B)
    pool.succeeded(B)
    expect(pool.order()).toEqual([B, C, A])
  })

  it('when every gateway is cooling down, tries the one that comes back first first', () => {
    let now = 0
    const pool = new GatewayPool([A, B, C], () => now)
    pool.failed(C)
    now = 10
    pool.failed(A)
    now = 20
    pool.failed(B)
    expect(pool.order()).toEqual([C, A, B])
  })

  it('refuses an empty list', () => {
    expect(() => new GatewayPool([])).toThrow(TypeError)
  })

  it('backs off exponentially within [ceiling/2, ceiling], capped, never below Retry-After', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 100 }), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (round, r) => {
      const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** round)
      const ms = backoffMs(round, undefined, () => r)
      return ms >= ceiling / 2 && ms <= ceiling
    }))
    expect(backoffMs(0, undefined, () => 0)).toBe(BACKOFF_FIRST_MS / 2)
    expect(backoffMs(30, undefined, () => 0.999)).toBe(BACKOFF_MAX_MS)
    expect(backoffMs(0, 1000, () => 0)).toBe(1000)
  })
})

const provider = { id: 'p', service: 's' }
const event = (revision: number) => ({ type: 'event', revision, event: 'registered', provider })
const snapshot = (revision: number, reset?: true) => ({ type: 'snapshot', revision, providers: [], ...(reset === undefined ? {} : { reset }) })

describe('the feed cursor', () => {
  it('hands on a first snapshot as it is and moves the cursor to it', () => {
    expect(admit(null, false, snapshot(7))).toEqual({ message: snapshot(7), cursor: 7 })
  })

  it('drops events at or below the cursor and hands on the rest in order', () => {
    let cursor: number | null = 5
    const out: number[] = []
    for (const r of [4, 5, 6, 6, 7, 3, 9]) {
      const { message, cursor: next } = admit(cursor, true, event(r))
      cursor = next
      if (message !== null) out.push(message.revision)
    }
    expect(out).toEqual([6, 7, 9])
    expect(cursor).toBe(9)
  })

  it('marks a snapshot that follows delivered messages as a reset, and restarts the cursor from it', () => {
    const { message, cursor } = admit(40, true, snapshot(30))
    expect(message).toEqual(snapshot(30, true))
    expect(cursor).toBe(30)
    expect(admit(cursor, true, event(31)).message?.revision).toBe(31)
  })

  it('drops what is not a message it knows, whatever it is, and keeps the cursor', () => {
    fc.assert(fc.property(fc.anything(), fc.option(fc.nat(), { nil: null }), (frame, cursor) => {
      const known = typeof frame === 'object' && frame !== null && ['snapshot', 'event'].includes((frame as { type?: unknown }).type as string) &&
        Number.isSafeInteger((frame as { revision?: unknown }).revision) && (frame as { revision: number }).revision >= 0
      const { message, cursor: next } = admit(cursor, true, frame)
      return known || (message === null && next === cursor)
    }))
    expect(admit(3, true, { type: 'event', revision: '4' })).toEqual({ message: null, cursor: 3 })
    expect(admit(3, true, { type: 'hello', revision: 9 })).toEqual({ message: null, cursor: 3 })
  })
})
