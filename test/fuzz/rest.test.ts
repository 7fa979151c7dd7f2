// Generated hostile REST requests against a live gateway, its leader and Postgres (issue 9,
// item 6): registrations with one poisoned field over the whole of Unicode, maintenance,
// renewals, deregistrations, reads with hostile parameters, and raw requests of any method,
// target, header and body. Properties: no 5xx (with a healthy leader, a 503 means the request
// broke it), an accepted write reads back exactly as written, a rejected request changes no
// revision, and the gateway still answers at the end. ROSTER_FUZZ_RUNS sets the count (45 % of
// it writes, 25 % reads; watch.test.ts sends the other 30 %), ROSTER_FUZZ_SEED replays a run.
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { removeTestStorage } from '../helpers/cluster.js'
import { FUZZ_RUNS, FUZZ_SEED, fuzz } from './fuzz-run.js'
import { LEAVE_OUT, show } from './hostile-text.js'
import { type Answer, errorBodyProblem, type LiveGateway, readBody, RevisionLedger, startLiveGateway, ANSWER_TIMEOUT_MS } from './live-gateway.js'
import { characters, expectedSpec, expectSame, limitProblem, queryInteger, specOf, values } from './oracle.js'
import { encodeRequest, rawExchange, type RawRequest } from './raw-http.js'
import { bodyText, queryString, readRequest, type ReadRequest, type Segment, writeRequest, type WriteRequest } from './requests.js'

const WRITES = Math.ceil(FUZZ_RUNS * 0.45)
const READS = Math.ceil(FUZZ_RUNS * 0.25)
/** Reads go in concurrent batches: they change nothing, and a rare minRevision ahead of the
 *  registry waits 5 s for its 504 alongside the others rather than alone. */
const READ_BATCH = 5

let gw: LiveGateway
let ledger: RevisionLedger
const tally = new Map<string, number>()
function count (key: string): void { tally.set(key, (tally.get(key) ?? 0) + 1) }

beforeAll(async () => {
  console.log(`[fuzz rest] seed ${FUZZ_SEED} (replay: ROSTER_FUZZ_SEED=${FUZZ_SEED}), ${WRITES} writes + ${READS} reads` +
    (LEAVE_OUT.size > 0 ? ` — developer aid ROSTER_FUZZ_LEAVE_OUT: ${[...LEAVE_OUT].join(', ')} left out` : ''))
  gw = await startLiveGateway()
  ledger = new RevisionLedger(gw)
  await ledger.resync()
}, 60_000)

afterAll(async () => {
  console.log(`[fuzz rest] answers: ${[...tally].sort().map(([k, n]) => `${k}: ${n}`).join(', ')}`)
  await gw?.stop()
  await removeTestStorage()
})

const path = (s: Segment, i: Segment, suffix = ''): string => `/v1/services/${s.encoded}/providers/${i.encoded}${suffix}`
const json = { 'content-type': 'application/json' }

async function sendRaw (req: RawRequest): Promise<Answer> {
  const a = await rawExchange(gw.port, encodeRequest(req, `127.0.0.1:${gw.port}`, [['Connection', 'close']]), {
    timeoutMs: ANSWER_TIMEOUT_MS, awaitFrame: false, head: req.method === 'HEAD'
  }).catch((err: Error) => { throw new Error(`raw ${show(req.method)} ${show(req.target)}: ${err.message}`) })
  return { status: a.status, headers: a.headers, bytes: a.body, ...readBody(a.status, a.headers.get('content-type'), a.body) }
}

function describeWrite (req: WriteRequest): string {
  switch (req.kind) {
    case 'register': return `PUT ${show(path(req.service, req.id), 120)} (poison: ${req.poison})`
    case 'maintenance': return `PUT ${show(path(req.service, req.id, '/maintenance'), 120)}`
    case 'renew': return `PUT ${show(path(req.service, req.id, '/heartbeat'), 120)}`
    case 'deregister': return `DELETE ${show(path(req.service, req.id), 120)}`
    case 'raw': return `raw ${show(req.request.method)} ${show(req.request.target, 120)}`
  }
}

async function sendWrite (req: WriteRequest): Promise<Answer> {
  switch (req.kind) {
    case 'register': return await gw.call('PUT', path(req.service, req.id), { body: bodyText(req.body), headers: json })
    case 'maintenance': return await gw.call('PUT', path(req.service, req.id, '/maintenance'), { body: JSON.stringify(req.body), headers: json })
    case 'renew': return await gw.call('PUT', path(req.service, req.id, '/heartbeat'), req.body === undefined ? {} : { body: req.body, headers: json })
    case 'deregister': return await gw.call('DELETE', path(req.service, req.id))
    case 'raw': return await sendRaw(req.request)
  }
}

