// What a misbehaving client can do to a running Roster, through its real interfaces: conflicting
// and repeated REST writes, invalid bodies and paths, and garbage on the ZeroMQ sockets (a raw
// DEALER at the leader's ROUTER, raw TCP at its ports, a provider publishing malformed
// heartbeats to a worker). Roster runs in this process with the `roster up` wiring; every check
// goes through HTTP, the WebSocket feed or a socket a stranger could open.
import { randomBytes } from 'node:crypto'
import { connect } from 'node:net'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { Dealer, Subscriber, XPublisher } from 'zeromq'
import { pubEndpoint } from '../../server/protocol/endpoints.js'
import { freeLeaderBind } from '../../harness/ports.js'
import { http, waitForReady } from '../../harness/roster-process.js'
import { type FeedMessage, type FeedReader, type InProcessRoster, readFeed, removeTestStorage, startInProcess, testStorage } from '../helpers/cluster.js'
import { killAllEmitters } from '../helpers/emitters.js'

/** Nobody listens on the discard port, so these providers stay `pending` and change nothing
 *  after their registration: every revision in a test comes from the test's own writes. */
const NOBODY = 'tcp://127.0.0.1:9'
const SPEC = { host: '10.0.0.5', port: 8080, protocol: 'http', heartbeat: NOBODY, heartbeatIntervalMs: 1000 }

let system: InProcessRoster | null = null
const feeds: FeedReader[] = []
const zmqSockets: Array<{ close: () => void }> = []

async function start (): Promise<InProcessRoster> {
  system = await startInProcess(await testStorage('roster-bad-'), await freeLeaderBind())
  await waitForReady(system.url)
  return system
}

afterEach(async () => {
  for (const f of feeds.splice(0)) f.close()
  await system?.stop()
  system = null
  for (const s of zmqSockets.splice(0)) s.close()
  await killAllEmitters()
})
afterAll(async () => {
  await removeTestStorage()
})

async function feed (url: string, query = ''): Promise<FeedReader> {
  const f = await readFeed(url, query)
  feeds.push(f)
  await f.next((m) => m.type === 'snapshot')
  return f
}

async function registryRevision (url: string): Promise<number> {
  const res = await http('GET', `${url}/v1/services`)
  expect(res.status).toBe(200)
  expect(res.headers.get('x-roster-revision')).toBe(String(res.body.revision))
  return res.body.revision as number
}

/**
 * Proves that nothing was committed since `revision`: a fresh registration must get exactly the
 * next revision and be the very next event on `f` (a write that did change something would
 * have taken that revision, or shown up on the feed first). Returns the fence's revision.
 */
async function expectNothingSince (url: string, revision: number, f: FeedReader, fenceId: string): Promise<number> {
  const mark = f.messages.length
  const fence = await http('PUT', `${url}/v1/services/fence/providers/${fenceId}`, SPEC)
  expect(fence.status).toBe(201)
  expect(fence.body.revision).toBe(revision + 1)
  const next = await f.next((m) => m.type === 'event', { from: mark })
  expect(next).toMatchObject({ revision: revision + 1, event: 'registered', provider: { id: fenceId } })
  return fence.body.revision as number
}

