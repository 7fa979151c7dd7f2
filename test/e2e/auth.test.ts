// Tokens and scopes end to end, in this process with the production wiring (server/roles.ts): a
// real leader on Postgres with a bootstrap secret, two real gateways with --auth on,
// real HTTP and WebSocket clients. The 401/403 matrix per endpoint and scope, globs, the admin
// API, revocation seen by the other gateway within 1 s, expiry, the feed (header, subprotocol,
// 403 before the upgrade, filtering), the write log, and that no secret ever reaches a log.
import { Writable } from 'node:stream'
import fc from 'fast-check'
import { request as httpRequest } from 'node:http'
import { pino } from 'pino'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { startGateway, startLeader, type Stopper } from '../../server/roles.js'
import { silentLog } from '../../server/common/log.js'
import { freeLeaderEndpoint } from '../../harness/ports.js'
import { waitForLeader } from '../../harness/roster-process.js'
import { removeTestStorage, testStorage } from '../helpers/cluster.js'
import { waitFor } from '../../harness/wait-for.js'

const BOOTSTRAP = 'bootstrap-secret-for-the-auth-test-0123456789'
const NOBODY = 'tcp://127.0.0.1:9'

/** Every log line of the leader and both gateways, as written. */
const logLines: string[] = []
// debug: the per-request lines (server/gateway/request-log.ts), with their URLs, are searched for secrets too.
const capture = pino({ level: 'debug' }, new Writable({
  write (chunk: Buffer, _enc, done) { logLines.push(...chunk.toString().split('\n').filter((l) => l !== '')); done() }
}))

let stoppers: Stopper[] = []
let A: string
let B: string
let bind: string

