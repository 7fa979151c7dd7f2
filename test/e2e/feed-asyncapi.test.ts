// The feed as its AsyncAPI document (openapi/asyncapi.json) describes it, against the whole
// stack with --auth on, in this process with the production wiring (server/roles.ts): a real
// leader on Postgres, a worker watching a real heartbeat emitter, a gateway requiring tokens,
// and real WebSocket clients. Every frame they receive is validated against the document's
// message schemas, every refusal against its upgrade answers, every close code against its
// list; and every kind of event, a reset snapshot and 1001 at shutdown are provoked for real.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { silentLog } from '../../server/common/log.js'
import { startGateway, startLeader, startWorker, type Stopper } from '../../server/roles.js'
import { freeLeaderEndpoint } from '../../harness/ports.js'
import { TEST_MIN_CHECK_INTERVAL_MS, testStorage } from '../helpers/cluster.js'
import { cleanUpAfterEachTest } from '../helpers/e2e-cleanup.js'
import { spawnEmitter } from '../helpers/emitters.js'
import { waitFor } from '../../harness/wait-for.js'
import { feedValidators, readFeedDocument, type FeedDocument, type FeedValidators } from '../gateway/feed-document.js'

const BOOTSTRAP = 'bootstrap-secret-for-the-feed-document-test-0123'
const INTERVAL_MS = 100

cleanUpAfterEachTest()

let doc: FeedDocument
let v: FeedValidators
let url: string
let stopGateway: Stopper
const stoppers: Stopper[] = []

async function call (method: string, path: string, opts: { token?: string, body?: unknown } = {}): Promise<{ status: number, body: any }> {
  const headers: Record<string, string> = {}
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`
  if (opts.body !== undefined) headers['content-type'] = 'application/json'
  const res = await fetch(`${url}${path}`, { method, headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body) })
  const text = await res.text()
  return { status: res.status, body: text === '' ? undefined : JSON.parse(text) }
}

interface Client {
  ws: WebSocket
  messages: any[]
  opened: Promise<void>
  closed: Promise<{ code: number, reason: string }>
  refused: Promise<{ status: number, body: unknown }>
  next: (match: (m: any) => boolean) => Promise<any>
}

function connect (query: string, opts: { token?: string, protocols?: string[] } = {}): Client {
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/watch${query}`, opts.protocols ?? [], {
    headers: opts.token === undefined ? {} : { authorization: `Bearer ${opts.token}` }
  })
  const messages: any[] = []
  // Attached before the connection opens, so the first frame cannot be missed.
  ws.on('message', (data) => messages.push(JSON.parse(data.toString())))
  ws.on('error', () => {})
  return {
    ws,
    messages,
    opened: new Promise((resolve) => ws.once('open', () => resolve())),
    closed: new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }))),
    refused: new Promise((resolve) => ws.once('unexpected-response', (_req, res) => {
      let body = ''
      res.on('data', (chunk: Buffer) => { body += chunk.toString() })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(body) }))
    })),
    async next (match) {
      try {
        return await waitFor(() => messages.find(match), { timeoutMs: 10_000, what: 'a matching feed message' })
      } catch (err) {
        throw new Error(`${(err as Error).message}; got ${JSON.stringify(messages.slice(-3)).slice(0, 600)}`)
      }
    }
  }
}

beforeAll(async () => {
  doc = await readFeedDocument()
  v = feedValidators(doc)
  const storage = await testStorage('roster-feed-doc-')
  const bind = await freeLeaderEndpoint()
  stoppers.push(await startLeader({ ...storage, bind, bootstrapToken: BOOTSTRAP }, silentLog))
  stoppers.push(await startWorker([bind], silentLog))
  const g = await startGateway({ port: 0, host: '127.0.0.1', candidates: [bind], auth: true, minCheckIntervalMs: TEST_MIN_CHECK_INTERVAL_MS }, silentLog)
  url = g.url
  // Once: the test stops it to see 1001, and afterAll stops it if the test did not get there.
  let stopping: Promise<void> | null = null
  stopGateway = async () => { stopping ??= g.stop(); await stopping }
  await waitFor(async () => (await call('GET', '/v1/services', { token: BOOTSTRAP })).status === 200, { timeoutMs: 15_000, what: 'a gateway that accepts the bootstrap token' })
}, 60_000)

afterAll(async () => {
  await stopGateway?.()
  for (const s of stoppers.reverse()) await s()
})