/** The provider a read-back GET returns, after the replica has reached `revision`. */
async function readBack (service: Segment, id: Segment, revision: number): Promise<Answer> {
  return await gw.call('GET', `${path(service, id)}?minRevision=${revision}`)
}

/** Whether the leader removed provider `id` after `revision` for having been down longer than
 *  its deregisterAfterMs (a re-registration keeps a down provider's stateSince): a read-back
 *  may then rightly find nothing. */
function reapedSince (id: string | null, revision: number): boolean {
  for (const [r, e] of gw.feed.events) {
    if (r > revision && e.event === 'deregistered' && e.provider?.id === id && e.provider.reason === 'down-too-long') return true
  }
  return false
}

async function checkWrite (req: WriteRequest): Promise<void> {
  // A 503 is documented for a gateway without a leader; waiting for one here means that any
  // 503 below was caused by the request itself.
  await gw.leaderConnected()
  const what = describeWrite(req)
  const a = await sendWrite(req)
  count(`${req.kind} ${a.status}`)
  if (a.status >= 500) {
    throw new Error(`${what} → ${a.status} ${show(a.json ?? a.text)} with a connected leader before it ` +
      `(leader now ${gw.leader.status}, gateway ${(await gw.health().catch(() => null))?.leader ?? 'not answering'})`)
  }
  if (a.status < 200 || a.status >= 300) {
    await ledger.unchanged(`${what} → ${a.status}`)
    return
  }
  const revision = a.json?.revision as unknown
  if (req.kind === 'raw') {
    // A raw write that happened to be valid: its revision is accounted for; anything else is a read.
    if (typeof revision === 'number' && ['PUT', 'DELETE', 'POST', 'PATCH'].includes(req.request.method)) await ledger.accepted(revision, what)
    else await ledger.unchanged(`${what} → ${a.status}`)
    return
  }
  if (!Number.isInteger(revision) || (revision as number) < 1) throw new Error(`${what} → ${a.status} without a revision: ${show(a.json)}`)
  const rev = revision as number
  const changed = rev > ledger.known
  await ledger.accepted(rev, what)

  if (req.kind === 'register') {
    if (a.status !== 200 && a.status !== 201) throw new Error(`${what} → ${a.status}, expected 200 or 201`)
    const limit = limitProblem(a.json.provider)
    if (limit !== null) throw new Error(`${what}: ${limit}`)
    const want = expectedSpec(req.body)
    expectSame(specOf(a.json.provider), want, `${what}: the answer's provider`)
    const back = await readBack(req.service, req.id, rev)
    if (back.status === 404 && reapedSince(req.id.value, rev)) return
    if (back.status !== 200) throw new Error(`${what} → ${a.status} at revision ${rev}, but reading it back → ${back.status} ${show(back.json ?? back.text)}`)
    expectSame(specOf(back.json), want, `${what}: GET after the write`)
    if (back.json.id !== req.id.value || back.json.service !== req.service.value) {
      throw new Error(`${what}: read back as ${show(back.json.service)}/${show(back.json.id)}`)
    }
    const event = gw.feed.events.get(rev)
    if (changed && event?.provider?.id === req.id.value) expectSame(specOf(event.provider), want, `${what}: the feed event`)
  } else if (req.kind === 'maintenance') {
    const body = req.body as { enabled: boolean, reason?: string }
    const back = await readBack(req.service, req.id, rev)
    if (back.status === 404 && reapedSince(req.id.value, rev)) return
    if (back.status !== 200) throw new Error(`${what} → ${a.status}, but reading it back → ${back.status}`)
    for (const [where, p] of [['answer', a.json.provider], ['GET', back.json]] as const) {
      if (body.enabled && p.state !== 'maintenance') throw new Error(`${what} (enabled) → ${a.status}, but the ${where} says ${p.state}`)
      // An empty note is no note.
      if (changed && body.enabled && body.reason !== undefined && body.reason !== '' && p.reason !== body.reason) {
        throw new Error(`${what}: reason written ${show(body.reason)} (${characters(body.reason)} characters), the ${where} says ${show(p.reason)}`)
      }
    }
  } else if (req.kind === 'deregister') {
    const back = await readBack(req.service, req.id, rev)
    if (back.status !== 404) throw new Error(`${what} → ${a.status} at revision ${rev}, but the provider still reads back: ${back.status}`)
  }
}

