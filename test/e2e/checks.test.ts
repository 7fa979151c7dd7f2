// Checks as a user sees them, through real HTTP and a real WebSocket feed, with Roster in this
// process (`roster up` wiring): an http check against a real node:http server made to fail and
// recover, a tcp check against a real server closed and reopened, a ttl renewed over REST and
// left to expire, and bad check definitions refused with a 400 that names the field.
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http'
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { http } from '../../harness/roster-process.js'
import { readFeed, startInProcess, type FeedMessage, type FeedReader, type InProcessRoster, type Storage } from '../helpers/cluster.js'
import { freshDatabaseUrl } from '../helpers/postgres.js'
import { waitFor } from '../../harness/wait-for.js'

interface FeedProvider { id: string, state: string, reason?: string, detail?: string, detectedAfterMs?: number, lastSeen: string | null }
const providerOf = (m: FeedMessage): FeedProvider => m.provider as unknown as FeedProvider

/** A gateway says `leader: connected` a moment before its replica holds a snapshot; reads and
 *  feed upgrades in that moment are 503. Wait until it answers reads. */
async function readable (url: string): Promise<void> {
  await waitFor(async () => (await fetch(`${url}/v1/services`)).ok, { timeoutMs: 15_000, what: `${url} to answer reads` })
}

const BASE = { host: '127.0.0.1', protocol: 'http' }
let dataDir = ''
let system: InProcessRoster
const servers: Array<HttpServer | TcpServer> = []
const feeds: FeedReader[] = []

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'roster-e2e-checks-'))
  const s: Storage = { dataDir, databaseUrl: process.env.ROSTER_TEST_DATABASE_URL === undefined ? undefined : await freshDatabaseUrl() }
  system = await startInProcess(s)
  await readable(system.url)
}, 60_000)
afterEach(() => {
  for (const f of feeds.splice(0)) f.close()
  for (const s of servers.splice(0)) {
    (s as HttpServer).closeAllConnections?.()
    s.close()
  }
})
afterAll(async () => {
  await system?.stop()
  await rm(dataDir, { recursive: true, force: true })
})

async function listen (server: HttpServer | TcpServer, port = 0): Promise<number> {
  servers.push(server)
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => resolve())
  })
  return (server.address() as AddressInfo).port
}

async function feed (service: string): Promise<FeedReader> {
  const f = await readFeed(system.url, `?service=${service}`)
  feeds.push(f)
  return f
}

const providerUrl = (service: string, id: string): string => `${system.url}/v1/services/${service}/providers/${id}`

describe('http check', () => {
  it('is up while the server answers 2xx, down (check-failed, HTTP 503) when it fails, and up when it recovers', async () => {
    let status = 200
    const port = await listen(createHttpServer((req, res) => { res.writeHead(req.url === '/health' ? status : 404).end() }))
    const events = await feed('web')
    const put = await http('PUT', providerUrl('web', 'web-1'), { ...BASE, port, check: { type: 'http', path: '/health', intervalMs: 100, timeoutMs: 50 } })
    expect(put.status).toBe(201)
    expect(put.body.provider).toMatchObject({ state: 'pending', check: { type: 'http', path: '/health', intervalMs: 100, timeoutMs: 50 } })
    expect(put.body.provider).not.toHaveProperty('heartbeat')
    await events.next((m) => m.event === 'up')

    const failingAt = Date.now()
    status = 503
    const down = await events.next((m) => m.event === 'down')
    expect(providerOf(down)).toMatchObject({ state: 'down', reason: 'check-failed', detail: 'HTTP 503' })
    // One run (≤ 100 ms) plus the trip to the feed.
    expect(Date.now() - failingAt).toBeLessThan(1000)
    expect(providerOf(down).detectedAfterMs).toBeGreaterThanOrEqual(0)

    status = 204
    const up = await events.next((m) => m.event === 'up' && m.revision > down.revision)
    expect(providerOf(up)).not.toHaveProperty('reason')
    expect(providerOf(up)).not.toHaveProperty('detail')
  }, 30_000)
})

describe('tcp check', () => {
  it('is down (check-failed) when its server closes and up when it listens again on its port', async () => {
    const server = createTcpServer((socket) => socket.end())
    const port = await listen(server)
    const events = await feed('db')
    expect((await http('PUT', providerUrl('db', 'db-1'), { ...BASE, protocol: 'rpc', port, check: { type: 'tcp', intervalMs: 100, timeoutMs: 50 } })).status).toBe(201)
    await events.next((m) => m.event === 'up')
    await new Promise<void>((resolve) => server.close(() => resolve()))
    const down = await events.next((m) => m.event === 'down')
    expect(providerOf(down)).toMatchObject({ reason: 'check-failed', detail: 'ECONNREFUSED' })
    await listen(createTcpServer((socket) => socket.end()), port)
    await events.next((m) => m.event === 'up' && m.revision > down.revision)
  }, 30_000)
})

