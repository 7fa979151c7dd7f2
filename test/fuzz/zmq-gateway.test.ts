// Generated hostile frames (zmq-frames.ts) against a gateway's two leader-facing sockets, from a
// hostile fake leader: a ROUTER that answers PING and SNAPSHOT_REQ correctly (so the gateway
// follows it and holds a replica) and sends generated frames to the gateway's DEALER, and a PUB
// that sends them to its SUB. No crash, every frame counted, the replica (revision, providers)
// unchanged, and oversized frames drop the connection. FUZZ_RUNS frames per socket.
import { afterEach, describe, expect, it } from 'vitest'
import { Router, XPublisher } from 'zeromq'
import { createLeaderClient, type LeaderClient } from '../../server/gateway/leader-client.js'
import { createReplica } from '../../server/gateway/replica.js'
import { decode, encode } from '../../server/protocol/frames.js'
import { Inbound } from '../../server/protocol/messages.js'
import type { Provider } from '../../server/protocol/model.js'
import { GATEWAY_DEALER_MAX_BYTES, GATEWAY_SUB_MAX_BYTES } from '../../server/protocol/socket-limits.js'
import { createSendQueue } from '../../server/protocol/send-queue.js'
import { silentLog } from '../../server/common/log.js'
import { waitFor } from '../../harness/wait-for.js'
import { FUZZ_RUNS, hostileSample, sendInBatches } from './zmq-frames.js'

const closers: Array<() => Promise<void> | void> = []
afterEach(async () => { for (const c of closers.splice(0).reverse()) await c() })

const providers: Provider[] = ['g1', 'g2'].map((id) => ({
  id, service: 'orders', host: '10.0.0.1', port: 80, protocol: 'http', heartbeat: 'tcp://127.0.0.1:9', heartbeatIntervalMs: 1000,
  tags: [], meta: {}, state: 'up', stateSince: '2026-01-01T00:00:00.000Z', lastSeen: '2026-01-01T00:00:00.000Z', revision: 7
}))

describe('fuzz: a gateway fed by a hostile leader', () => {
  it(`drops and counts ${FUZZ_RUNS} generated messages on each of its DEALER and SUB, and its replica is unchanged`, async () => {
    const router = new Router({ linger: 0, handover: true, sendHighWaterMark: FUZZ_RUNS * 2 + 100 })
    const pub = new XPublisher({ linger: 0, sendHighWaterMark: FUZZ_RUNS * 2 + 100 })
    closers.push(() => router.close(), () => pub.close())
    await router.bind('tcp://127.0.0.1:*')
    const bind = router.lastEndpoint as string
    const port = Number(bind.slice(bind.lastIndexOf(':') + 1))
    await pub.bind(`tcp://127.0.0.1:${port + 1}`)
    const out = createSendQueue(router, () => {})
    let gatewayId: Buffer | null = null
    // The honest part of the fake leader: PONG, and a snapshot at revision 7.
    void (async () => {
      for await (const [id, ...frames] of router) {
        gatewayId = id as Buffer
        const msg = decode(frames, Inbound.leaderRouter)
        if (msg.verb === 'PING') out.send([id as Buffer, ...encode('PONG', { epoch: 1, revision: 7 })])
        if (msg.verb === 'SNAPSHOT_REQ') out.send([id as Buffer, ...encode('SNAPSHOT', { requestId: msg.body.requestId, epoch: 1, revision: 7, providers })])
        if (msg.verb === 'SINCE_REQ') out.send([id as Buffer, ...encode('EVENTS', { requestId: msg.body.requestId, epoch: 1, available: true, events: [], head: 7 })])
      }
    })().catch(() => {})
    let subscribed = false
    void (async () => { for await (const _ of pub) subscribed = true })().catch(() => {})

    const replica = createReplica()
    const client: LeaderClient = createLeaderClient({ candidates: [bind], replica, log: silentLog })
    closers.push(async () => { await client.stop() })
    client.start()
    await waitFor(() => replica.ready && subscribed && gatewayId !== null, { timeoutMs: 10_000, what: 'the gateway following the fake leader' })
    const before = { revision: replica.revision, providers: replica.providers() }
    expect(before.revision).toBe(7)

    const toDealer = hostileSample([...Inbound.gatewayDealer], FUZZ_RUNS, 1)
    const toSub = hostileSample(Inbound.gatewaySub, FUZZ_RUNS, 2)
    // The DEALER's count is the link's; the SUB's is the rest (leader-client.ts). Small batches:
    // the PONGs queue behind them, and a link that hears none for 1 s fails over.
    await sendInBatches(toDealer, (m) => { out.send([gatewayId as unknown as Buffer, ...m]) }, () => client.stats.badFrames, { what: 'gateway DEALER', batch: 50 })
    await sendInBatches(toSub, async (m) => { await pub.send(m) }, () => client.stats.badFrames, { base: toDealer.length, what: 'gateway SUB', batch: 50 })
    const expected = toDealer.length + toSub.length
    expect(client.connected).toBe(true)
    expect({ revision: replica.revision, providers: replica.providers() }).toEqual(before)

    // Oversized: the SUB's and the DEALER's connections are dropped (and reconnect), nothing else.
    await pub.send(['EVENT', Buffer.alloc(GATEWAY_SUB_MAX_BYTES + 1, 0x20)])
    out.send([gatewayId as unknown as Buffer, Buffer.from('SNAPSHOT'), Buffer.alloc(GATEWAY_DEALER_MAX_BYTES + 1, 0x20)])
    await waitFor(() => client.connected && replica.ready, { timeoutMs: 15_000, what: 'the gateway following again' })
    expect(client.stats.badFrames).toBe(expected)
    expect({ revision: replica.revision, providers: replica.providers() }).toEqual(before)
  }, 180_000)
})
