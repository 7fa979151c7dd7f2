// Flap damping through the real leader: a scripted worker (a real DEALER) reports a provider
// bouncing, and the leader's feed (a real SUB) shows one `down` with reason `flapping` instead of
// every bounce, then the provider's real state once it has been stable for the hold time.
import { beforeAll, expect, it } from 'vitest'
import { context } from 'zeromq'
import { describeWithDatabase, type Backend } from '../helpers/postgres.js'
import { useLocalLeaders } from './local-leader.js'

beforeAll(() => { context.blocky = false })

const FLAP = { maxChanges: 3, windowMs: 10_000, holdMs: 1500 }

describeWithDatabase('flap damping', (backend: Backend) => {
  const { start, follower } = useLocalLeaders(backend, { flapDamping: FLAP })

  it('holds a bouncing provider down as flapping, publishes no bounce meanwhile, and releases it once stable', async () => {
    const { bind, gw, feed } = await start()
    const worker = follower(bind)

    const put = await gw.write({ type: 'register', service: 'bouncy', id: 'b-1', spec: { host: '127.0.0.1', port: 80, protocol: 'rpc', heartbeat: 'tcp://127.0.0.1:39999', heartbeatIntervalMs: 100 } })
    expect(put.ok).toBe(true)
    await worker.ready()
    // b-1 is assigned once the leader's takeover settle time has passed.
    await worker.next('ASSIGN', (b) => b.tasks.some((t) => t.providerId === 'b-1'), { timeoutMs: 5000 })

    const states = ['up', 'down', 'up', 'down', 'up', 'down', 'up'] as const
    let seq = 0
    let lastSeen = Date.now()
    for (const state of states) {
      lastSeen = Date.now()
      worker.report(++seq, [{ providerId: 'b-1', state, lastSeen, ...(state === 'down' ? { reason: 'disconnected' as const } : {}) }])
      await worker.next('ACK', (b) => b.seq === seq)
    }
    const events = feed.changes().filter((c) => c.provider.id === 'b-1' && c.event !== 'registered')
    // Three changes are tolerated; the fourth makes it flapping; the rest are absorbed.
    expect(events.map((c) => [c.event, c.provider.reason ?? null])).toEqual([
      ['up', null], ['down', 'disconnected'], ['up', null], ['down', 'flapping']
    ])

    const heldSince = Date.now()
    const from = feed.received.length
    const released = await feed.nextChange((c) => c.provider.id === 'b-1' && c.event === 'up', { from, timeoutMs: 10_000 })
    expect(Date.now() - heldSince).toBeGreaterThanOrEqual(FLAP.holdMs - 100)
    expect(released.provider.state).toBe('up')
  }, 30_000)
})
