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
    expect(a.balance().size).toBe(0)
    a.addWorker('w1'); a.addWorker('w2'); a.addWorker('w3')
    a.balance()
    expect(sizes(a)).toEqual([3, 3, 4])
  })

  it('moves only what it must when a worker joins or leaves', () => {
    const a = createAssignment()
    a.addWorker('w1'); a.addWorker('w2')
    for (let i = 0; i < 100; i++) a.addProvider(`p${i}`)
    a.balance()
    const before = new Map(Array.from({ length: 100 }, (_, i) => [`p${i}`, a.ownerOf(`p${i}`)]))
    a.addWorker('w3')
    a.balance()
    const moved = [...before].filter(([p, w]) => a.ownerOf(p) !== w).length
    expect(moved).toBe(33)
    expect(sizes(a)).toEqual([33, 33, 34])
    a.removeWorker('w2')
    const changed = a.balance()
    expect(changed.has('w2')).toBe(false)
    expect(sizes(a)).toEqual([50, 50])
  })

  it('keeps a provider with the worker that reported it', () => {
    const a = createAssignment()
    a.addWorker('w1'); a.addWorker('w2')
    a.addProvider('p1', 'w2')
    a.addProvider('p2')
    a.balance()
    expect(a.ownerOf('p1')).toBe('w2')
    expect(a.ownerOf('p2')).toBe('w1')
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