describe('the feed, as its AsyncAPI document describes it (--auth on)', () => {
  it('serves the document without a token, like /openapi.json, while the API needs one', async () => {
    expect((await call('GET', '/v1/services')).status).toBe(401)
    expect((await call('GET', '/openapi.json')).status).toBe(200)
    const served = await call('GET', '/asyncapi.json')
    expect(served.status).toBe(200)
    expect(served.body).toEqual(doc)
  })

  it('sends what the document describes: a snapshot, every kind of event, a reset snapshot, and 1001 at shutdown', async () => {
    // Refused before the upgrade, each with a status and body the document lists.
    const reader = await call('POST', '/v1/tokens', { token: BOOTSTRAP, body: { name: 'pay-reader', scopes: ['read:pay*'] } })
    expect(reader.status).toBe(201)
    for (const [query, token, status] of [['', undefined, 401], ['', 'roster_not-a-token', 401], ['?service=orders', reader.body.secret, 403], ['?since=x', BOOTSTRAP, 400]] as const) {
      const refused = await connect(query, { token }).refused
      expect(refused.status, `${query} ${String(token)}`).toBe(status)
      expect(v.upgradeError(refused.status, refused.body)).toEqual([])
    }

    // A browser's way in: the token as a subprotocol; the gateway selects the one the document names.
    const { selected, bearerPrefix } = doc.channels.watch['x-subprotocols']
    const orders = connect('?service=orders', { protocols: [`${bearerPrefix}${BOOTSTRAP}`, selected] })
    const all = connect('', { token: BOOTSTRAP })
    await orders.opened
    expect(orders.ws.protocol).toBe(selected)
    await all.next((m) => m.type === 'snapshot')
    await orders.next((m) => m.type === 'snapshot')

    // registered, then up at the first real heartbeat.
    const emitter = await spawnEmitter({ id: 'orders-1', intervalMs: INTERVAL_MS })
    const spec = { host: '127.0.0.1', port: 8080, protocol: 'http', heartbeat: emitter.endpoint, heartbeatIntervalMs: INTERVAL_MS }
    expect((await call('PUT', '/v1/services/orders/providers/orders-1', { token: BOOTSTRAP, body: spec })).status).toBe(201)
    await orders.next((m) => m.event === 'registered')
    await orders.next((m) => m.event === 'up')
    // updated (a new registration), maintenance, released (updated, then up again).
    expect((await call('PUT', '/v1/services/orders/providers/orders-1', { token: BOOTSTRAP, body: { ...spec, tags: ['blue'] } })).status).toBe(200)
    await orders.next((m) => m.event === 'updated' && m.provider.tags.includes('blue'))
    expect((await call('PUT', '/v1/services/orders/providers/orders-1/maintenance', { token: BOOTSTRAP, body: { enabled: true, reason: 'kernel upgrade' } })).status).toBe(200)
    await orders.next((m) => m.event === 'maintenance')
    const released = (await call('PUT', '/v1/services/orders/providers/orders-1/maintenance', { token: BOOTSTRAP, body: { enabled: false } })).body.revision as number
    await orders.next((m) => m.event === 'up' && m.revision > released)
    // A provider with a ttl check (the discriminated Check in the document): up at its renewal.
    const job = await call('PUT', '/v1/services/jobs/providers/job-1', { token: BOOTSTRAP, body: { host: '127.0.0.1', port: 9000, protocol: 'rpc', check: { type: 'ttl', ttlMs: 60_000 } } })
    expect(job.status).toBe(201)
    const jobRegistered = job.body.revision as number
    expect((await call('PUT', '/v1/services/jobs/providers/job-1/heartbeat', { token: BOOTSTRAP })).status).toBe(200)
    await all.next((m) => m.event === 'up' && m.provider.id === 'job-1')
    // down when the provider's process dies, then deregistered.
    emitter.kill('SIGKILL')
    await orders.next((m) => m.event === 'down')
    expect((await call('DELETE', '/v1/services/orders/providers/orders-1', { token: BOOTSTRAP })).status).toBe(200)
    await orders.next((m) => m.event === 'deregistered')
    await all.next((m) => m.event === 'deregistered')

    // A replay longer than a snapshot of the same services: a reset snapshot instead.
    const reset = connect('?since=0', { token: BOOTSTRAP })
    expect(await reset.next(() => true)).toMatchObject({ type: 'snapshot', reset: true })
    // A since whose changes are still available (and fewer than a snapshot): the events after it.
    const resumed = connect(`?service=jobs&since=${jobRegistered as number}`, { token: BOOTSTRAP })
    await resumed.next((m) => m.event === 'up' && m.provider.id === 'job-1')
    expect(resumed.messages.map((m) => m.type)).toEqual(['event'])

    expect(new Set(all.messages.map((m) => m.event ?? m.type))).toEqual(new Set(['snapshot', 'registered', 'updated', 'up', 'down', 'maintenance', 'deregistered']))
    expect(orders.messages.every((m) => m.type === 'snapshot' || m.provider.service === 'orders')).toBe(true)

    await stopGateway()
    for (const c of [all, orders, reset, resumed]) {
      for (const m of c.messages) expect(v.message(m), JSON.stringify(m).slice(0, 200)).toEqual([])
      const { code, reason } = await c.closed
      expect(code).toBe(1001)
      expect(v.closeCode(code, reason)).toEqual([])
    }
  }, 60_000)
})