describe('REST writes that must change nothing', () => {
  it('the same id under another service is 409 and leaves the original untouched', async () => {
    const { url } = await start()
    const f = await feed(url)
    const put = await http('PUT', `${url}/v1/services/orders/providers/dup-1`, { ...SPEC, tags: ['blue'] })
    expect(put.status).toBe(201)
    const original = put.body.provider
    const revision = await registryRevision(url)
    expect(revision).toBe(put.body.revision)

    const clash = await http('PUT', `${url}/v1/services/payments/providers/dup-1`, { ...SPEC, port: 9090, tags: ['red'] })
    expect(clash.status).toBe(409)
    expect(clash.body).toMatchObject({ statusCode: 409, error: 'Conflict', code: 'ROSTER_ERR_PROVIDER_CONFLICT' })
    expect(clash.body.message).toContain('dup-1')
    expect(clash.body.message).toContain('orders')

    const still = await http('GET', `${url}/v1/services/orders/providers/dup-1`)
    expect(still.status).toBe(200)
    expect(still.body).toEqual(original)
    expect((await http('GET', `${url}/v1/services/payments/providers/dup-1`)).status).toBe(404)
    expect((await http('GET', `${url}/v1/services/payments/providers`)).body.providers).toEqual([])
    expect(await registryRevision(url)).toBe(revision)
    await expectNothingSince(url, revision, f, 'after-409')
  }, 60_000)

  it('PUT is idempotent: the same registration again is 200 with the same revision and no event', async () => {
    const { url } = await start()
    const f = await feed(url, '?service=orders')
    const body = { ...SPEC, tags: ['blue', 'canary'], meta: { version: '1.4.2', zone: 'eu' } }
    const first = await http('PUT', `${url}/v1/services/orders/providers/idem-1`, body)
    expect(first.status).toBe(201)
    await f.next((m) => m.event === 'registered' && m.revision === first.body.revision)

    const again = await http('PUT', `${url}/v1/services/orders/providers/idem-1`, body)
    expect(again.status).toBe(200)
    expect(again.body).toEqual(first.body)
    // Meta in another key order is the same registration.
    const reordered = await http('PUT', `${url}/v1/services/orders/providers/idem-1`, { ...body, meta: { zone: 'eu', version: '1.4.2' } })
    expect(reordered.status).toBe(200)
    expect(reordered.body.revision).toBe(first.body.revision)
    expect(await registryRevision(url)).toBe(first.body.revision)

    // Omitted optional fields are their defaults: registering without them twice is one change.
    const bare = { host: '10.0.0.6', port: 8081, protocol: 'rpc', heartbeat: NOBODY }
    const b1 = await http('PUT', `${url}/v1/services/orders/providers/idem-2`, bare)
    expect(b1.status).toBe(201)
    expect(b1.body.provider).toMatchObject({ heartbeatIntervalMs: 1000, tags: [], meta: {} })
    const b2 = await http('PUT', `${url}/v1/services/orders/providers/idem-2`, { ...bare, heartbeatIntervalMs: 1000, tags: [], meta: {} })
    expect(b2.status).toBe(200)
    expect(b2.body.revision).toBe(b1.body.revision)

    const fenceMark = f.messages.length
    const fence = await http('PUT', `${url}/v1/services/orders/providers/idem-fence`, SPEC)
    expect(fence.body.revision).toBe(b1.body.revision + 1)
    await f.next((m) => m.revision === fence.body.revision, { from: fenceMark })
    // Exactly three events: the two registrations and the fence.
    expect(f.messages.filter((m) => m.type === 'event').map((m) => [m.event, m.provider?.id])).toEqual([
      ['registered', 'idem-1'], ['registered', 'idem-2'], ['registered', 'idem-fence']
    ])

    // A real change is an update with a new revision.
    const changed = await http('PUT', `${url}/v1/services/orders/providers/idem-1`, { ...body, port: 8443 })
    expect(changed.status).toBe(200)
    expect(changed.body.revision).toBe(fence.body.revision + 1)
    await f.next((m) => m.event === 'updated' && m.revision === changed.body.revision)
  }, 60_000)

  it('DELETE of an unknown provider, or under the wrong service, is 404 and deletes nothing', async () => {
    const { url } = await start()
    const f = await feed(url)
    const put = await http('PUT', `${url}/v1/services/orders/providers/del-1`, SPEC)
    expect(put.status).toBe(201)
    const revision = put.body.revision as number

    const unknown = await http('DELETE', `${url}/v1/services/orders/providers/no-such-provider`)
    expect(unknown.status).toBe(404)
    expect(unknown.body).toMatchObject({ statusCode: 404, code: 'ROSTER_ERR_PROVIDER_NOT_FOUND' })
    expect(unknown.body.message).toContain('no-such-provider')
    const unknownService = await http('DELETE', `${url}/v1/services/nothing-here/providers/x`)
    expect(unknownService.status).toBe(404)
    const wrongService = await http('DELETE', `${url}/v1/services/payments/providers/del-1`)
    expect(wrongService.status).toBe(404)
    expect((await http('GET', `${url}/v1/services/orders/providers/del-1`)).status).toBe(200)
    expect(await registryRevision(url)).toBe(revision)
    const fence = await expectNothingSince(url, revision, f, 'after-404')

    // Deleting twice: the second is a 404, not a second event.
    const del = await http('DELETE', `${url}/v1/services/orders/providers/del-1`)
    expect(del.status).toBe(200)
    expect(del.body.revision).toBe(fence + 1)
    expect((await http('DELETE', `${url}/v1/services/orders/providers/del-1`)).status).toBe(404)
    await expectNothingSince(url, fence + 1, f, 'after-second-delete')
  }, 60_000)

  it('invalid bodies and paths are 400 naming the field, and change nothing', async () => {
    const { url } = await start()
    const f = await feed(url)
    const revision = await registryRevision(url)
    const put = async (path: string, body: unknown, raw = false): Promise<{ status: number, body: any }> => {
      if (!raw) return await http('PUT', `${url}${path}`, body)
      const res = await fetch(`${url}${path}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: body as string })
      return { status: res.status, body: await res.json() }
    }
    const cases: Array<{ name: string, path?: string, body: unknown, raw?: boolean, field: string | RegExp }> = [
      { name: 'port above range', body: { ...SPEC, port: 70000 }, field: 'body/port' },
      { name: 'port zero', body: { ...SPEC, port: 0 }, field: 'body/port' },
      { name: 'port not a number', body: { ...SPEC, port: 'http' }, field: 'body/port' },
      { name: 'port fractional', body: { ...SPEC, port: 80.5 }, field: 'body/port' },
      { name: 'unknown protocol', body: { ...SPEC, protocol: 'ftp' }, field: /body\/protocol must be one of: http, rpc, pub/ },
      { name: 'missing host', body: { ...SPEC, host: undefined }, field: "'host'" },
      { name: 'empty host', body: { ...SPEC, host: '' }, field: 'body/host' },
      { name: 'host with spaces', body: { ...SPEC, host: 'my host' }, field: 'body/host' },
      { name: 'missing heartbeat', body: { ...SPEC, heartbeat: undefined }, field: "'heartbeat'" },
      { name: 'heartbeat not tcp', body: { ...SPEC, heartbeat: 'http://127.0.0.1:9100' }, field: 'body/heartbeat' },
      { name: 'heartbeat without port', body: { ...SPEC, heartbeat: 'tcp://127.0.0.1' }, field: 'body/heartbeat' },
      { name: 'heartbeat port above range', body: { ...SPEC, heartbeat: 'tcp://127.0.0.1:70000' }, field: 'body/heartbeat' },
      { name: 'heartbeat port zero', body: { ...SPEC, heartbeat: 'tcp://127.0.0.1:0' }, field: 'body/heartbeat' },
      { name: 'interval too short', body: { ...SPEC, heartbeatIntervalMs: 10 }, field: 'body/heartbeatIntervalMs' },
      { name: 'interval too long', body: { ...SPEC, heartbeatIntervalMs: 3_600_000 }, field: 'body/heartbeatIntervalMs' },
      { name: 'duplicate tags', body: { ...SPEC, tags: ['a', 'a'] }, field: 'body/tags' },
      { name: 'empty tag', body: { ...SPEC, tags: [''] }, field: 'body/tags/0' },
      { name: 'too many tags', body: { ...SPEC, tags: Array.from({ length: 33 }, (_, i) => `t${i}`) }, field: 'body/tags' },
      { name: 'meta value not a string', body: { ...SPEC, meta: { build: { nested: true } } }, field: 'body/meta/build' },
      { name: 'unknown field', body: { ...SPEC, colour: 'blue' }, field: "'colour'" },
      { name: 'client-set state', body: { ...SPEC, state: 'up' }, field: "'state'" },
      { name: 'body is an array', body: [SPEC], field: 'body' },
      { name: 'body is a string', body: '"orders"', raw: true, field: 'body' },
      { name: 'service with capitals', path: '/v1/services/Orders/providers/ok-1', body: SPEC, field: 'params/service' },
      { name: 'service starting with a dash', path: '/v1/services/-orders/providers/ok-1', body: SPEC, field: 'params/service' },
      { name: 'id with a space', path: '/v1/services/orders/providers/bad%20id', body: SPEC, field: 'params/id' },
      { name: 'id too long', path: `/v1/services/orders/providers/${'x'.repeat(129)}`, body: SPEC, field: 'params/id' },
      // What Postgres cannot store (issue 9): once this stopped the leader's writes.
      ...['\u0000', '\ud800', 'x\udc00'].flatMap((bad) => [
        { name: `tag ${JSON.stringify(bad)}`, body: { ...SPEC, tags: ['ok', bad] }, field: 'body/tags/1 must not contain NUL or unpaired surrogates' },
        { name: `meta value ${JSON.stringify(bad)}`, body: { ...SPEC, meta: { v: bad } }, field: 'body/meta/v must not contain NUL or unpaired surrogates' },
        { name: `meta key ${JSON.stringify(bad)}`, body: { ...SPEC, meta: { [`k${bad}`]: 'v' } }, field: 'body/meta has an invalid key' },
        { name: `host ${JSON.stringify(bad)}`, body: { ...SPEC, host: `h${bad}` }, field: 'body/host' },
        { name: `check path ${JSON.stringify(bad)}`, body: { ...SPEC, heartbeat: undefined, check: { type: 'http', path: `/${bad}`, intervalMs: 100, timeoutMs: 50 } }, field: 'body/check/path' },
        { name: `maintenance reason ${JSON.stringify(bad)}`, path: '/v1/services/orders/providers/ok-1/maintenance', body: { enabled: true, reason: bad }, field: 'body/reason must not contain NUL or unpaired surrogates' }
      ]),
      { name: 'meta key with a newline', body: { ...SPEC, meta: { 'a\nb': 'v' } }, field: 'body/meta has an invalid key' },
      { name: 'meta key over 64 characters', body: { ...SPEC, meta: { ['k'.repeat(65)]: 'v' } }, field: 'body/meta has an invalid key' }
    ]
    const failures: string[] = []
    for (const c of cases) {
      const res = await put(c.path ?? '/v1/services/orders/providers/ok-1', c.body, c.raw)
      const message = String(res.body?.message)
      const named = typeof c.field === 'string' ? message.includes(c.field) : c.field.test(message)
      if (res.status !== 400 || res.body?.statusCode !== 400 || res.body?.error !== 'Bad Request' || !named) {
        failures.push(`${c.name}: ${res.status} ${JSON.stringify(res.body)}`)
      }
    }
    expect(failures).toEqual([])

    const notJson = await put('/v1/services/orders/providers/ok-1', '{"host": "10.0.0.5",', true)
    expect(notJson.status).toBe(400)
    expect(notJson.body.statusCode).toBe(400)
    const tooLarge = await http('PUT', `${url}/v1/services/orders/providers/ok-1`, { ...SPEC, meta: { blob: 'x'.repeat(100_000) } })
    expect(tooLarge.status).toBe(413)
    expect(tooLarge.body.message).toContain('64 KiB')
    const badDelete = await http('DELETE', `${url}/v1/services/Orders/providers/ok-1`)
    expect(badDelete.status).toBe(400)
    expect(badDelete.body.message).toContain('params/service')
    const badFilter = await http('GET', `${url}/v1/services/orders/providers?state=sleeping`)
    expect(badFilter.status).toBe(400)
    expect(badFilter.body.message).toContain('querystring/state')
    const infinite = await http('GET', `${url}/v1/services?minRevision=Infinity`)
    expect(infinite.status).toBe(400)
    expect(infinite.body.message).toContain('querystring/minRevision')
    const misspelt = await http('GET', `${url}/v1/services/orders/providers?tags=blue`)
    expect(misspelt.status).toBe(400)
    expect(misspelt.body.message).toContain("'tags'")

    expect(await registryRevision(url)).toBe(revision)
    expect((await http('GET', `${url}/v1/services/orders/providers`)).body.providers).toEqual([])
    await expectNothingSince(url, revision, f, 'after-400s')
  }, 60_000)
})

describe('REST bodies of the wrong JSON type', () => {
  it('are a 400 naming the field, not silently converted (`"port": true` is not port 1)', async () => {
    const { url } = await start()
    const f = await feed(url)
    const revision = await registryRevision(url)
    const cases: Array<{ name: string, body: unknown, field: string }> = [
      { name: 'port true', body: { ...SPEC, port: true }, field: 'body/port' },
      { name: 'host true', body: { ...SPEC, host: true }, field: 'body/host' },
      { name: 'tags true', body: { ...SPEC, tags: true }, field: 'body/tags' },
      { name: 'meta value false', body: { ...SPEC, meta: { canary: false } }, field: 'body/meta/canary' }
    ]
    const accepted: string[] = []
    for (const c of cases) {
      const res = await http('PUT', `${url}/v1/services/orders/providers/typed-1`, c.body)
      if (res.status !== 400 || !String(res.body?.message).includes(c.field)) {
        accepted.push(`${c.name}: ${res.status} ${JSON.stringify(res.body?.provider ?? res.body)}`)
        if (res.status < 300) await http('DELETE', `${url}/v1/services/orders/providers/typed-1`)
      }
    }
    expect(accepted).toEqual([])
    expect(await registryRevision(url)).toBe(revision)
    await expectNothingSince(url, revision, f, 'after-typed')
  }, 60_000)
})

describe('garbage on the ZeroMQ sockets', () => {
  it('the leader ROUTER drops malformed messages from a raw DEALER, answers none of them, and keeps serving', async () => {
    const { url, bind } = await start()
    const f = await feed(url)
    const revision = await registryRevision(url)

    const dealer = new Dealer({ linger: 0, receiveTimeout: 10_000, sendTimeout: 5000 })
    zmqSockets.push(dealer)
    dealer.connect(bind)
    const json = (v: unknown): string => JSON.stringify(v)
    const garbage: Array<Array<string | Buffer>> = [
      ['garbage'],
      ['PING'],
      ['PING', json({ peerId: 'raw', role: 'gateway' }), 'a third frame'],
      ['', ''],
      ['HELLO', '{}'],
      [Buffer.from([0xff, 0xfe, 0x00]), '{}'],
      ['PONG', json({ epoch: 1, revision: 0 })],
      ['EVENT', json({ epoch: 99, changes: [{}] })],
      ['ASSIGN', json({ epoch: 99, tasks: [] })],
      ['PING', 'not json'],
      ['PING', '{"peerId": "raw", "role": "gateway"'],
      ['PING', json({ peerId: 5, role: 'gateway' })],
      ['PING', json({ peerId: 'raw', role: 'admin' })],
      ['PING', json({ peerId: 'raw', role: 'gateway', extra: true })],
      ['PING', 'null'],
      ['SNAPSHOT_REQ', '{}'],
      ['SINCE_REQ', json({ requestId: 'r1', revision: -1, limit: 10 })],
      ['SINCE_REQ', json({ requestId: 'r2', revision: 0, limit: 1_000_000 })],
      ['WRITE', json({ writes: [{ requestId: 'w1', op: { type: 'nuke', service: 'orders', id: 'x' } }] })],
      ['WRITE', json({ writes: [{ requestId: 'w2', op: { type: 'register', service: 'Bad Service', id: 'x', spec: { ...SPEC } } }] })],
      ['WRITE', json({ writes: [{ requestId: 'w3', op: { type: 'register', service: 'orders', id: 'x', spec: { ...SPEC, port: 0 } } }] })],
      ['WRITE', json({ writes: [{ requestId: 'w4', op: { type: 'deregister', service: 'orders' } }] })],
      // one bad write among good ones: the whole message is dropped, the good ones are not applied
      ['WRITE', json({ writes: [{ requestId: 'w6', op: { type: 'register', service: 'orders', id: 'w6-sneak', spec: { ...SPEC } } }, { requestId: 'w7', op: { type: 'nuke' } }] })],
      ['WRITE', json({ writes: [] })],
      ['WRITE', json({ requestId: 'w8', op: { type: 'deregister', service: 'orders', id: 'x' } })],
      ['WRITE', 'x'.repeat(2_000_000)],
      ['READY', json({ workerId: 'w'.repeat(100), observations: [] })],
      ['READY', json({ workerId: 'raw', observations: [{ providerId: 'p', state: 'sideways', lastSeen: null }] })],
      ['REPORT', json({ workerId: 'raw', seq: 0, observations: [] })],
      ['REPORT', json({ workerId: 'raw', seq: 1, observations: 'all of them' })],
      ['BYE', 'null'],
      [randomBytes(4096), randomBytes(4096)],
      [randomBytes(16), randomBytes(16), randomBytes(16), randomBytes(16)]
    ]
    for (const msg of garbage) await dealer.send(msg)

    // Raw TCP at both leader ports: text that is not ZMTP at all (libzmq takes it for a ZMTP 1.0
    // peer and waits for more), and a ZMTP signature followed by garbage (a bad greeting, which
    // libzmq rejects by closing the connection).
    const [host, port] = [bind.slice('tcp://'.length, bind.lastIndexOf(':')), Number(bind.slice(bind.lastIndexOf(':') + 1))]
    const badGreeting = Buffer.concat([Buffer.from([0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 3, 0]), randomBytes(600)])
    for (const p of [port, port + 1]) {
      for (const junk of [Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), randomBytes(600), badGreeting]) {
        await new Promise<void>((resolve) => {
          const sock = connect(p, host)
          // Written to the kernel is delivered on loopback; only the bad greeting is awaited
          // until libzmq closes it (bounded: this is about not crashing, not about libzmq).
          const timer = setTimeout(() => { sock.destroy(); resolve() }, 5000)
          sock.on('error', () => {})
          sock.on('data', () => {})
          sock.on('close', () => { clearTimeout(timer); resolve() })
          sock.write(junk, () => { if (junk !== badGreeting) sock.destroy() })
        })
      }
    }
    const wrongType = new Subscriber({ linger: 0 })
    zmqSockets.push(wrongType)
    wrongType.subscribe()
    wrongType.connect(bind)
    const atPub = new Dealer({ linger: 0, sendTimeout: 0 })
    zmqSockets.push(atPub)
    atPub.connect(pubEndpoint(bind))
    await atPub.send(['WRITE', json({ writes: [{ requestId: 'w5', op: { type: 'deregister', service: 'fence', id: 'x' } }] })]).catch(() => {})

    // The first answer on this connection is the PONG to a valid PING sent after all of it: the
    // leader replied to none of the garbage.
    await dealer.send(['PING', json({ peerId: 'raw', role: 'gateway' })])
    const [verb, body] = await dealer.receive() as [Buffer, Buffer]
    expect(verb.toString()).toBe('PONG')
    expect(JSON.parse(body.toString())).toMatchObject({ revision })

    expect((await http('GET', `${url}/v1/health`)).body).toMatchObject({ status: 'ok', leader: 'connected', revision })
    await expectNothingSince(url, revision, f, 'after-router-garbage')
    expect(f.closed).toBeNull()
    expect(f.messages.filter((m) => m.type === 'snapshot')).toHaveLength(1)
  }, 60_000)

  it('a worker drops malformed heartbeats, and keeps watching: a valid one (with a reserved extra frame) makes the provider up', async () => {
    const { url } = await start()
    const f = await feed(url, '?service=junk')
    // A "provider" that publishes whatever we want: an XPUB, so we also learn when the worker's
    // SUB has connected and subscribed (before that, PUB drops messages: the slow joiner).
    const xpub = new XPublisher({ linger: 0, receiveTimeout: 20_000 })
    zmqSockets.push(xpub)
    await xpub.bind('tcp://127.0.0.1:*')
    const endpoint = xpub.lastEndpoint as string
    // A long interval: nothing here goes silent during the test.
    const spec = { ...SPEC, heartbeat: endpoint, heartbeatIntervalMs: 60_000 }
    // Registered in this order, so that the worker's task list that contains junk-ready (ASSIGN
    // is always the whole list) contains the other two as well.
    for (const id of ['junk-1', 'junk-fence', 'junk-ready']) {
      expect((await http('PUT', `${url}/v1/services/junk/providers/${id}`, spec)).status).toBe(201)
    }
    const [subscription] = await xpub.receive() as [Buffer]
    expect(subscription.subarray(0, 1)[0]).toBe(1)
    expect(subscription.subarray(1).toString()).toBe('hb')
    // The worker hears of a registration (ASSIGN) shortly after the PUT is answered, and drops
    // heartbeats of providers it has not been given: beat for junk-ready until it is up.
    let ready: FeedMessage | undefined
    for (let i = 0; i < 200 && ready === undefined; i++) {
      await xpub.send(['hb', 'junk-ready'])
      ready = await f.next((m) => m.event === 'up' && m.provider?.id === 'junk-ready', { timeoutMs: 50 }).catch(() => undefined)
    }
    expect(ready).toBeDefined()

    const garbage: Array<Array<string | Buffer>> = [
      ['hb'],
      ['hb', ''],
      ['hbx', 'junk-1'],
      ['hb\0', 'junk-1'],
      ['hb junk-1'],
      ['hb', Buffer.concat([Buffer.from('junk-1'), Buffer.from([0xff, 0xfe])])],
      ['hb', 'junk-1'.padEnd(200, 'x')],
      ['hb', 'no-such-provider'],
      ['hb', 'junk-1 '],
      // Under the heartbeat SUB's 1 KiB frame limit (socket-limits.ts): a bigger frame drops the
      // provider's connection instead (test/fuzz/zmq-worker.test.ts).
      [Buffer.concat([Buffer.from('hb'), randomBytes(1000)])],
      [Buffer.concat([Buffer.from('hb'), randomBytes(64)]), randomBytes(64), randomBytes(64)]
    ]
    for (const msg of garbage) await xpub.send(msg)
    // A valid heartbeat for junk-fence behind all of that, on the same connection: once its
    // `up` is on the feed, the worker has read every garbage message before it, and had any of
    // them counted for junk-1, junk-1's `up` would be on the feed already.
    await xpub.send(['hb', 'junk-fence'])
    const fenceUp = await f.next((m) => m.event === 'up' && m.provider?.id === 'junk-fence', { timeoutMs: 10_000 })
    expect(f.messages.filter((m) => m.provider?.id === 'junk-1' && m.event !== 'registered')).toEqual([])

    // The contract: further frames are reserved and ignored.
    await xpub.send(['hb', 'junk-1', 'reserved', Buffer.from([0, 1, 2])])
    const up = await f.next((m) => m.event === 'up' && m.provider?.id === 'junk-1', { timeoutMs: 10_000 })
    expect(up.revision).toBe(fenceUp.revision + 1)

    // And the system as a whole keeps serving.
    const after = await http('PUT', `${url}/v1/services/junk/providers/junk-2`, SPEC)
    expect(after.status).toBe(201)
    expect(after.body.revision).toBe(up.revision + 1)
    const list = await http('GET', `${url}/v1/services/junk/providers?state=up&minRevision=${after.body.revision}`)
    expect(list.body.providers.map((p: { id: string }) => p.id)).toEqual(['junk-1', 'junk-fence', 'junk-ready'])
  }, 60_000)

  it('a REPORT that passes the schema but carries an impossible lastSeen does not stop the leader', async () => {
    const { url, bind } = await start()
    const f = await feed(url)
    const ids = ['v-0', 'v-1', 'v-2', 'v-3']
    for (const id of ids) expect((await http('PUT', `${url}/v1/services/victim/providers/${id}`, SPEC)).status).toBe(201)
    const revision = await registryRevision(url)

    // A stranger speaks the worker protocol: READY makes it a worker, PINGs keep it alive (the
    // leader presumes a silent worker dead after 1 s), and the leader gives it about half of the
    // providers (after its takeover settle time, if that has not passed yet).
    const impostor = new Dealer({ linger: 0, receiveTimeout: 10_000, sendTimeout: 5000, routingId: 'impostor' })
    zmqSockets.push(impostor)
    impostor.connect(bind)
    // One send at a time on a socket (zeromq throws EBUSY on a second concurrent one).
    let sending: Promise<void> = Promise.resolve()
    const send = async (verb: string, body: unknown): Promise<void> => {
      sending = sending.then(async () => { await impostor.send([verb, JSON.stringify(body)]) })
      await sending
    }
    /** The next `verb` from the leader, skipping others (PONGs to the keep-alive PINGs); 10 s. */
    const receive = async (verb: string): Promise<any> => {
      const deadline = Date.now() + 10_000
      while (Date.now() < deadline) {
        const [v, body] = await (impostor.receive() as Promise<[Buffer, Buffer]>).catch(() => [Buffer.from('')])
        if (v?.toString() === verb) return JSON.parse((body as Buffer).toString())
      }
      throw new Error(`no ${verb} from the leader within 10 s`)
    }
    await send('PING', { peerId: 'impostor', role: 'gateway' })
    const { epoch } = await receive('PONG') as { epoch: number }
    const pinger = setInterval(() => { send('PING', { peerId: 'impostor', role: 'worker' }).catch(() => {}) }, 200)
    try {
      await send('READY', { workerId: 'impostor', observations: [] })
      let tasks: unknown[] = []
      while (tasks.length === 0) tasks = (await receive('ASSIGN') as { tasks: unknown[] }).tasks

      // lastSeen is an integer ≥ 0 as the schema says, but 10^16 ms is past the last instant a
      // JavaScript Date can hold (8.64 × 10^15 ms). Reported for every provider, so that those
      // the leader gave the impostor are surely among them (the others are ignored).
      await send('REPORT', {
        workerId: 'impostor', seq: 1, observations: ids.map((providerId) => ({ providerId, state: 'up', lastSeen: 1e16 }))
      })
      // A write behind it on the same connection, so the leader reads it after the REPORT: it
      // must be committed and answered as any write is, by the same leader term.
      await send('WRITE', { writes: [{ requestId: 'after-report', op: { type: 'register', service: 'victim', id: 'after-report', spec: SPEC } }] })
      const answer = await receive('RESULT') as { epoch: number, results: Array<{ requestId: string, result: { ok: boolean, statusCode: number, revision: number } }> }
      expect(answer).toMatchObject({ epoch, results: [{ requestId: 'after-report', result: { ok: true, statusCode: 201 } }] })
      const result = answer.results[0] as { result: { revision: number } }
      await send('PING', { peerId: 'impostor', role: 'gateway' })
      expect((await receive('PONG') as { epoch: number }).epoch).toBe(epoch)
      // No provider was changed by the impossible report; the write is the next revision.
      expect(result.result.revision).toBe(revision + 1)
    } finally {
      clearInterval(pinger)
      await sending.catch(() => {})
    }

    await f.next((m) => m.revision === revision + 1)
    expect(f.messages.filter((m) => m.type === 'event' && m.revision > revision).map((m) => [m.event, m.provider?.id]))
      .toEqual([['registered', 'after-report']])
    const res = await http('PUT', `${url}/v1/services/victim/providers/after`, SPEC)
    expect(res.status).toBe(201)
  }, 60_000)
})
