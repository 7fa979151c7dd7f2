import { describe, expect, it } from 'vitest'
import { createFlapDamper } from '../../server/leader/flap-damping.js'

describe('flap damping', () => {
  const config = { maxChanges: 3, windowMs: 10_000, holdMs: 5_000 }

  it('holds a provider that changes more than maxChanges times within the window', () => {
    const d = createFlapDamper(config)
    expect(d.observe('p', 'down', 0)).toBe(false)
    expect(d.observe('p', 'up', 1000)).toBe(false)
    expect(d.observe('p', 'down', 2000)).toBe(false)
    expect(d.observe('p', 'up', 3000)).toBe(true)
    expect(d.isHeld('p')).toBe(true)
  })

  it('does not count a repeat of the last observed state (a worker resending)', () => {
    const d = createFlapDamper(config)
    for (let i = 0; i < 10; i++) expect(d.observe('p', 'down', i)).toBe(false)
  })

  it('does not count changes that fell out of the window', () => {
    const d = createFlapDamper(config)
    d.observe('p', 'down', 0)
    d.observe('p', 'up', 1000)
    d.observe('p', 'down', 2000)
    expect(d.observe('p', 'up', 12_500)).toBe(false)
  })

  it('releases with the last observed state once stable for holdMs, not before', () => {
    const d = createFlapDamper(config)
    for (const [i, s] of (['down', 'up', 'down', 'up', 'down'] as const).entries()) d.observe('p', s, i * 100)
    expect(d.release(400 + 4_999)).toEqual([])
    d.observe('p', 'up', 5000)
    expect(d.release(5000 + 4_999)).toEqual([])
    expect(d.release(10_000)).toEqual([{ providerId: 'p', state: 'up' }])
    expect(d.isHeld('p')).toBe(false)
  })
})
