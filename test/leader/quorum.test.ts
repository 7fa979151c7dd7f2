import { describe, expect, it } from 'vitest'
import { createObserverQuorum } from '../../server/leader/quorum.js'
import type { Observation } from '../../server/protocol/messages.js'

const both = new Set(['w1', 'w2'])
const up = (lastSeen: number): Observation => ({ providerId: 'p', state: 'up', lastSeen })
const down = (lastSeen: number, detectedAfterMs: number, reason: Observation['reason'] = 'disconnected'): Observation =>
  ({ providerId: 'p', state: 'down', lastSeen, reason, detectedAfterMs })

describe('observer quorum', () => {
  it('passes every observation through with a single watcher', () => {
    const q = createObserverQuorum()
    expect(q.observe('w1', down(100, 5), new Set(['w1']), 'up')).toEqual(down(100, 5))
    expect(q.observe('w1', up(200), new Set(['w1']), 'down')).toEqual(up(200))
  })

  it('holds a down while another watcher has not seen it, and declares it when the last one agrees', () => {
    const q = createObserverQuorum()
    // w1 is cut off from the provider; w2 (never reported: it was told `up`) still hears it.
    expect(q.observe('w1', down(100, 300, 'silent'), both, 'up')).toBeNull()
    // The provider dies: w2 sees the close 20 ms after its last heartbeat at 1000.
    expect(q.observe('w2', down(1000, 20), both, 'up')).toEqual(down(1000, 20))
  })

  it('dates a down from the freshest heartbeat any watcher had', () => {
    const q = createObserverQuorum()
    expect(q.observe('w2', down(1000, 20), both, 'up')).toBeNull()
    // w1 decides last, 350 ms after its own last heartbeat at 700: 50 ms after w2's last one.
    expect(q.observe('w1', down(700, 350, 'silent'), both, 'up')).toEqual({ ...down(1000, 50, 'silent') })
  })

  it('any watcher that sees the provider makes it up; down again needs every watcher to see it gone', () => {
    const q = createObserverQuorum()
    q.observe('w1', down(100, 5), both, 'up')
    q.observe('w2', down(100, 6), both, 'up')
    expect(q.observe('w1', up(500), both, 'down')).toEqual(up(500))
    // w2 has not seen it come back (it is the one cut off now): w1 losing it again is agreement.
    expect(q.observe('w1', down(600, 5), both, 'up')).toEqual(down(600, 5))
    q.observe('w1', up(700), both, 'down')
    q.observe('w2', up(710), both, 'up')
    expect(q.observe('w1', down(800, 5), both, 'up')).toBeNull()
  })

  it('concludes down when the last dissenting watcher leaves, and not when a newcomer replaces it', () => {
    const q = createObserverQuorum()
    expect(q.observe('w1', down(100, 5), both, 'up')).toBeNull()
    q.unwatch('p', 'w2')
    // w3 replaced w2 and was told `up`: no agreement.
    expect(q.conclude('p', new Set(['w1', 'w3']), 'up')).toBeNull()
    // No replacement: w1 is the only watcher left, and it sees the provider down.
    expect(q.conclude('p', new Set(['w1']), 'up')).toEqual(down(100, 5))
    expect(q.conclude('p', new Set(['w1']), 'down')).toBeNull()
    expect(q.conclude('p', new Set(), 'up')).toBeNull()
  })

  it('forgets a watcher\'s view when it stops watching: given the provider again, it starts from its new task', () => {
    const q = createObserverQuorum()
    q.observe('w1', down(100, 5), both, 'up')
    q.unwatch('p', 'w1')
    expect(q.observe('w2', down(200, 5), both, 'up')).toBeNull()
    q.forget('p')
    expect(q.conclude('p', both, 'up')).toBeNull()
  })
})
