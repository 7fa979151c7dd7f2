// Limits on writes as a client meets them, with Roster in this process (`roster up` wiring) and
// real HTTP clients: provider quotas decided by the leader (429 naming the quota; an update never
// refused), the per-client write rate limit (429 with Retry-After on write routes only, per
// client address), and the minimum check interval.
import { request } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { http } from '../../harness/roster-process.js'
import { startInProcess, testStorage, type InProcessRoster } from '../helpers/cluster.js'
import { cleanUpAfterEachTest } from '../helpers/e2e-cleanup.js'
import { waitFor } from '../../harness/wait-for.js'

cleanUpAfterEachTest()

const SPEC = { host: '127.0.0.1', port: 8080, protocol: 'http', check: { type: 'ttl', ttlMs: 60_000 } }

describe('provider quotas (--max-providers-per-service 3, --max-providers 5)', () => {
  let system: InProcessRoster
  beforeAll(async () => {
    system = await startInProcess(await testStorage(), undefined, { leader: { quotas: { maxProvidersPerService: 3, maxProviders: 5 } } })
  }, 60_000)
  afterAll(async () => { await system?.stop() })
  const url = (service: string, id: string): string => `${system.url}/v1/services/${service}/providers/${id}`

  it('new providers beyond a quota are 429 with a code naming it, even when they arrive together; updates are never refused', async () => {
    const answers = await Promise.all(Array.from({ length: 6 }, async (_, i) => await http('PUT', url('q', `q-${i}`), SPEC)))
    expect(answers.map((a) => a.status).sort()).toEqual([201, 201, 201, 429, 429, 429])
    for (const a of answers.filter((x) => x.status === 429)) {
      expect(a.body).toEqual({
        statusCode: 429,
        code: 'ROSTER_ERR_QUOTA_SERVICE',
        error: 'Too Many Requests',
        message: "service 'q' already has 3 providers, its quota (--max-providers-per-service 3); deregister one first"
      })
    }
    const kept = answers.flatMap((a, i) => (a.status === 201 ? [`q-${i}`] : []))
    expect((await http('GET', `${system.url}/v1/services/q/providers`)).body.providers.map((p: { id: string }) => p.id).sort()).toEqual(kept.sort())
    // An update of a provider that is in: 200, quota or not.
    expect((await http('PUT', url('q', kept[0]!), { ...SPEC, port: 9090 })).status).toBe(200)

    expect((await http('PUT', url('r', 'r-0'), SPEC)).status).toBe(201)
    expect((await http('PUT', url('r', 'r-1'), SPEC)).status).toBe(201)
    const total = await http('PUT', url('r', 'r-2'), SPEC)
    expect(total).toMatchObject({ status: 429, body: { code: 'ROSTER_ERR_QUOTA_TOTAL', message: expect.stringContaining('(--max-providers 5)') } })

    // A deregistration makes room again.
    expect((await http('DELETE', url('q', kept[1]!))).status).toBe(200)
    expect((await http('PUT', url('r', 'r-2'), SPEC)).status).toBe(201)
  })
})

/** A PUT from another loopback address (Linux routes all of 127.0.0.0/8 to lo), i.e. another client. */
async function putFrom (localAddress: string, url: string, body: unknown): Promise<{ status: number, body: any }> {
  return await new Promise((resolve, reject) => {
    const req = request(url, { method: 'PUT', localAddress, headers: { 'content-type': 'application/json' } }, (res) => {
      let text = ''
      res.on('data', (d: Buffer) => { text += d.toString() })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }))
    })
    req.on('error', reject)
    req.end(JSON.stringify(body))
  })
}

describe('the write rate limit (--write-rate 5) and the minimum check interval (--min-check-interval-ms 1000)', () => {
  let system: InProcessRoster
  beforeAll(async () => {
    system = await startInProcess(await testStorage(), undefined, { gateway: { writeRatePerSecond: 5, minCheckIntervalMs: 1000 } })
  }, 60_000)
  afterAll(async () => { await system?.stop() })
  const url = (service: string, id: string): string => `${system.url}/v1/services/${service}/providers/${id}`

  it('a burst of writes from one client gets 429 with Retry-After and a ROSTER_ERR code; reads and other clients are not limited', async () => {
    const burst = await Promise.all(Array.from({ length: 12 }, async () => await fetch(url('w', 'w-1'), {
      method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(SPEC)
    })))
    const limited = burst.filter((r) => r.status === 429)
    // 12 writes inside one or two 1 s windows: at most 10 pass.
    expect(limited.length).toBeGreaterThanOrEqual(2)
    expect(burst.every((r) => r.status === 429 || r.status === 200 || r.status === 201)).toBe(true)
    for (const r of limited) {
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
      expect(await r.json()).toEqual({
        statusCode: 429,
        code: 'ROSTER_ERR_RATE_LIMITED',
        error: 'Too Many Requests',
        message: expect.stringMatching(/^write rate limit exceeded: at most 5 writes per second per client \(--write-rate\); retry in \d+ s$/)
      })
    }
    for (const r of burst.filter((x) => x.status !== 429)) await r.arrayBuffer()
    // Another client address has its own budget.
    expect((await putFrom('127.0.0.2', url('w', 'w-2'), SPEC)).status).toBe(201)
    // Reads are never limited.
    const reads = await Promise.all(Array.from({ length: 30 }, async () => (await http('GET', `${system.url}/v1/services/w/providers`)).status))
    expect(new Set(reads)).toEqual(new Set([200]))
  })

  it('every write route draws on the budget (DELETE, maintenance, renewal), and it refills', async () => {
    for (const [method, path, body] of [
      ['DELETE', url('w', 'nobody'), undefined],
      ['PUT', `${url('w', 'nobody')}/maintenance`, { enabled: true }],
      ['PUT', `${url('w', 'nobody')}/heartbeat`, undefined]
    ] as const) {
      let seen = 0
      for (let i = 0; i < 50 && seen === 0; i++) {
        const res = await http(method, path, body)
        if (res.status === 429) seen++
        else expect(res.status).toBe(404)
      }
      expect(seen, `${method} ${path}`).toBe(1)
    }
    await waitFor(async () => (await http('GET', url('w', 'w-1'))).status === 200 && (await http('PUT', url('w', 'w-1'), SPEC)).status === 200, {
      timeoutMs: 5000, what: 'a write to pass again after the window'
    })
  })

  it('an http or tcp check more frequent than the minimum is 400 naming body/check/intervalMs and the minimum', async () => {
    // From client addresses of their own, so that the rate limit of the tests above is not in the way.
    for (const check of [{ type: 'tcp', intervalMs: 999, timeoutMs: 100 }, { type: 'http', path: '/', intervalMs: 50, timeoutMs: 10 }]) {
      expect(await putFrom('127.0.0.3', url('c', 'c-1'), { ...SPEC, check })).toEqual({
        status: 400,
        body: {
          statusCode: 400,
          code: 'ROSTER_ERR_INVALID_REGISTRATION',
          error: 'Bad Request',
          message: `body/check/intervalMs must be >= 1000 (this gateway's --min-check-interval-ms), got ${check.intervalMs}`
        }
      })
    }
    expect((await putFrom('127.0.0.4', url('c', 'c-2'), { ...SPEC, check: { type: 'tcp', intervalMs: 1000, timeoutMs: 100 } })).status).toBe(201)
  })
})