async function call (method: string, url: string, opts: { token?: string, body?: unknown, headers?: Record<string, string> } = {}): Promise<{ status: number, body: any, headers: Headers }> {
  const headers: Record<string, string> = { ...opts.headers }
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`
  if (opts.body !== undefined) headers['content-type'] = 'application/json'
  const res = await fetch(url, { method, headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body) })
  const text = await res.text()
  return { status: res.status, headers: res.headers, body: text === '' ? undefined : JSON.parse(text) }
}

const secrets: string[] = [BOOTSTRAP]
async function createToken (gateway: string, name: string, scopes: string[], extra: Record<string, unknown> = {}): Promise<{ id: string, secret: string }> {
  const res = await call('POST', `${gateway}/v1/tokens`, { token: BOOTSTRAP, body: { name, scopes, ...extra } })
  expect(res.status, JSON.stringify(res.body)).toBe(201)
  secrets.push(res.body.secret as string)
  return { id: res.body.token.id as string, secret: res.body.secret as string }
}

function spec (): Record<string, unknown> {
  return { host: '127.0.0.1', port: 8080, protocol: 'http', heartbeat: NOBODY }
}

beforeAll(async () => {
  const storage = await testStorage('roster-auth-')
  bind = await freeLeaderEndpoint()
  stoppers.push(await startLeader({ ...storage, bind, bootstrapToken: BOOTSTRAP }, capture))
  for (const _ of [1, 2]) {
    const g = await startGateway({ port: 0, host: '127.0.0.1', candidates: [bind], auth: true }, capture)
    stoppers.push(g.stop)
    await waitForLeader(g.url)
    // Reads need a token now: wait until the bootstrap token is accepted (token list loaded).
    await waitFor(async () => (await call('GET', `${g.url}/v1/services`, { token: BOOTSTRAP })).status === 200, { timeoutMs: 15_000, what: 'a gateway that accepts the bootstrap token' })
    if (A === undefined) A = g.url
    else B = g.url
  }
  for (const [service, id] of [['payments', 'pay-1'], ['payroll', 'roll-1'], ['orders', 'ord-1']]) {
    expect((await call('PUT', `${A}/v1/services/${service}/providers/${id}`, { token: BOOTSTRAP, body: spec() })).status).toBe(201)
  }
}, 60_000)

afterAll(async () => {
  for (const s of stoppers.reverse()) await s()
  stoppers = []
  await removeTestStorage()
})

describe('auth on: REST', () => {
  it('answers 401 with WWW-Authenticate: Bearer for a missing, malformed, unknown or oversized token; health and OpenAPI stay open', async () => {
    for (const headers of [{} as Record<string, string>, { authorization: 'Basic YWxhZGRpbjpvcGVuc2VzYW1l' }, { authorization: 'Bearer' }, { authorization: 'Bearer roster_unknown' }, { authorization: `Bearer ${'x'.repeat(8000)}` }]) {
      const res = await call('GET', `${A}/v1/services`, { headers })
      expect(res.status, JSON.stringify(headers).slice(0, 80)).toBe(401)
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer realm="roster"/)
      expect(res.body).toEqual({ statusCode: 401, code: 'ROSTER_ERR_UNAUTHORIZED', error: 'Unauthorized', message: expect.any(String) })
    }
    // An unknown URL is no way around it.
    expect((await call('GET', `${A}/v2/anything`)).status).toBe(401)
    expect((await call('GET', `${A}/v1/health`)).status).toBe(200)
    expect((await call('GET', `${A}/openapi.json`)).status).toBe(200)
  })

  it('checks every endpoint against the scope it needs: 403 names it, and write implies read', async () => {
    const reader = await createToken(A, 'reader', ['read'])
    const payWriter = await createToken(A, 'pay-writer', ['write:payments'])
    const globReader = await createToken(A, 'glob-reader', ['read:pay*'])
    const p = (service: string, id: string, suffix = ''): string => `${A}/v1/services/${service}/providers/${id}${suffix}`
    const endpoints: Array<{ method: string, url: string, body?: unknown, needs: string, service: string }> = [
      { method: 'GET', url: `${A}/v1/services/payments/providers`, needs: 'read', service: 'payments' },
      { method: 'GET', url: p('payments', 'pay-1'), needs: 'read', service: 'payments' },
      { method: 'PUT', url: p('payments', 'pay-1'), body: spec(), needs: 'write', service: 'payments' },
      { method: 'PUT', url: p('payments', 'pay-1', '/maintenance'), body: { enabled: false }, needs: 'write', service: 'payments' },
      { method: 'PUT', url: p('payments', 'pay-1', '/heartbeat'), needs: 'write', service: 'payments' },
      { method: 'GET', url: `${A}/v1/services/orders/providers`, needs: 'read', service: 'orders' },
      { method: 'PUT', url: p('orders', 'ord-1'), body: spec(), needs: 'write', service: 'orders' }
    ]
    const allowed = (scopes: string, e: typeof endpoints[number]): boolean => {
      if (scopes === 'admin') return true
      if (scopes === 'read') return e.needs === 'read'
      if (scopes === 'write:payments') return e.service === 'payments'
      return e.needs === 'read' && e.service.startsWith('pay')
    }
    for (const [scopes, secret] of [['admin', BOOTSTRAP], ['read', reader.secret], ['write:payments', payWriter.secret], ['read:pay*', globReader.secret]] as const) {
      for (const e of endpoints) {
        const res = await call(e.method, e.url, { token: secret, body: e.body })
        const where = `${scopes}: ${e.method} ${e.url}`
        if (allowed(scopes, e)) {
          // Allowed: whatever the registry says (a renewal of a provider without a ttl check is 409).
          expect([200, 201, 409], `${where} ${JSON.stringify(res.body)}`).toContain(res.status)
        } else {
          expect(res.status, where).toBe(403)
          expect(res.body).toMatchObject({ statusCode: 403, code: 'ROSTER_ERR_FORBIDDEN', error: 'Forbidden' })
          expect(res.body.message, where).toContain(`needs ${e.needs}:${e.service}`)
        }
      }
    }
    // Deregistration too, and the token API needs admin.
    expect((await call('DELETE', p('orders', 'ord-1'), { token: payWriter.secret })).body.message).toContain('needs write:orders')
    expect((await call('GET', `${A}/v1/tokens`, { token: payWriter.secret })).body.message).toContain('needs admin')
    expect((await call('POST', `${A}/v1/tokens`, { token: reader.secret, body: { name: 'x', scopes: ['admin'] } })).status).toBe(403)
  })

  it('lists only the services a token may read, by glob', async () => {
    const globReader = await createToken(A, 'lister', ['read:pay*'])
    const writer = await createToken(A, 'roll-writer', ['write:*roll'])
    const names = async (secret: string): Promise<string[]> =>
      ((await call('GET', `${A}/v1/services`, { token: secret })).body.services as Array<{ name: string }>).map((s) => s.name)
    expect(await names(globReader.secret)).toEqual(['payments', 'payroll'])
    expect(await names(writer.secret)).toEqual(['payroll'])
    expect(await names(BOOTSTRAP)).toEqual(['orders', 'payments', 'payroll'])
    expect((await call('PUT', `${A}/v1/services/payroll/providers/roll-2`, { token: writer.secret, body: spec() })).status).toBe(201)
    expect((await call('PUT', `${A}/v1/services/payroll-eu/providers/roll-3`, { token: writer.secret, body: spec() })).status).toBe(403)
  })
})

describe('auth on: generated hostile input', () => {
  it('answers any Authorization header with 401 (never 5xx), and any token creation with 201 or 400', async () => {
    // Header values: any Latin-1 text HTTP allows in a header (no control characters nor DEL).
    const headerText = fc.string({ unit: fc.integer({ min: 0x20, max: 0xfe }).map((c) => String.fromCharCode(c === 0x7f ? 0xff : c)), maxLength: 300 })
    // node:http sends what fetch (undici) would refuse to, e.g. `Bearer ` with nothing after it.
    const rawStatus = (value: string): Promise<number> => new Promise((resolve, reject) => {
      const req = httpRequest(`${A}/v1/services`, { headers: { authorization: value } }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode ?? 0)) })
      req.on('error', reject)
      req.end()
    })
    await fc.assert(fc.asyncProperty(fc.oneof(headerText, headerText.map((s) => `Bearer ${s}`)), async (value) => {
      expect(await rawStatus(value)).toBe(401)
    }), { numRuns: 200 })
    const anyText = fc.string({ unit: 'binary', maxLength: 80 })
    await fc.assert(fc.asyncProperty(
      fc.record({ name: fc.oneof(anyText, fc.anything()), scopes: fc.oneof(fc.array(anyText, { maxLength: 40 }), fc.anything()), expiresAt: fc.option(fc.oneof(anyText, fc.date().map((d) => (Number.isNaN(d.getTime()) ? 'x' : d.toISOString()))), { nil: undefined }) }, { requiredKeys: [] }),
      async (body) => {
        const res = await call('POST', `${A}/v1/tokens`, { token: BOOTSTRAP, body })
        expect([201, 400], JSON.stringify(body).slice(0, 200)).toContain(res.status)
        if (res.status === 201) {
          secrets.push(res.body.secret as string)
          expect((await call('DELETE', `${A}/v1/tokens/${res.body.token.id as string}`, { token: BOOTSTRAP })).status).toBe(204)
        }
      }), { numRuns: 300 })
  }, 120_000)
})

describe('auth on: the token API', () => {
  it('shows the secret once, never in GET; the token works at once, and a revocation is seen by the other gateway within 1 s', async () => {
    const created = await call('POST', `${A}/v1/tokens`, { token: BOOTSTRAP, body: { name: 'ci-deploy', scopes: ['read', 'write:payments'] } })
    expect(created.status).toBe(201)
    expect(created.body).toEqual({
      token: { id: expect.stringMatching(/^tok_/), name: 'ci-deploy', scopes: ['read', 'write:payments'], createdAt: expect.any(String), expiresAt: null },
      secret: expect.stringMatching(/^roster_[A-Za-z0-9_-]{43}$/)
    })
    const { token, secret } = created.body as { token: { id: string }, secret: string }
    secrets.push(secret)
    // Usable at once on the gateway that created it.
    expect((await call('GET', `${A}/v1/services/payments/providers`, { token: secret })).status).toBe(200)
    await waitFor(async () => (await call('GET', `${B}/v1/services/payments/providers`, { token: secret })).status === 200, { what: 'the new token on gateway B' })

    const list = await call('GET', `${B}/v1/tokens`, { token: BOOTSTRAP })
    expect(list.status).toBe(200)
    expect(list.body.tokens).toContainEqual(token)
    const text = JSON.stringify(list.body)
    expect(text).not.toContain(secret)
    expect(text).not.toContain('secretHash')
    expect(text).not.toContain(BOOTSTRAP)

    const revokedAt = Date.now()
    expect((await call('DELETE', `${A}/v1/tokens/${token.id}`, { token: BOOTSTRAP })).status).toBe(204)
    // Refused on A at once (before the answer), and on B within 1 s.
    expect((await call('GET', `${A}/v1/services`, { token: secret })).status).toBe(401)
    await waitFor(async () => (await call('GET', `${B}/v1/services`, { token: secret })).status === 401, { timeoutMs: 1000, intervalMs: 5, what: 'gateway B refusing the revoked token' })
    const seenAfterMs = Date.now() - revokedAt
    console.log(`revocation seen by gateway B ${seenAfterMs} ms after the DELETE was sent`)
    expect(seenAfterMs).toBeLessThan(1000)
    expect((await call('DELETE', `${A}/v1/tokens/${token.id}`, { token: BOOTSTRAP })).body).toMatchObject({ statusCode: 404, code: 'ROSTER_ERR_TOKEN_NOT_FOUND' })
  })

  it('refuses an expired token with 401 on every gateway', async () => {
    const t = await createToken(A, 'short-lived', ['read'], { expiresAt: new Date(Date.now() + 1500).toISOString() })
    await waitFor(async () => (await call('GET', `${B}/v1/services`, { token: t.secret })).status === 200, { what: 'the token on gateway B' })
    for (const g of [A, B]) {
      const res = await waitFor(async () => { const r = await call('GET', `${g}/v1/services`, { token: t.secret }); return r.status === 401 ? r : null }, { timeoutMs: 5000, what: 'the expiry' })
      expect(res.body.message).toContain('expired')
      expect(res.headers.get('www-authenticate')).toContain('error="invalid_token"')
    }
  })

  it('validates a creation: 400 names the field', async () => {
    const bad: Array<[unknown, RegExp]> = [
      [{ name: 'ok', scopes: ['read', 'write:Pay'] }, /^body\/scopes\/1 must match pattern/],
      [{ name: 'ok', scopes: ['write'] }, /^body\/scopes\/0 /],
      [{ name: 'ok', scopes: [] }, /^body\/scopes must NOT have fewer than 1 items/],
      [{ name: 'ok', scopes: Array.from({ length: 33 }, (_, i) => `read:s${i}`) }, /^body\/scopes must NOT have more than 32 items/],
      [{ name: 'ok', scopes: ['read', 'read'] }, /^body\/scopes must NOT have duplicate items/],
      [{ name: 'a\u0000b', scopes: ['read'] }, /^body\/name must match pattern/],
      [{ name: 'x'.repeat(65), scopes: ['read'] }, /^body\/name must NOT have more than 64 characters/],
      [{ name: 'ok', scopes: ['read'], expiresAt: '2001-01-01T00:00:00Z' }, /^body\/expiresAt must be in the future/],
      [{ name: 'ok', scopes: ['read'], expiresAt: 'tomorrow' }, /^body\/expiresAt must match format "date-time"/],
      [{ name: 'ok', scopes: ['read'], secret: 'mine' }, /unknown field 'secret'/]
    ]
    for (const [body, message] of bad) {
      const res = await call('POST', `${A}/v1/tokens`, { token: BOOTSTRAP, body })
      expect(res.status, JSON.stringify(body).slice(0, 80)).toBe(400)
      expect(res.body.message).toMatch(message)
    }
    expect((await call('DELETE', `${A}/v1/tokens/..%2Fetc`, { token: BOOTSTRAP })).status).toBe(400)
  })
})

describe('auth on: the feed', () => {
  interface Opened { ws: WebSocket, messages: any[], protocol: string }
  const open: WebSocket[] = []
  afterEach(() => { for (const ws of open.splice(0)) ws.terminate() })

  function connect (query: string, opts: { token?: string, protocols?: string[] } = {}): Promise<Opened | { refused: number, body: any }> {
    const ws = new WebSocket(`${A.replace(/^http/, 'ws')}/v1/watch${query}`, opts.protocols ?? [], {
      headers: opts.token === undefined ? {} : { authorization: `Bearer ${opts.token}` }
    })
    open.push(ws)
    const messages: any[] = []
    ws.on('message', (d) => messages.push(JSON.parse(d.toString())))
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve({ ws, messages, protocol: ws.protocol }))
      ws.once('unexpected-response', (_req, res) => {
        let body = ''
        res.on('data', (c: Buffer) => { body += c.toString() })
        res.on('end', () => resolve({ refused: res.statusCode ?? 0, body: JSON.parse(body) }))
      })
      ws.once('error', reject)
    })
  }

  it('refuses a feed without a token, or for a service the token may not read, before the upgrade', async () => {
    expect(await connect('')).toMatchObject({ refused: 401, body: { code: 'ROSTER_ERR_UNAUTHORIZED' } })
    // The token in the URL is never read.
    expect(await connect(`?token=${BOOTSTRAP}`)).toMatchObject({ refused: 401 })
    const globReader = await createToken(A, 'feed-reader', ['read:pay*'])
    const res = await connect('?service=payments&service=orders', { token: globReader.secret })
    expect(res).toMatchObject({ refused: 403, body: { code: 'ROSTER_ERR_FORBIDDEN' } })
    expect((res as { body: { message: string } }).body.message).toContain('needs read:orders')
  })

  it('takes the token from the Authorization header or the bearer.<secret> subprotocol, selecting roster.v1, and filters an unfiltered feed', async () => {
    const globReader = await createToken(A, 'feed-glob', ['read:pay*'])
    const byHeader = await connect('', { token: globReader.secret }) as Opened
    const byProtocol = await connect('', { protocols: [`bearer.${globReader.secret}`, 'roster.v1'] }) as Opened
    expect(byProtocol.protocol).toBe('roster.v1')
    expect(byHeader.protocol).toBe('')
    for (const feed of [byHeader, byProtocol]) {
      await waitFor(() => feed.messages.length > 0)
      const services = new Set((feed.messages[0].providers as Array<{ service: string }>).map((p) => p.service))
      expect([...services].sort()).toEqual(['payments', 'payroll'])
    }
    // A change to orders is not sent; the next one to payments is.
    await call('PUT', `${A}/v1/services/orders/providers/ord-9`, { token: BOOTSTRAP, body: spec() })
    const paid = await call('PUT', `${A}/v1/services/payments/providers/pay-9`, { token: BOOTSTRAP, body: spec() })
    for (const feed of [byHeader, byProtocol]) {
      await waitFor(() => feed.messages.some((m) => m.revision === paid.body.revision))
      const events = feed.messages.slice(1)
      expect(events.map((m) => m.provider.service)).toEqual(['payments'])
    }
    // A bad secret in the subprotocol is a 401 like any other.
    expect(await connect('', { protocols: ['bearer.roster_nope', 'roster.v1'] })).toMatchObject({ refused: 401 })
  })
})

describe('auth on: logs', () => {
  it('logs every accepted write once with its token and client address, and never a secret', async () => {
    const writer = await createToken(A, 'logged-writer', ['write:payments'])
    const from = logLines.length
    const res = await call('PUT', `${A}/v1/services/payments/providers/pay-log`, { token: writer.secret, body: spec() })
    expect(res.status).toBe(201)
    await call('PUT', `${A}/v1/services/orders/providers/ord-log`, { token: writer.secret, body: spec() }) // 403: not logged as a write
    const writes = await waitFor(() => {
      const found = logLines.slice(from).map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'write accepted')
      return found.length > 0 ? found : null
    })
    expect(writes).toEqual([expect.objectContaining({ tokenId: writer.id, tokenName: 'logged-writer', client: '127.0.0.1', method: 'PUT', url: '/v1/services/payments/providers/pay-log', statusCode: 201 })])
    // Every secret this file made or used, and the bootstrap secret, are in no line.
    expect(logLines.length).toBeGreaterThan(20)
    for (const line of logLines) {
      for (const s of secrets) expect(line.includes(s), `a secret in the log: ${line.slice(0, 200)}`).toBe(false)
    }
  })
})

describe('auth on: before the token list', () => {
  it('answers 503 (not 401) for a token it cannot check yet, and 401 without one', async () => {
    const g = await startGateway({ port: 0, host: '127.0.0.1', candidates: [await freeLeaderEndpoint()], auth: true }, silentLog)
    try {
      const res = await call('GET', `${g.url}/v1/services`, { token: BOOTSTRAP })
      expect(res.status).toBe(503)
      expect(res.body.code).toBe('ROSTER_ERR_TOKENS_NOT_LOADED')
      expect(res.headers.get('retry-after')).toBe('1')
      expect((await call('GET', `${g.url}/v1/services`)).status).toBe(401)
    } finally {
      await g.stop()
    }
  })
})
