// Generated hostile frames (zmq-frames.ts) against a worker: on its heartbeat SUB from a hostile
// "provider" PUB at the endpoint the (scripted) leader assigned it, and on its DEALER from the
// leader itself. No crash, every delivered frame counted (the SUB's `hb` subscription filters
// out, inside libzmq, what does not start with `hb`: those never reach the worker), no heartbeat
// accepted and no REPORT sent, the task still watched. FUZZ_RUNS frames per socket.
import fc from 'fast-check'
import { afterEach, describe, expect, it } from 'vitest'
import { XPublisher } from 'zeromq'
import { Inbound } from '../../server/protocol/messages.js'
import { HEARTBEAT_SUB_MAX_BYTES } from '../../server/protocol/socket-limits.js'
import { silentLog } from '../../server/common/log.js'
import { createWorker } from '../../server/worker/worker.js'
import { waitFor } from '../../harness/wait-for.js'
import { pendingTask, startScriptedLeader } from '../worker/scripted-leader.js'
import { FUZZ_RUNS, FUZZ_SEED, hostileMessage, hostileSample, hostileString, sendInBatches } from './zmq-frames.js'

const closers: Array<() => Promise<void> | void> = []
afterEach(async () => { for (const c of closers.splice(0).reverse()) await c() })

const WATCHED = 'w-1'

/** Heartbeat-shaped messages: `hb` (or a near miss) and a hostile id, any extra frames; plus
 *  the general hostile messages. A real heartbeat of the watched provider is left out. */
const hostileHeartbeat = fc.oneof(
  fc.tuple(fc.constantFrom('hb', 'hbx', 'hb\u0000', 'h'), fc.oneof(hostileString, fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b))), fc.array(fc.uint8Array({ maxLength: 50 }), { maxLength: 3 }))
    .map(([topic, id, rest]) => [Buffer.from(topic), Buffer.from(id), ...rest.map((r) => Buffer.from(r))]),
  fc.constant([Buffer.from('hb')]),
  hostileMessage
).filter((m) => !(m[0]?.toString() === 'hb' && m[1]?.toString() === WATCHED))
  // Oversized frames drop the connection instead (tried separately below).
  .filter((m) => m.every((f) => f.length <= HEARTBEAT_SUB_MAX_BYTES))

describe('fuzz: a worker fed by a hostile provider and a hostile leader', () => {
  it(`counts ${FUZZ_RUNS} generated messages on each of its heartbeat SUB and its DEALER, and reports nothing`, async () => {
    const provider = new XPublisher({ linger: 0, sendHighWaterMark: FUZZ_RUNS + 100 })
    closers.push(() => provider.close())
    await provider.bind('tcp://127.0.0.1:*')
    let subscribed = false
    void (async () => { for await (const _ of provider) subscribed = true })().catch(() => {})

    const leader = await startScriptedLeader({ tasks: [pendingTask(WATCHED, provider.lastEndpoint as string, 60_000)] })
    closers.push(() => leader.close())
    const worker = createWorker({ leaders: [leader.endpoint], log: silentLog })
    closers.push(async () => { await worker.stop() })
    await worker.start()
    await waitFor(() => subscribed && worker.stats.watching === 1, { timeoutMs: 10_000, what: 'the worker subscribed to the hostile provider' })

    const toSub = fc.sample(hostileHeartbeat, { numRuns: FUZZ_RUNS, seed: FUZZ_SEED })
    const delivered = toSub.filter((m) => m[0]?.subarray(0, 2).toString() === 'hb').length
    // Only what starts with `hb` is delivered (and counted); the rest is filtered by libzmq.
    const hbShaped = toSub.filter((m) => m[0]?.subarray(0, 2).toString() === 'hb') as Buffer[][]
    const others = toSub.filter((m) => m[0]?.subarray(0, 2).toString() !== 'hb') as Buffer[][]
    for (const msg of others) await provider.send(msg)
    await sendInBatches(hbShaped, async (m) => { await provider.send(m) }, () => worker.stats.badFrames + worker.stats.unknownProviders, { what: 'worker heartbeat SUB' })
    const toDealer = hostileSample([...Inbound.workerDealer], FUZZ_RUNS, 3)
    await sendInBatches(toDealer, (m) => { leader.sendRaw(m) }, () => worker.stats.leaderBadFrames, { what: 'worker DEALER' })
    expect(worker.stats.badFrames + worker.stats.unknownProviders).toBe(delivered)
    expect(delivered).toBeGreaterThan(FUZZ_RUNS / 4)

    // Oversized: the provider's connection is dropped; for a heartbeat provider that is a
    // disconnect (it may report `down`, which is true of a provider that breaks the contract).
    await provider.send(['hb', Buffer.alloc(HEARTBEAT_SUB_MAX_BYTES + 1, 0x41)])

    expect(worker.stats.heartbeats).toBe(0)
    expect(worker.stats.watching).toBe(1)
    expect(leader.reports().flatMap((r) => r.observations).filter((o) => o.state === 'up')).toEqual([])
    expect(leader.messages('READY').length).toBeGreaterThan(0)
  }, 180_000)
})
