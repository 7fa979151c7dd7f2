// The client against real gateways in this process (server/roles.ts, the production wiring) on a
// real leader and Postgres: every method and its types, the typed errors (400 naming the field,
// 404, 409, 401, 403) thrown at once, hostile names that must never reach another route,
// failover over a refused port and a gateway without a leader (503), a lagging gateway (504)
// that the client's own minRevision floor keeps from answering with the past, and the feed.
// SIGKILLed gateways are in failover.test.ts.
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  RosterClient, RosterHttpError, RosterUnavailableError, type ProviderSpec, type RetryInfo, type WatchMessage
} from 'roster/client'
import { silentLog } from '../../server/common/log.js'
import { startGateway, startLeader, type Stopper } from '../../server/roles.js'
import { freeLeaderBind, freeLeaderEndpoint, freePort, portOf } from '../../harness/ports.js'
import { http, waitForLeader, waitForReady } from '../../harness/roster-process.js'
import { removeTestStorage, testStorage } from '../helpers/cluster.js'
import { closeAllProxies, startTcpProxy } from '../helpers/tcp-proxy.js'
import { waitFor } from '../../harness/wait-for.js'

const BOOTSTRAP = 'bootstrap-secret-for-the-client-test-0123456789'
/** Nobody listens on the discard port: a provider registered with it stays `pending`. */
const NOBODY = 'tcp://127.0.0.1:9'
const SPEC: ProviderSpec = { host: '127.0.0.1', port: 8080, protocol: 'http', heartbeat: NOBODY }

const stoppers: Stopper[] = []
let bind: string
/** Gateways with auth off (A, B), one with --auth on, one that never reaches a leader. */
let A: string
let B: string
let AUTH: string
let LEADERLESS: string
/** A loopback port nobody listens on: connections are refused. */
let REFUSED: string

async function gateway (candidates: string[], opts: { auth?: boolean } = {}): Promise<string> {
  const g = await startGateway({ port: 0, host: '127.0.0.1', candidates, auth: opts.auth === true }, silentLog)
  stoppers.push(g.stop)
  return g.url
}

beforeAll(async () => {
  bind = await freeLeaderEndpoint()
  stoppers.push(await startLeader({ ...await testStorage('roster-client-'), bind, bootstrapToken: BOOTSTRAP }, silentLog))
  A = await gateway([bind])
  B = await gateway([bind])
  AUTH = await gateway([bind], { auth: true })
  LEADERLESS = await gateway([await freeLeaderEndpoint()])
  REFUSED = `http://127.0.0.1:${await freePort()}`
  for (const url of [A, B]) {
    await waitForLeader(url)
    await waitForReady(url)
  }
  await waitFor(async () => (await fetch(`${AUTH}/v1/services`, { headers: { authorization: `Bearer ${BOOTSTRAP}` } })).status === 200, {
    timeoutMs: 15_000, what: 'the auth gateway to accept the bootstrap token'
  })
}, 60_000)

afterAll(async () => {
  await closeAllProxies()
  for (const stop of stoppers.reverse()) await stop()
  await removeTestStorage()
})

/** A client that records its retries. */
function client (urls: string[], extra: { token?: string, timeoutMs?: number } = {}): { roster: RosterClient, retries: RetryInfo[] } {
  const retries: RetryInfo[] = []
  return { roster: new RosterClient({ urls, ...extra, onRetry: (info) => retries.push(info) }), retries }
}

/** The rejection of `promise`, which must reject. */
async function rejection (promise: Promise<unknown>): Promise<unknown> {
  return await promise.then((value) => { throw new Error(`expected a rejection, got ${JSON.stringify(value)}`) }, (err: unknown) => err)
}

/** The first `count` messages of a watch, then it is closed (by the loop's break). */
async function take (watch: AsyncIterable<WatchMessage>, count: number): Promise<WatchMessage[]> {
  const out: WatchMessage[] = []
  if (count === 0) return out
  for await (const message of watch) {
    out.push(message)
    if (out.length === count) break
  }
  return out
}

