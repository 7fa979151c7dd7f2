// The worker's heartbeat connections against real peers on loopback: libzmq PUBs (zeromq.js) for
// the handshake, messages, ZMTP heartbeats both ways, an oversized frame and reconnection, and
// raw TCP servers for peers that never greet or go quiet after greeting.
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { Publisher } from 'zeromq'
import { silentLog } from '../../server/common/log.js'
import { createHeartbeatConns, type HeartbeatConns, type HeartbeatConnsOptions } from '../../server/worker/heartbeat-conns.js'
import { waitFor } from '../../harness/wait-for.js'
import { greeting, READY_PUB } from './zmtp-bytes.js'

const cleanups: Array<() => void> = []
afterEach(() => { for (const c of cleanups.splice(0).reverse()) c() })

interface Recorded { conns: HeartbeatConns, events: string[], messages: string[][] }

function conns (opts: Partial<HeartbeatConnsOptions> = {}): Recorded {
  const events: string[] = []
  const messages: string[][] = []
  const c = createHeartbeatConns({
    topic: Buffer.from('hb'),
    maxFrameBytes: 1024,
    maxMessageBytes: 16 * 1024,
    connectTimeoutMs: 2000,
    handshakeTimeoutMs: 5000,
    reconnectMs: 50,
    reconnectMaxMs: 200,
    log: silentLog,
    onHandshake: (e) => events.push(`handshake ${e}`),
    onDisconnect: (e) => events.push(`disconnect ${e}`),
    onMessage: (_e, frames) => messages.push(frames.map(String)),
    ...opts
  })
  cleanups.push(() => c.close())
  return { conns: c, events, messages }
}

async function publisher (opts: ConstructorParameters<typeof Publisher>[0] = {}, endpoint = 'tcp://127.0.0.1:*'): Promise<{ pub: Publisher, endpoint: string }> {
  const pub = new Publisher({ linger: 0, ...opts })
  cleanups.push(() => { if (!pub.closed) pub.close() })
  await pub.bind(endpoint)
  return { pub, endpoint: pub.lastEndpoint as string }
}

async function rawServer (onConnection: (s: Socket) => void): Promise<{ endpoint: string, server: Server }> {
  const sockets = new Set<Socket>()
  const server = createServer((s) => { sockets.add(s); s.on('error', () => {}); onConnection(s) })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  cleanups.push(() => { for (const s of sockets) s.destroy(); server.close() })
  return { endpoint: `tcp://127.0.0.1:${(server.address() as AddressInfo).port}`, server }
}

/** Publishes `frames` every 20 ms until `until()` (a PUB drops what it sends before it has
 *  the subscription). */
async function publishUntil (pub: Publisher, frames: Array<string | Buffer>, until: () => boolean): Promise<void> {
  await waitFor(async () => {
    if (until()) return true
    await pub.send(frames)
    await new Promise((resolve) => setTimeout(resolve, 20))
    return until()
  }, { what: 'a published message to arrive' })
}

