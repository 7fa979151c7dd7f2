import { describe, expect, it } from 'vitest'
import { createAssignment } from '../../server/leader/assignment.js'
import { createWorkerRegistry } from '../../server/leader/worker-registry.js'

function sizes (a: ReturnType<typeof createAssignment>): number[] {
  return a.workers().map((w) => a.tasksOf(w).size).sort((x, y) => x - y)
}

describe('assignment', () => {
  it('holds providers while there is no worker and spreads them evenly once workers join', () => {
    const a = createAssignment()
    for (let i = 0; i < 10; i++) a.addProvider(`p${i}`)
    a.balance()
    expect(a.takeChanges().size).toBe(0)
    a.addWorker('w1'); a.addWorker('w2'); a.addWorker('w3')
    a.balance()
    expect(sizes(a)).toEqual([3, 3, 4])
  })

  it('moves only what it must when a worker joins or leaves', () => {
    const a = createAssignment()
    a.addWorker('w1'); a.addWorker('w2')
    for (let i = 0; i < 100; i++) a.addProvider(`p${i}`)
    a.balance()
    const ownerOf = (p: string): string => [...a.watchersOf(p)].join()
    const before = new Map(Array.from({ length: 100 }, (_, i) => [`p${i}`, ownerOf(`p${i}`)]))
    a.takeChanges()
    a.addWorker('w3')
    a.balance()
    const moved = [...before].filter(([p, w]) => ownerOf(p) !== w).length
    expect(moved).toBe(33)
    expect(sizes(a)).toEqual([33, 33, 34])
    // The changes are exactly the moves: each one a removal from one worker, an addition to another.
    const count = (changes: Map<string, Map<string, boolean>>, watched: boolean): number =>
      [...changes.values()].reduce((sum, c) => sum + [...c.values()].filter((v) => v === watched).length, 0)
    const joined = a.takeChanges()
    expect([count(joined, true), count(joined, false)]).toEqual([33, 33])
    expect([...(joined.get('w3')?.values() ?? [])].every((v) => v)).toBe(true)
    const w2Had = [...a.tasksOf('w2')]
    a.removeWorker('w2')
    a.balance()
    const left = a.takeChanges()
    expect(left.has('w2')).toBe(false)
    expect(sizes(a)).toEqual([50, 50])
    expect([...left.values()].flatMap((c) => [...c.keys()]).sort()).toEqual(w2Had.sort())
  })

  it('retask puts a provider in its watchers\' next changes, and nowhere else', () => {
    const a = createAssignment({ watchers: 2 })
    a.addWorker('w1'); a.addWorker('w2'); a.addWorker('w3')
    a.addProvider('p1'); a.addProvider('p2')
    a.balance()
    a.takeChanges()
    expect(a.changed).toBe(false)
    a.retask('p1')
    expect(a.changed).toBe(true)
    const watchers = [...a.watchersOf('p1')].sort()
    expect(watchers).toHaveLength(2)
    expect([...a.takeChanges()].map(([w, c]) => [w, [...c]]).sort()).toEqual(watchers.map((w) => [w, [['p1', true]]]))
  })

  it('keeps a provider with the worker that reported it', () => {
    const a = createAssignment()
    a.addWorker('w1'); a.addWorker('w2')
    a.addProvider('p1', 'w2')
    a.addProvider('p2')
    a.balance()
    expect([...a.watchersOf('p1')]).toEqual(['w2'])
    expect([...a.watchersOf('p2')]).toEqual(['w1'])
  })

  describe('with two watchers per provider', () => {
    it('gives every provider two distinct workers, evenly, and one while only one is live', () => {
      const a = createAssignment({ watchers: 2 })
      a.addWorker('w1')
      for (let i = 0; i < 9; i++) a.addProvider(`p${i}`)
      a.balance()
      expect(sizes(a)).toEqual([9])
      a.addWorker('w2'); a.addWorker('w3')
      a.balance()
      for (let i = 0; i < 9; i++) expect(a.watchersOf(`p${i}`).size).toBe(2)
      expect(sizes(a)).toEqual([6, 6, 6])
    })

    it('replaces only the watches of a worker that leaves, and tells each one it ends', () => {
      const unwatched: string[] = []
      const a = createAssignment({ watchers: 2, onUnwatch: (p, w) => unwatched.push(`${p}@${w}`) })
      for (const w of ['w1', 'w2', 'w3']) a.addWorker(w)
      for (let i = 0; i < 30; i++) a.addProvider(`p${i}`)
      a.balance()
      expect(unwatched).toEqual([])
      const before = new Map(Array.from({ length: 30 }, (_, i) => [`p${i}`, new Set(a.watchersOf(`p${i}`))]))
      const lost = [...a.tasksOf('w2')].map((p) => `${p}@w2`).sort()
      a.removeWorker('w2')
      a.balance()
      expect(unwatched.sort()).toEqual(lost)
      expect(sizes(a)).toEqual([30, 30])
      for (const [p, was] of before) {
        const now = a.watchersOf(p)
        expect(now.size).toBe(2)
        // A watch that survived the departure stays where it was.
        for (const w of was) if (w !== 'w2') expect(now.has(w)).toBe(true)
      }
    })

    it('lets a reporting worker claim a free place, but never a third one', () => {
      const a = createAssignment({ watchers: 2 })
      for (const w of ['w1', 'w2', 'w3']) a.addWorker(w)
      a.addProvider('p1', 'w3')
      a.addProvider('p1', 'w1')
      a.addProvider('p1', 'w2')
      a.balance()
      expect([...a.watchersOf('p1')].sort()).toEqual(['w1', 'w3'])
    })
  })
})

describe('worker registry', () => {
  it('expires a worker only after its expiry has passed since its last message', () => {
    const r = createWorkerRegistry(1000)
    expect(r.seen('w1', 0)).toBe(true)
    expect(r.seen('w1', 900)).toBe(false)
    expect(r.expire(1900)).toEqual([])
    expect(r.expire(1901)).toEqual(['w1'])
    expect(r.seen('w1', 2000)).toBe(true)
  })
})
