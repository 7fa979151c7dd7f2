import { describe, expect, it } from 'vitest'
import { createReplica } from '../../server/gateway/replica.js'
import type { Change } from '../../server/protocol/model.js'
import { change, history, provider } from './helpers.js'

describe('replica', () => {
  it('is not ready, and treats every change as a gap, until its first snapshot', () => {
    const replica = createReplica()
    expect(replica.ready).toBe(false)
    expect(replica.revision).toBe(0)
    expect(replica.apply(change(1, 'registered', provider({ id: 'a' })))).toBe('gap')
    expect(replica.historySince(0)).toBeNull()
    replica.loadSnapshot(0, [])
    expect(replica.ready).toBe(true)
    expect(replica.apply(change(1, 'registered', provider({ id: 'a' })))).toBe('applied')
  })

  it('applies only the next revision: older is a duplicate, newer a gap', () => {
    const replica = createReplica()
    replica.loadSnapshot(10, [provider({ id: 'a', revision: 10 })])
    expect(replica.apply(change(10, 'updated', provider({ id: 'a', port: 1 })))).toBe('duplicate')
    expect(replica.apply(change(12, 'updated', provider({ id: 'a', port: 2 })))).toBe('gap')
    expect(replica.provider('a')?.port).toBe(8080)
    expect(replica.apply(change(11, 'updated', provider({ id: 'a', port: 3 })))).toBe('applied')
    expect(replica.revision).toBe(11)
    expect(replica.provider('a')).toMatchObject({ port: 3, revision: 11 })
  })

  it('indexes by service, counts up providers, and forgets deregistered ones', () => {
    const replica = createReplica()
    replica.loadSnapshot(1, [
      provider({ id: 'o-2', service: 'orders', state: 'up' }),
      provider({ id: 'o-1', service: 'orders', state: 'down' }),
      provider({ id: 'b-1', service: 'billing', state: 'up' })
    ])
    expect(replica.services()).toEqual([
      { name: 'billing', providers: 1, up: 1 },
      { name: 'orders', providers: 2, up: 1 }
    ])
    expect(replica.providers('orders').map((p) => p.id)).toEqual(['o-1', 'o-2'])
    expect(replica.providers().map((p) => p.id)).toEqual(['b-1', 'o-1', 'o-2'])
    expect(replica.providers('nope')).toEqual([])

    replica.apply(change(2, 'up', provider({ id: 'o-1', service: 'orders', state: 'up' })))
    replica.apply(change(3, 'deregistered', provider({ id: 'b-1', service: 'billing' })))
    expect(replica.services()).toEqual([{ name: 'orders', providers: 2, up: 2 }])
    expect(replica.provider('b-1')).toBeUndefined()
    expect(replica.providers('billing')).toEqual([])
  })

  it('keeps a bounded, contiguous history for resumes', () => {
    const replica = createReplica({ historyLimit: 5 })
    replica.loadSnapshot(100, [])
    expect(replica.historySince(100)).toEqual([])
    expect(replica.historySince(99)).toBeNull()
    for (const c of history(101, 8)) expect(replica.apply(c)).toBe('applied')
    // Holds (103, 108]: since 103 is the oldest resume it can serve.
    expect(replica.historySince(102)).toBeNull()
    expect(replica.historySince(103)?.map((c) => c.revision)).toEqual([104, 105, 106, 107, 108])
    expect(replica.historySince(106)?.map((c) => c.revision)).toEqual([107, 108])
    expect(replica.historySince(108)).toEqual([])
    expect(replica.historySince(109)).toBeNull()
  })

  it('restarts history and notifies listeners on a new snapshot', () => {
    const replica = createReplica()
    const seen: string[] = []
    const unsubscribe = replica.subscribe({
      change: (c: Change) => seen.push(`change ${c.revision}`),
      reset: () => seen.push(`reset ${replica.revision}`)
    })
    replica.loadSnapshot(1, [])
    replica.apply(change(2, 'registered', provider({ id: 'a' })))
    replica.loadSnapshot(50, [provider({ id: 'z' })])
    expect(replica.historySince(2)).toBeNull()
    expect(replica.providers().map((p) => p.id)).toEqual(['z'])
    unsubscribe()
    replica.apply(change(51, 'registered', provider({ id: 'b' })))
    expect(seen).toEqual(['reset 1', 'change 2', 'reset 50'])
  })

  it('waits for a revision, bounded', async () => {
    const replica = createReplica()
    replica.loadSnapshot(1, [])
    expect(await replica.waitForRevision(1, 10)).toBe(true)
    const reached = replica.waitForRevision(3, 2000)
    replica.apply(change(2, 'registered', provider({ id: 'a' })))
    replica.apply(change(3, 'updated', provider({ id: 'a' })))
    expect(await reached).toBe(true)
    const started = Date.now()
    expect(await replica.waitForRevision(10, 50)).toBe(false)
    expect(Date.now() - started).toBeGreaterThanOrEqual(45)
  })

  it('refreshes lastSeen of up and maintenance providers only forward, without a revision, history or listener call', () => {
    const replica = createReplica()
    const T = Date.parse('2026-11-27T10:00:00.000Z')
    replica.loadSnapshot(5, [
      provider({ id: 'up-1', state: 'up', lastSeen: new Date(T).toISOString(), revision: 5 }),
      provider({ id: 'held-1', state: 'maintenance', lastSeen: null, revision: 4 }),
      provider({ id: 'pending-1', state: 'pending', lastSeen: null, revision: 3 }),
      provider({ id: 'down-1', state: 'down', lastSeen: new Date(T).toISOString(), revision: 2 })
    ])
    const calls: string[] = []
    replica.subscribe({ change: (c) => calls.push(`change ${c.revision}`), reset: () => calls.push('reset') })
    const held = replica.provider('up-1')
    const version = replica.version
    expect(replica.refreshLastSeen([
      ['up-1', T + 500], ['held-1', T + 500], ['pending-1', T + 500], ['down-1', T + 500], ['nobody', T + 500]
    ])).toBe(2)
    expect(replica.provider('up-1')).toMatchObject({ lastSeen: new Date(T + 500).toISOString(), revision: 5 })
    expect(replica.provider('held-1')?.lastSeen).toBe(new Date(T + 500).toISOString())
    // A pending or down provider gets its lastSeen with its next event, not here.
    expect(replica.provider('pending-1')?.lastSeen).toBeNull()
    expect(replica.provider('down-1')?.lastSeen).toBe(new Date(T).toISOString())
    // An object already handed to a read is not altered; the list and the index agree.
    expect(held?.lastSeen).toBe(new Date(T).toISOString())
    expect(replica.providers('orders').find((p) => p.id === 'up-1')?.lastSeen).toBe(new Date(T + 500).toISOString())
    // Older or equal values (a late or repeated LAST_SEEN) change nothing.
    expect(replica.refreshLastSeen([['up-1', T + 500], ['up-1', T + 100]])).toBe(0)
    expect(replica.provider('up-1')?.lastSeen).toBe(new Date(T + 500).toISOString())
    expect(replica.revision).toBe(5)
    expect(replica.historySince(5)).toEqual([])
    expect(calls).toEqual([])
    expect(replica.version).toBeGreaterThan(version)
  })
})