describe('heartbeat connections', () => {
  it('handshakes with a libzmq PUB, receives what matches the subscription, and sees it go and come back', async () => {
    const { pub, endpoint } = await publisher()
    const r = conns()
    r.conns.connect(endpoint)
    r.conns.connect(endpoint) // twice is once
    await waitFor(() => r.events.includes(`handshake ${endpoint}`), { what: 'the handshake' })
    await publishUntil(pub, ['hb', 'p1'], () => r.messages.length > 0)
    await pub.send(['other', 'x']) // filtered by the PUB (and by us)
    await pub.send(['hb', 'p2', 'reserved'])
    await waitFor(() => r.messages.some((m) => m[1] === 'p2'), { what: 'the second message' })
    expect(r.messages.every((m) => m[0] === 'hb')).toBe(true)

    pub.close()
    await waitFor(() => r.events.includes(`disconnect ${endpoint}`), { what: 'the disconnect' })
    const again = await publisher({}, endpoint)
    await waitFor(() => r.events.filter((e) => e === `handshake ${endpoint}`).length === 2, { what: 'the reconnection' })
    await publishUntil(again.pub, ['hb', 'p3'], () => r.messages.some((m) => m[1] === 'p3'))
    expect(r.events).toEqual([`handshake ${endpoint}`, `disconnect ${endpoint}`, `handshake ${endpoint}`])
    expect(r.conns.size).toBe(1)
  })

  it('answers the PUB\'s ZMTP PINGs, so a PUB with a short heartbeat timeout keeps the connection', async () => {
    const { pub, endpoint } = await publisher({ heartbeatInterval: 50, heartbeatTimeout: 150, heartbeatTimeToLive: 150 })
    const r = conns()
    r.conns.connect(endpoint)
    await waitFor(() => r.events.length === 1, { what: 'the handshake' })
    // Many PING/PONG rounds and TTLs (the PUB's PINGs ask for traffic within 150 ms, which our
    // own side never sends unprompted, but answering counts).
    await new Promise((resolve) => setTimeout(resolve, 1000))
    await publishUntil(pub, ['hb', 'still'], () => r.messages.length > 0)
    expect(r.events).toEqual([`handshake ${endpoint}`])
  })

  it('sends PINGs that a libzmq PUB answers, and drops a peer that greets and then goes quiet', async () => {
    const ping = { intervalMs: 50, timeoutMs: 200, ttlMs: 1000 }
    const { endpoint } = await publisher()
    const r = conns({ ping })
    r.conns.connect(endpoint)
    await waitFor(() => r.events.length === 1, { what: 'the handshake' })
    await new Promise((resolve) => setTimeout(resolve, 600))
    expect(r.events).toEqual([`handshake ${endpoint}`])

    // A peer that completes the handshake (greeting and READY as a PUB), then never answers.
    const quiet = await rawServer((s) => {
      s.write(Buffer.concat([greeting({ asServer: true }), READY_PUB]))
    })
    const q = conns({ ping })
    const t0 = Date.now()
    q.conns.connect(quiet.endpoint)
    await waitFor(() => q.events.includes(`disconnect ${quiet.endpoint}`), { what: 'the quiet peer dropped' })
    expect(q.events[0]).toBe(`handshake ${quiet.endpoint}`)
    expect(Date.now() - t0).toBeGreaterThanOrEqual(ping.intervalMs + ping.timeoutMs)
  })

  it('drops a peer that never greets after the handshake timeout, and one that sends an oversized frame', async () => {
    const silent = await rawServer(() => {})
    const r = conns({ handshakeTimeoutMs: 200 })
    r.conns.connect(silent.endpoint)
    await waitFor(() => r.events.includes(`disconnect ${silent.endpoint}`), { what: 'the silent peer dropped' })
    expect(r.events[0]).toBe(`disconnect ${silent.endpoint}`) // no handshake before it

    const { pub, endpoint } = await publisher()
    const big = conns()
    big.conns.connect(endpoint)
    await waitFor(() => big.events.length === 1, { what: 'the handshake' })
    await publishUntil(pub, ['hb', 'ok'], () => big.messages.length > 0)
    await pub.send(['hb', Buffer.alloc(1025, 0x41)])
    await waitFor(() => big.events.includes(`disconnect ${endpoint}`), { what: 'the oversized frame to drop the connection' })
    expect(big.messages.every((m) => m[1] === 'ok')).toBe(true)
  })

  it('refuses endpoints it cannot use, and stays quiet about those it disconnects or closes itself', async () => {
    const r = conns()
    for (const bad of ['bogus://nowhere', 'tcp://nohost', 'tcp://host:0', 'tcp://host:70000', 'tcp://[zz::1]:1', 'tcp://[:::]:5']) {
      expect(() => r.conns.connect(bad)).toThrow(RangeError)
    }
    expect(r.conns.size).toBe(0)
    const a = await publisher()
    const b = await publisher()
    r.conns.connect(a.endpoint)
    r.conns.connect(b.endpoint)
    await waitFor(() => r.events.length === 2, { what: 'both handshakes' })
    r.conns.disconnect(a.endpoint)
    expect(r.conns.has(a.endpoint)).toBe(false)
    r.conns.close()
    expect(r.conns.size).toBe(0)
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(r.events.filter((e) => e.startsWith('disconnect'))).toEqual([])
  })
})