describe('ttl check', () => {
  it('is up when renewed over REST, down (ttl-expired) when renewals stop, and up at the next one', async () => {
    // Long enough that a renewal every ttlMs / 4 stays in time on a loaded machine.
    const ttlMs = 1000
    const events = await feed('jobs')
    const put = await http('PUT', providerUrl('jobs', 'job-1'), { ...BASE, port: 9000, check: { type: 'ttl', ttlMs } })
    expect(put).toMatchObject({ status: 201, body: { provider: { state: 'pending' } } })

    const renew = async (): Promise<{ status: number, body: any }> => await http('PUT', `${providerUrl('jobs', 'job-1')}/heartbeat`)
    const first = await renew()
    expect(first).toMatchObject({ status: 200, body: { provider: { state: 'up' } } })
    await events.next((m) => m.event === 'up' && m.revision === first.body.revision)
    // Renewed in time: the same revision, nothing on the feed.
    for (let i = 0; i < 4; i++) {
      await new Promise((resolve) => setTimeout(resolve, ttlMs / 4))
      expect((await renew()).body.revision).toBe(first.body.revision)
    }
    const lastRenewal = Date.now()
    const down = await events.next((m) => m.event === 'down', { timeoutMs: 5000 })
    expect(Date.now() - lastRenewal).toBeGreaterThanOrEqual(ttlMs - 30)
    expect(providerOf(down)).toMatchObject({ state: 'down', reason: 'ttl-expired' })
    expect(providerOf(down).detectedAfterMs).toBeGreaterThanOrEqual(ttlMs)
    const back = await renew()
    expect(back).toMatchObject({ status: 200, body: { revision: down.revision + 1, provider: { state: 'up' } } })
  }, 30_000)

  it('answers 404 for an unknown provider and 409 for one without a ttl check', async () => {
    const unknown = await http('PUT', `${providerUrl('jobs', 'nobody')}/heartbeat`)
    expect(unknown).toMatchObject({ status: 404, body: { code: 'ROSTER_ERR_PROVIDER_NOT_FOUND' } })
    expect((await http('PUT', providerUrl('jobs', 'hb-1'), { ...BASE, port: 9001, heartbeat: 'tcp://127.0.0.1:39111' })).status).toBe(201)
    const conflict = await http('PUT', `${providerUrl('jobs', 'hb-1')}/heartbeat`)
    expect(conflict).toMatchObject({ status: 409, body: { code: 'ROSTER_ERR_NO_TTL_CHECK', message: expect.stringContaining('no ttl check') } })
  })
})

describe('bad check definitions', () => {
  it('are refused with a 400 that names the field', async () => {
    const cases: Array<[unknown, string]> = [
      [{ ...BASE, port: 1 }, "body must have required property 'heartbeat' or 'check'"],
      [{ ...BASE, port: 1, check: { type: 'icmp' } }, 'body/check/type must be one of: http, tcp, ttl'],
      [{ ...BASE, port: 1, check: { type: 'http', path: 'health', intervalMs: 100, timeoutMs: 50 } }, 'body/check/path must match pattern'],
      [{ ...BASE, port: 1, check: { type: 'tcp', intervalMs: 20, timeoutMs: 10 } }, 'body/check/intervalMs must be >= 50'],
      [{ ...BASE, port: 1, check: { type: 'tcp', intervalMs: 100, timeoutMs: 150 } }, 'body/check/timeoutMs must be less than body/check/intervalMs'],
      [{ ...BASE, port: 1, check: { type: 'ttl', ttlMs: 10 } }, 'body/check/ttlMs must be >= 100'],
      [{ ...BASE, port: 1, heartbeat: 'tcp://127.0.0.1:9', check: { type: 'ttl', ttlMs: 1000 } }, 'body/check must not be given with body/heartbeat'],
      [{ ...BASE, port: 1, heartbeat: 'tcp://127.0.0.1:9', deregisterAfterMs: 10 }, 'body/deregisterAfterMs must be >= 1000']
    ]
    for (const [body, message] of cases) {
      const res = await http('PUT', providerUrl('bad', 'bad-1'), body)
      expect(res.status, JSON.stringify(body)).toBe(400)
      expect(res.body.message).toContain(message)
    }
    expect((await http('GET', providerUrl('bad', 'bad-1'))).status).toBe(404)
  })
})
