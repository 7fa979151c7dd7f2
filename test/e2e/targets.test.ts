// Where workers may connect (--allow-targets, and Roster's own ports), as a user sees it: a real
// leader, worker and gateway in this process (`roster up` wiring), real DNS for `localhost`, a
// real heartbeat emitter, and plain TCP servers that count the connections made to them, so
// that "not connected to" is observed rather than assumed.
import { createServer, type AddressInfo, type Server } from 'node:net'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { parseAllowTargets } from '../../server/protocol/targets.js'
import { portOf } from '../../harness/ports.js'
import { http } from '../../harness/roster-process.js'
import { readFeed, startInProcess, testStorage, type FeedReader, type InProcessRoster } from '../helpers/cluster.js'
import { cleanUpAfterEachTest } from '../helpers/e2e-cleanup.js'
import { spawnEmitter } from '../helpers/emitters.js'
import { waitFor } from '../../harness/wait-for.js'

cleanUpAfterEachTest()

const ALLOWED = '127.0.0.0/8,::1'
const BASE = { host: '127.0.0.1', port: 8080, protocol: 'http' }

interface Counted { port: number, connections: () => number }
const servers: Server[] = []
const feeds: FeedReader[] = []

/** A TCP server on loopback that counts the connections it accepts (and closes them). */
async function countingServer (): Promise<Counted> {
  let n = 0
  const server = createServer((socket) => { n++; socket.destroy() })
  servers.push(server)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { port: (server.address() as AddressInfo).port, connections: () => n }
}

afterEach(() => {
  for (const f of feeds.splice(0)) f.close()
  for (const s of servers.splice(0)) s.close()
})

async function feed (system: InProcessRoster, service: string): Promise<FeedReader> {
  const f = await readFeed(system.url, `?service=${service}`)
  feeds.push(f)
  return f
}

const put = async (system: InProcessRoster, service: string, id: string, body: unknown): Promise<{ status: number, body: any }> =>
  await http('PUT', `${system.url}/v1/services/${service}/providers/${id}`, body)

describe('with --allow-targets 127.0.0.0/8,::1 on the gateway and the worker', () => {
  let system: InProcessRoster
  beforeAll(async () => {
    const allowTargets = parseAllowTargets(ALLOWED)
    system = await startInProcess(await testStorage(), undefined, { gateway: { allowTargets }, worker: { allowTargets } })
  }, 60_000)
  afterAll(async () => { await system?.stop() })

  it('a provider whose heartbeat endpoint is inside (by name: localhost, real DNS) registers and is up', async () => {
    const emitter = await spawnEmitter({ id: 'in-1', intervalMs: 100 })
    const events = await feed(system, 'inside')
    const res = await put(system, 'inside', 'in-1', { ...BASE, heartbeat: `tcp://localhost:${portOf(emitter.endpoint)}` })
    expect(res.status).toBe(201)
    await events.next((m) => m.event === 'up' && m.provider?.id === 'in-1')
  })

  it('a tcp check inside is connected to (the counting server sees the worker)', async () => {
    const target = await countingServer()
    const events = await feed(system, 'inside-check')
    expect((await put(system, 'inside-check', 'ic-1', { ...BASE, port: target.port, check: { type: 'tcp', intervalMs: 100, timeoutMs: 50 } })).status).toBe(201)
    await events.next((m) => m.event === 'up' && m.provider?.id === 'ic-1')
    expect(target.connections()).toBeGreaterThan(0)
  })

  it.each([
    ['a heartbeat endpoint outside', { ...BASE, heartbeat: 'tcp://192.0.2.1:9100' },
      'body/heartbeat tcp://192.0.2.1:9100: target not allowed: 192.0.2.1 is outside the allowed targets 127.0.0.0/8,::1/128 (--allow-targets)'],
    ['an IPv6 heartbeat endpoint outside', { ...BASE, heartbeat: 'tcp://[2001:db8::1]:9100' }, 'body/heartbeat tcp://[2001:db8::1]:9100: target not allowed: 2001:db8::1 is outside'],
    ['a tcp check target outside', { ...BASE, host: '192.0.2.1', check: { type: 'tcp', intervalMs: 1000, timeoutMs: 500 } },
      'body/host 192.0.2.1:8080: target not allowed: 192.0.2.1 is outside the allowed targets 127.0.0.0/8,::1/128'],
    ['an http check target outside, spelt as an IPv4-mapped IPv6 address', { ...BASE, host: '::ffff:192.0.2.1', check: { type: 'http', path: '/', intervalMs: 1000, timeoutMs: 500 } },
      'body/host ::ffff:192.0.2.1:8080: target not allowed']
  ])('%s is 400 naming the field and the allowed ranges', async (_what, body, message) => {
    const res = await put(system, 'outside', 'out-1', body)
    expect(res.status).toBe(400)
    expect(res.body).toEqual({ statusCode: 400, code: 'ROSTER_ERR_TARGET_NOT_ALLOWED', error: 'Bad Request', message: expect.stringContaining(message) })
    expect((await http('GET', `${system.url}/v1/services/outside/providers/out-1`)).status).toBe(404)
  })

  it('a name that does not resolve is 400', async () => {
    const res = await put(system, 'outside', 'out-2', { ...BASE, heartbeat: 'tcp://no-such-host.invalid:9100' })
    expect(res).toMatchObject({ status: 400, body: { code: 'ROSTER_ERR_TARGET_UNRESOLVED', message: "body/heartbeat host 'no-such-host.invalid' does not resolve (ENOTFOUND)" } })
  })

  it('a ttl check connects nowhere, so its host is not checked', async () => {
    expect((await put(system, 'ttl', 'ttl-1', { ...BASE, host: '192.0.2.1', check: { type: 'ttl', ttlMs: 5000 } })).status).toBe(201)
  })
})