describe('RosterClient on healthy gateways', () => {
  it('registers, reads, filters, holds in maintenance, renews and deregisters, answering with the server\'s shapes', async () => {
    const { roster, retries } = client([A, B])
    const created = await roster.register('api', 'api-1', { ...SPEC, tags: ['blue', 'eu'], meta: { version: '1.4.2' } })
    expect(created.created).toBe(true)
    expect(created.provider).toMatchObject({ id: 'api-1', service: 'api', state: 'pending', tags: ['blue', 'eu'], meta: { version: '1.4.2' }, revision: created.revision })
    expect(roster.revision).toBe(created.revision)

    // The same registration again changes nothing: 200, the revision it already had.
    const again = await roster.register('api', 'api-1', { ...SPEC, tags: ['blue', 'eu'], meta: { version: '1.4.2' } })
    expect(again).toEqual({ ...created, created: false })

    await roster.register('api', 'api-2', { ...SPEC, protocol: 'rpc', tags: ['blue'] })
    const ttl = await roster.register('api', 'api-ttl', { host: '127.0.0.1', port: 9000, protocol: 'rpc', check: { type: 'ttl', ttlMs: 60_000 } })

    expect(await roster.get('api', 'api-1')).toEqual(created.provider)
    expect((await roster.list('api')).providers.map((p) => p.id)).toEqual(['api-1', 'api-2', 'api-ttl'])
    expect((await roster.list('api', { tag: 'blue' })).providers.map((p) => p.id)).toEqual(['api-1', 'api-2'])
    expect((await roster.list('api', { tag: ['blue', 'eu'] })).providers.map((p) => p.id)).toEqual(['api-1'])
    expect((await roster.list('api', { protocol: 'rpc', state: 'pending' })).providers.map((p) => p.id)).toEqual(['api-2', 'api-ttl'])
    expect((await roster.list('nothing-here')).providers).toEqual([])
    const services = await roster.services()
    expect(services.services.find((s) => s.name === 'api')).toEqual({ name: 'api', providers: 3, up: 0 })
    expect(services.revision).toBeGreaterThanOrEqual(ttl.revision)

    const held = await roster.maintenance('api', 'api-1', { enabled: true, reason: 'kernel upgrade' })
    expect(held.provider).toMatchObject({ state: 'maintenance', reason: 'kernel upgrade' })
    expect((await roster.maintenance('api', 'api-1', { enabled: true, reason: 'kernel upgrade' })).revision).toBe(held.revision)
    expect((await roster.maintenance('api', 'api-1', { enabled: false })).provider.state).toBe('pending')

    const renewed = await roster.renew('api', 'api-ttl')
    expect(renewed.provider.state).toBe('up')
    expect((await roster.get('api', 'api-ttl')).state).toBe('up')

    const health = await roster.health()
    expect(health).toMatchObject({ status: 'ok', leader: 'connected' })
    expect([A, B]).toContain(health.gateway)

    const gone = await roster.deregister('api', 'api-2')
    expect(gone.revision).toBeGreaterThan(renewed.revision)
    expect(roster.revision).toBe(gone.revision)
    expect((await roster.list('api')).providers.map((p) => p.id)).toEqual(['api-1', 'api-ttl'])
    // Every call went to a healthy gateway at the first attempt.
    expect(retries).toEqual([])
  })

  it('throws the server\'s errors as RosterHttpError at once: 400 naming the field, 404, 409', async () => {
    const { roster, retries } = client([A, B])
    await roster.register('typed', 'typed-1', SPEC)

    const bad = await rejection(roster.register('typed', 'typed-2', { ...SPEC, port: 70_000 }))
    expect(bad).toBeInstanceOf(RosterHttpError)
    expect(bad).toMatchObject({ statusCode: 400, code: 'FST_ERR_VALIDATION', error: 'Bad Request', message: 'body/port must be <= 65535' })
    const neither = await rejection(roster.register('typed', 'typed-2', { host: '127.0.0.1', port: 1, protocol: 'http' }))
    expect(neither).toMatchObject({ statusCode: 400, code: 'ROSTER_ERR_INVALID_REGISTRATION' })
    expect((neither as Error).message).toContain("'heartbeat' or 'check'")
    const filter = await rejection(roster.list('typed', { state: 'sleeping' as 'up' }))
    expect(filter).toMatchObject({ statusCode: 400, message: expect.stringContaining('querystring/state') })

    expect(await rejection(roster.get('typed', 'nobody'))).toMatchObject({ statusCode: 404, code: 'ROSTER_ERR_PROVIDER_NOT_FOUND' })
    expect(await rejection(roster.get('elsewhere', 'typed-1'))).toMatchObject({
      statusCode: 404, message: "provider 'typed-1' is not registered under service 'elsewhere' (it is registered under 'typed')"
    })
    // A deregistration that was never retried: its 404 is the truth, not "already done".
    expect(await rejection(roster.deregister('typed', 'nobody'))).toMatchObject({ statusCode: 404, code: 'ROSTER_ERR_PROVIDER_NOT_FOUND' })
    expect(await rejection(roster.register('other', 'typed-1', SPEC))).toMatchObject({ statusCode: 409 })
    expect(await rejection(roster.renew('typed', 'typed-1'))).toMatchObject({ statusCode: 409 })
    expect(await rejection(roster.maintenance('typed', 'nobody', { enabled: true }))).toMatchObject({ statusCode: 404 })
    expect(retries).toEqual([])
  })

  it('refuses bad arguments before sending anything, naming them, and never quotes the token', () => {
    const ok = [A]
    expect(() => new RosterClient({ urls: [] })).toThrow(/options\.urls must be a non-empty array/)
    expect(() => new RosterClient({ urls: [A, 'not a url'] })).toThrow(/options\.urls\[1\] must be an absolute http\(s\) URL/)
    expect(() => new RosterClient({ urls: ['ws://127.0.0.1:7070'] })).toThrow(/options\.urls\[0\] must use http or https/)
    expect(() => new RosterClient({ urls: ['http://u:p@127.0.0.1:7070'] })).toThrow(/must not carry credentials/)
    expect(() => new RosterClient({ urls: [`${A}/?x=1`] })).toThrow(/must not have a query/)
    expect(() => new RosterClient({ urls: ok, timeoutMs: 0 })).toThrow(/options\.timeoutMs must be a positive integer/)
    const secret = 'roster_secret\r\nX-Injected: 1'
    let thrown: unknown
    // eslint-disable-next-line no-new -- the constructor is what throws
    try { new RosterClient({ urls: ok, token: secret }) } catch (err) { thrown = err }
    expect(thrown).toBeInstanceOf(TypeError)
    expect((thrown as Error).message).toMatch(/options\.token must be/)
    expect((thrown as Error).message).not.toContain('roster_secret')

    const roster = new RosterClient({ urls: ok })
    expect(() => roster.watch({ since: -1 })).toThrow(/since must be a revision/)
    expect(() => roster.watch({ services: 'orders' as unknown as string[] })).toThrow(/services must be an array/)
  })

  it('encodes hostile names so that no request reaches another route: a TypeError or a 400/404 naming the parameter', async () => {
    const { roster } = client([A])
    const before = (await roster.services()).revision
    const names = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 40 }),
      fc.constantFrom('', '.', '..', '%2e', '%2e%2e', 'a/b', '../../v1/tokens', '?state=up', '#x', 'a%2Fb', '\u0000', '\ud800', 'ok-name', 'x'.repeat(300))
    )
    await fc.assert(fc.asyncProperty(names, names, async (service, id) => {
      for (const call of [() => roster.get(service, id), () => roster.deregister(service, id), () => roster.list(service)]) {
        let err: unknown
        try {
          const answer = await call()
          // Only a list of a valid, empty service can succeed: an empty list, never another shape.
          expect(answer).toMatchObject({ providers: [] })
          continue
        } catch (e) {
          err = e
        }
        if (err instanceof TypeError) {
          expect(err.message).toMatch(/^(service|id) must/)
          continue
        }
        expect(err).toBeInstanceOf(RosterHttpError)
        const { statusCode, message } = err as RosterHttpError
        expect([400, 404]).toContain(statusCode)
        if (statusCode === 400) expect(message).toMatch(/^params\/(service|id) /)
      }
    }), { numRuns: 60 })
    // Nothing was written by any of it.
    expect((await http('GET', `${A}/v1/services`)).body.revision).toBe(before)
  }, 60_000)
})

