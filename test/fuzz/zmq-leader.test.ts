// Generated hostile frames (zmq-frames.ts) against the leader's ROUTER, from a raw DEALER: no
// crash, every frame counted as bad, nothing answered, and the registry unchanged as a gateway
// shows it (revision, providers and their states). Then oversized frames: each drops its
// connection, and still nothing changes. FUZZ_RUNS frames (1,000; ROSTER_FUZZ_RUNS=10000).
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { Dealer } from 'zeromq'
import { Inbound } from '../../server/protocol/messages.js'
import { LEADER_ROUTER_MAX_BYTES } from '../../server/protocol/socket-limits.js'
import { startGateway, startLeader, type Stopper } from '../../server/roles.js'
import { silentLog } from '../../server/common/log.js'
import { freeLeaderBind } from '../../harness/ports.js'
import { http, waitForReady } from '../../harness/roster-process.js'
import { removeTestStorage, testStorage } from '../helpers/cluster.js'
import { FUZZ_RUNS, hostileSample, sendInBatches } from './zmq-frames.js'

const stoppers: Stopper[] = []
const sockets: Dealer[] = []
afterEach(async () => {
  for (const s of sockets.splice(0)) s.close()
  for (const s of stoppers.splice(0).reverse()) await s()
})
afterAll(async () => { await removeTestStorage() })

describe('fuzz: the leader ROUTER', () => {
  it(`drops and counts ${FUZZ_RUNS} generated hostile messages and oversized frames, answers none, changes nothing`, async () => {
    const bind = await freeLeaderBind()
    const leader = await startLeader({ ...await testStorage('roster-fuzz-'), bind }, silentLog)
    stoppers.push(leader)
    const gateway = await startGateway({ port: 0, host: '127.0.0.1', candidates: [bind] }, silentLog)
    stoppers.push(gateway.stop)
    await waitForReady(gateway.url)
    for (const id of ['a1', 'a2']) {
      expect((await http('PUT', `${gateway.url}/v1/services/orders/providers/${id}`, { host: '10.0.0.1', port: 80, protocol: 'http', heartbeat: 'tcp://127.0.0.1:9' })).status).toBe(201)
    }
    await http('PUT', `${gateway.url}/v1/services/orders/providers/a2/maintenance`, { enabled: true, reason: 'fuzz' })
    const before = (await http('GET', `${gateway.url}/v1/services/orders/providers`)).body
    const badBefore = leader.leader.stats.badFrames

    const messages = hostileSample(Inbound.leaderRouter)
    const dealer = new Dealer({ linger: 0, sendHighWaterMark: FUZZ_RUNS + 10, receiveTimeout: 10_000 })
    sockets.push(dealer)
    dealer.connect(bind)
    const replies: string[] = []
    await sendInBatches(messages, async (m) => { await dealer.send(m) }, () => leader.leader.stats.badFrames, { base: badBefore, what: 'leader ROUTER' })
    // The first answer on this connection is to this PING: none of the hostile ones got one.
    await dealer.send(['PING', JSON.stringify({ peerId: 'fuzz', role: 'gateway' })])
    replies.push(String((await dealer.receive())[0]))
    expect(replies).toEqual(['PONG'])

    // Oversized frames: libzmq drops the connection when it reads the length, before the body.
    for (const extra of [1, 1000, 50 * 1024 * 1024]) {
      const big = new Dealer({ linger: 0, sendTimeout: 10_000 })
      sockets.push(big)
      const events = big.events
      const dropped = (async () => { for await (const ev of events) if (ev.type === 'disconnect') return true; return false })()
      big.connect(bind)
      await big.send(['WRITE', Buffer.alloc(LEADER_ROUTER_MAX_BYTES + extra, 0x20)])
      expect(await dropped).toBe(true)
    }

    expect(leader.leader.status).toBe('active')
    expect((await http('GET', `${gateway.url}/v1/services/orders/providers`)).body).toEqual(before)
    expect((await http('GET', `${gateway.url}/v1/services`)).body.revision).toBe(before.revision)
  }, 180_000)
})