describe("Roster's own ports (with the default --allow-targets any), and a worker narrower than its gateway", () => {
  let system: InProcessRoster
  beforeAll(async () => {
    system = await startInProcess(await testStorage(), undefined, { worker: { allowTargets: parseAllowTargets('10.0.0.0/8') } })
  }, 60_000)
  afterAll(async () => { await system?.stop() })

  it("the leader's ROUTER and PUB ports and the gateway's own port are 400, however the host is spelt", async () => {
    const router = portOf(system.bind)
    const gateway = Number(new URL(system.url).port)
    const cases: Array<[unknown, string]> = [
      [{ ...BASE, heartbeat: `tcp://127.0.0.1:${router}` }, `body/heartbeat tcp://127.0.0.1:${router} is the leader's ROUTER port`],
      [{ ...BASE, heartbeat: `tcp://localhost:${router + 1}` }, `body/heartbeat tcp://localhost:${router + 1} is the leader's event (PUB) port`],
      [{ ...BASE, heartbeat: `tcp://[::ffff:127.0.0.1]:${router}` }, "is the leader's ROUTER port"],
      [{ ...BASE, heartbeat: `tcp://0.0.0.0:${router + 1}` }, "is the leader's event (PUB) port"],
      [{ ...BASE, heartbeat: `tcp://2130706433:${router}` }, "is the leader's ROUTER port"],
      [{ ...BASE, port: router, check: { type: 'tcp', intervalMs: 1000, timeoutMs: 500 } }, `body/host 127.0.0.1:${router} is the leader's ROUTER port`],
      [{ ...BASE, host: 'localhost', port: gateway, check: { type: 'http', path: '/v1/health', intervalMs: 1000, timeoutMs: 500 } }, `body/host localhost:${gateway} is this gateway's HTTP port`]
    ]
    for (const [body, message] of cases) {
      const res = await put(system, 'own', 'own-1', body)
      expect(res.status, JSON.stringify(body)).toBe(400)
      expect(res.body.code).toBe('ROSTER_ERR_TARGET_NOT_ALLOWED')
      expect(res.body.message).toContain(message)
      expect(res.body.message).toContain("Roster's own ports are never a valid target")
    }
  })

  it('a heartbeat endpoint the gateway allows but the worker does not is never connected to, and the provider is down', async () => {
    const endpoint = await countingServer()
    const events = await feed(system, 'narrow')
    expect((await put(system, 'narrow', 'hb-1', { ...BASE, heartbeat: `tcp://localhost:${endpoint.port}` })).status).toBe(201)
    const down = await events.next((m) => m.event === 'down' && m.provider?.id === 'hb-1')
    expect(down.provider).toMatchObject({
      state: 'down',
      reason: 'disconnected',
      detail: 'target not allowed: localhost (127.0.0.1) is outside the allowed targets 10.0.0.0/8 (--allow-targets)'
    })
    expect(endpoint.connections()).toBe(0)
  })

  it('a check target the gateway allows but the worker does not is never connected to, and the provider is down (check-failed)', async () => {
    const target = await countingServer()
    const events = await feed(system, 'narrow-check')
    const check = { type: 'tcp', intervalMs: 100, timeoutMs: 50 }
    expect((await put(system, 'narrow-check', 'ck-1', { ...BASE, host: 'localhost', port: target.port, check })).status).toBe(201)
    expect((await put(system, 'narrow-check', 'ck-2', { ...BASE, port: target.port, check: { ...check, type: 'http', path: '/' } })).status).toBe(201)
    const downs = await waitFor(() => {
      const found = events.messages.filter((m) => m.event === 'down')
      return found.length === 2 ? found : null
    }, { timeoutMs: 10_000, what: 'both checked providers down' })
    const byId = Object.fromEntries(downs.map((m) => [m.provider?.id, m.provider]))
    expect(byId['ck-1']).toMatchObject({ state: 'down', reason: 'check-failed', detail: 'target not allowed: localhost (127.0.0.1) is outside the allowed targets 10.0.0.0/8 (--allow-targets)' })
    expect(byId['ck-2']).toMatchObject({ state: 'down', reason: 'check-failed', detail: 'target not allowed: 127.0.0.1 is outside the allowed targets 10.0.0.0/8 (--allow-targets)' })
    // Several check intervals have passed meanwhile: none of them connected.
    await waitFor(async () => (await http('GET', `${system.url}/v1/services/narrow-check/providers/ck-1`)).body.state === 'down')
    expect(target.connections()).toBe(0)
  })
})