describe('RosterClient failover', () => {
  it('moves past a refused connection and a gateway without a leader (503), and gives up with every attempt listed', async () => {
    const { roster, retries } = client([REFUSED, LEADERLESS, A])
    const written = await roster.register('fail', 'fail-1', SPEC)
    expect(written.created).toBe(true)
    expect(retries.map((r) => [r.operation, r.failure.gateway, r.failure.statusCode ?? r.failure.code, r.delayMs])).toEqual([
      ['register', REFUSED, 'ECONNREFUSED', 0],
      ['register', LEADERLESS, 503, 0]
    ])
    // A read and a watch move past them the same way (the gateway without a leader has no
    // snapshot either: 503 to reads and to the feed's upgrade).
    expect((await new RosterClient({ urls: [REFUSED, LEADERLESS, A] }).get('fail', 'fail-1')).revision).toBe(written.revision)
    const [first] = await take(new RosterClient({ urls: [LEADERLESS, REFUSED, A] }).watch({ services: ['fail'] }), 1)
    expect(first).toMatchObject({ type: 'snapshot', providers: [{ id: 'fail-1' }] })

    const doomed = client([REFUSED, LEADERLESS], { timeoutMs: 1500 })
    const startedAt = Date.now()
    const err = await rejection(doomed.roster.register('fail', 'fail-2', SPEC))
    expect(Date.now() - startedAt).toBeLessThan(3000)
    expect(err).toBeInstanceOf(RosterUnavailableError)
    const { attempts, code, message } = err as RosterUnavailableError
    expect(code).toBe('ROSTER_ERR_CLIENT_UNAVAILABLE')
    expect(message).toMatch(/^no gateway completed PUT \/v1\/services\/fail\/providers\/fail-2 within 1500 ms/)
    expect(new Set(attempts.map((a) => a.statusCode ?? a.code))).toEqual(new Set([503, 'ECONNREFUSED']))
    expect(attempts.length).toBeGreaterThanOrEqual(4) // more than one round, with backoff between
    expect(doomed.retries.some((r) => r.delayMs > 0)).toBe(true)
    // Nothing of it was stored.
    expect((await http('GET', `${A}/v1/services/fail/providers/fail-2`)).status).toBe(404)
  })

  it('never reads the past on a lagging gateway: its 504 for the client\'s revision floor sends the read to another', async () => {
    // A gateway whose links to the leader (ROUTER and PUB) run through proxies, then cut.
    const leaderPort = portOf(bind)
    const proxied = portOf(await freeLeaderBind())
    const router = await startTcpProxy({ host: '127.0.0.1', port: leaderPort }, { port: proxied })
    const events = await startTcpProxy({ host: '127.0.0.1', port: leaderPort + 1 }, { port: proxied + 1 })
    const LAGGING = await gateway([`tcp://127.0.0.1:${proxied}`])
    await waitForLeader(LAGGING)
    await waitForReady(LAGGING)
    router.blackhole()
    events.blackhole()
    await waitFor(async () => (await http('GET', `${LAGGING}/v1/health`)).body.leader === 'unavailable', { timeoutMs: 10_000, what: 'the cut gateway to notice' })

    // A write through the cut gateway fails over to a healthy one (503, then 201).
    const writer = client([LAGGING, A])
    const { revision } = await writer.roster.register('lag', 'lag-1', SPEC)
    expect(writer.retries.map((r) => [r.failure.gateway, r.failure.statusCode])).toEqual([[LAGGING, 503]])
    // The cut gateway still answers reads, from the past.
    const stale = await http('GET', `${LAGGING}/v1/services/lag/providers`)
    expect(stale.status).toBe(200)
    expect(stale.body.revision).toBeLessThan(revision)

    // A client that has seen `revision` (its first call, on A) asks the lagging gateway next (round
    // robin) for at least that: 504 after the gateway's 5 s wait, then the answer from A.
    const reader = client([A, LAGGING])
    expect((await reader.roster.services()).revision).toBeGreaterThanOrEqual(revision)
    const list = await reader.roster.list('lag')
    expect(list.revision).toBeGreaterThanOrEqual(revision)
    expect(list.providers.map((p) => p.id)).toEqual(['lag-1'])
    expect(reader.retries.map((r) => [r.operation, r.failure.gateway, r.failure.statusCode, r.failure.code])).toEqual([
      ['list', LAGGING, 504, 'ROSTER_ERR_REVISION_TIMEOUT']
    ])
    // A fresh client given the revision explicitly (say, by the writer) does the same. (Each 504
    // is a complete answer: an attempt abandoned mid-wait would hold the gateway's shutdown for
    // its 30 s request timeout, server/gateway/http-limits.ts.)
    const explicit = client([LAGGING, A])
    expect((await explicit.roster.get('lag', 'lag-1', { minRevision: revision })).id).toBe('lag-1')
    expect(explicit.retries.map((r) => [r.failure.gateway, r.failure.statusCode])).toEqual([[LAGGING, 504]])
    router.restore()
    events.restore()
  }, 60_000)
})