function readTarget (req: Exclude<ReadRequest, { kind: 'raw' }>): string {
  switch (req.kind) {
    case 'services': return `/v1/services${queryString(req.query)}`
    case 'providers': return `/v1/services/${req.service.encoded}/providers${queryString(req.query)}`
    case 'provider': return `${path(req.service, req.id)}${queryString(req.query)}`
    case 'health': return '/v1/health'
    case 'openapi': return '/openapi.json'
  }
}

async function checkRead (req: ReadRequest): Promise<void> {
  const what = req.kind === 'raw' ? `raw ${show(req.request.method)} ${show(req.request.target, 120)}` : `GET ${show(readTarget(req), 160)}`
  const a = req.kind === 'raw' ? await sendRaw(req.request) : await gw.call('GET', readTarget(req))
  count(`read ${req.kind} ${a.status}`)
  const query = 'query' in req ? req.query : []
  const minRevisions = values(query, 'minRevision')
  if (a.status >= 500) {
    const body = errorBodyProblem(a)
    if (a.status === 504 && body === null && a.json.code === 'ROSTER_ERR_REVISION_TIMEOUT') {
      if (req.kind === 'raw' && req.request.target.includes('minRevision')) return
      const wanted = minRevisions.length === 1 ? queryInteger(minRevisions[0] as string) : null
      if (wanted !== null && wanted > (await gw.health()).revision) return
    }
    throw new Error(`${what} → ${a.status} ${show(a.json ?? a.text)}${body === null ? '' : ` (${body})`}`)
  }
  if (a.status !== 200 || req.kind === 'raw') return
  const revision = req.kind === 'provider' ? Number(a.headers.get('x-roster-revision')) : a.json.revision as number
  if (minRevisions.length > 0) {
    const wanted = minRevisions.length === 1 ? queryInteger(minRevisions[0] as string) : null
    if (wanted === null || wanted < 0 || wanted > revision) {
      throw new Error(`${what} → 200 at revision ${revision}: minRevision ${show(minRevisions)} is not a non-negative integer it has reached`)
    }
  }
  if (req.kind === 'providers') {
    const state = values(query, 'state')
    const protocol = values(query, 'protocol')
    const tags = values(query, 'tag')
    for (const p of a.json.providers as Array<{ id: string, service: string, state: string, protocol: string, tags: string[] }>) {
      const wrong = p.service !== req.service.value ||
        (state.length > 0 && !state.includes(p.state)) ||
        (protocol.length > 0 && !protocol.includes(p.protocol)) ||
        !tags.every((t) => p.tags.includes(t))
      if (wrong) throw new Error(`${what} → 200 lists ${show({ id: p.id, service: p.service, state: p.state, protocol: p.protocol, tags: p.tags })}, which does not match`)
    }
  }
}

const timeoutMs = 180_000 + FUZZ_RUNS * 100

describe('generated hostile REST requests against a live gateway', () => {
  it(`${WRITES} writes: no 5xx, accepted ones read back exactly, rejected ones change no revision`, async () => {
    await fuzz(writeRequest, WRITES, checkWrite, async () => { await ledger.resync() })
    // The generators must get past the schema, or nothing reached the database.
    const accepted = (tally.get('register 201') ?? 0) + (tally.get('register 200') ?? 0)
    const registrations = [...tally].filter(([k]) => k.startsWith('register ')).reduce((n, [, c]) => n + c, 0)
    expect(accepted, `accepted registrations of ${registrations}`).toBeGreaterThanOrEqual(registrations * 0.1)
  }, timeoutMs)

  it(`${READS} reads in batches of ${READ_BATCH}: no 5xx but a 504 for a minRevision ahead, answers match their filters`, async () => {
    await fuzz(fc.array(readRequest, { minLength: READ_BATCH, maxLength: READ_BATCH }), Math.ceil(READS / READ_BATCH), async (batch) => {
      await Promise.all(batch.map(checkRead))
      await ledger.unchanged('a batch of reads')
    }, async () => { await ledger.resync() })
  }, timeoutMs)

  it('the gateway and its leader still serve: health, a registration, its read-back', async () => {
    const h = await gw.health()
    expect(h.leader).toBe('connected')
    expect(gw.leader.status).toBe('active')
    expect(gw.feed.closed).toBeNull()
    const put = await gw.call('PUT', '/v1/services/after/providers/after-1', { body: JSON.stringify({ host: 'h', port: 1, protocol: 'http', heartbeat: 'tcp://127.0.0.1:9' }), headers: json })
    expect(put.status).toBe(201)
    await ledger.accepted(put.json.revision, 'the final registration')
    const back = await readBack({ value: 'after', encoded: 'after' }, { value: 'after-1', encoded: 'after-1' }, put.json.revision)
    expect(back.status).toBe(200)
  })
})