describe('RosterClient with --auth on', () => {
  it('sends its token on every request and on the feed; without one, or with the wrong scope, the 401 or 403 is thrown at once', async () => {
    const admin = client([AUTH], { token: BOOTSTRAP })
    const feed = admin.roster.watch({ services: ['secure'] })
    const first = await feed.next()
    expect(first.value).toMatchObject({ type: 'snapshot', providers: [] })
    const { revision } = await admin.roster.register('secure', 'sec-1', SPEC)
    expect((await feed.next()).value).toMatchObject({ type: 'event', event: 'registered', revision, provider: { id: 'sec-1' } })
    await feed.return()
    expect((await admin.roster.get('secure', 'sec-1')).id).toBe('sec-1')

    // Gateway A (auth off) is next in line each time: a 401 must not be retried there.
    const anonymous = client([AUTH, A])
    expect(await rejection(anonymous.roster.get('secure', 'sec-1'))).toMatchObject({ statusCode: 401, code: 'ROSTER_ERR_UNAUTHORIZED' })
    const anonymousFeed = client([AUTH, A])
    expect(await rejection(take(anonymousFeed.roster.watch({ services: ['secure'] }), 1))).toMatchObject({ statusCode: 401, code: 'ROSTER_ERR_UNAUTHORIZED' })
    expect([...anonymous.retries, ...anonymousFeed.retries]).toEqual([])

    const res = await fetch(`${AUTH}/v1/tokens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${BOOTSTRAP}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'client-test-reader', scopes: ['read:secure'] })
    })
    expect(res.status).toBe(201)
    const { secret } = await res.json() as { secret: string }
    const reader = client([AUTH], { token: secret })
    expect((await reader.roster.list('secure')).providers.map((p) => p.id)).toEqual(['sec-1'])
    expect(await rejection(reader.roster.deregister('secure', 'sec-1'))).toMatchObject({ statusCode: 403, message: expect.stringContaining('needs write:secure') })
    expect(await rejection(client([AUTH], { token: 'roster_not-a-token' }).roster.services())).toMatchObject({ statusCode: 401 })
  })
})

describe('RosterClient.watch on one gateway', () => {
  it('delivers a snapshot, then every event in order; resumes with since without a snapshot; break closes it', async () => {
    const { roster } = client([B])
    const watch = roster.watch({ services: ['feed'] })
    const writes: number[] = []
    const reading = take(watch, 4)
    await waitFor(() => watch.gateway === B, { what: 'the watch to connect' })
    for (let i = 0; i < 3; i++) writes.push((await roster.register('feed', `feed-${i}`, SPEC)).revision)
    const seen = await reading
    expect(seen[0]).toMatchObject({ type: 'snapshot' })
    expect(seen.slice(1).map((m) => [m.type, m.revision])).toEqual(writes.map((r) => ['event', r]))
    expect(watch.revision).toBe(writes[2])
    // The loop's break closed it: the iterator is done, and it holds no connection.
    expect(await watch.next()).toEqual({ value: undefined, done: true })
    await waitFor(() => watch.gateway === null, { what: 'the watch to let go of its gateway' })

    // Two changes after writes[1]; a replay no longer than a snapshot of the service (2 providers)
    // is sent as events (a longer one would be a reset snapshot).
    const later = (await roster.deregister('feed', 'feed-0')).revision
    const resumed = await take(roster.watch({ services: ['feed'], since: writes[1] }), 2)
    expect(resumed.map((m) => [m.type, m.revision])).toEqual([['event', writes[2]], ['event', later]])

    expect(await rejection(take(roster.watch({ services: ['Not A Service'] }), 1))).toMatchObject({
      statusCode: 400, message: expect.stringContaining('querystring/service')
    })
  })
})
