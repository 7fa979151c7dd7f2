// Generated hostile WebSocket handshakes to /v1/watch on a live gateway, its leader and Postgres
// (issue 9, item 6): queries with hostile `service` and `since` values, junk keys, versions,
// upgrade headers, subprotocol lists and credentials, sent byte for byte. Properties: no 5xx; a
// feed is opened only for a valid query and answers the key correctly, with the offered
// subprotocol if any; its first frame is a snapshot of the services asked for, in valid UTF-8;
// no handshake changes the registry; the gateway still serves at the end. 30 % of
// ROSTER_FUZZ_RUNS (rest.test.ts sends the rest); ROSTER_FUZZ_SEED replays a run.
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { removeTestStorage } from '../helpers/cluster.js'
import { FUZZ_RUNS, FUZZ_SEED, fuzz } from './fuzz-run.js'
import { LEAVE_OUT, show } from './hostile-text.js'
import { ANSWER_TIMEOUT_MS, errorBodyProblem, type LiveGateway, readBody, RevisionLedger, startLiveGateway } from './live-gateway.js'
import { queryInteger, SERVICE_NAME, values } from './oracle.js'
import { encodeRequest, rawExchange, websocketAccept } from './raw-http.js'
import { handshake, type Handshake, queryString, SERVICES, validSpec } from './requests.js'

const HANDSHAKES = Math.ceil(FUZZ_RUNS * 0.3)
/** Handshakes go in concurrent batches: they change nothing, and a feed's `since` ahead of
 *  the registry waits (up to 2 s) alongside the others. */
const BATCH = 6

let gw: LiveGateway
let ledger: RevisionLedger
const tally = new Map<string, number>()

beforeAll(async () => {
  console.log(`[fuzz watch] seed ${FUZZ_SEED} (replay: ROSTER_FUZZ_SEED=${FUZZ_SEED}), ${HANDSHAKES} handshakes` +
    (LEAVE_OUT.size > 0 ? ` — developer aid ROSTER_FUZZ_LEAVE_OUT: ${[...LEAVE_OUT].join(', ')} left out` : ''))
  gw = await startLiveGateway()
  // Providers in every service the generators name, with text over all storable characters, so
  // that snapshots are worth reading; heartbeat endpoints only, so no revision ever changes.
  const specs = fc.sample(validSpec, { numRuns: 12, seed: FUZZ_SEED })
  for (const [i, spec] of specs.entries()) {
    const { check: _check, ...body }: Record<string, unknown> = { ...spec, heartbeat: 'tcp://127.0.0.1:9' }
    const a = await gw.call('PUT', `/v1/services/${SERVICES[i % SERVICES.length] as string}/providers/w${i}`, { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } })
    // A sample the gateway refuses (a limit main does not enforce yet, say) is the REST fuzzer's business.
    if (a.status >= 500) throw new Error(`setting up: registration ${i} → ${a.status} ${show(a.json ?? a.text)}`)
  }
  ledger = new RevisionLedger(gw)
  await ledger.resync()
}, 60_000)

afterAll(async () => {
  console.log(`[fuzz watch] answers: ${[...tally].sort().map(([k, n]) => `${k}: ${n}`).join(', ')}`)
  await gw?.stop()
  await removeTestStorage()
})

/** Whether the gateway may open a feed for this query (schemas/watch.ts), as the oracle reads it. */
function validQuery (q: Handshake['query']): string | null {
  const services = values(q, 'service')
  const since = values(q, 'since')
  const unknown = q.filter(([k]) => k !== 'service' && k !== 'since')
  if (unknown.length > 0) return `unknown parameter ${show(unknown[0]?.[0])}`
  if (services.length > 64) return `${services.length} services (limit 64)`
  const bad = services.find((s) => !SERVICE_NAME.test(s))
  if (bad !== undefined) return `service ${show(bad)} is no service name`
  if (since.length > 1) return 'since given twice'
  if (since.length === 1) {
    const n = queryInteger(since[0] as string)
    if (n === null || n < 0) return `since ${show(since[0])} is no non-negative integer`
  }
  return null
}

async function checkHandshake (h: Handshake): Promise<void> {
  const target = `${h.path}${queryString(h.query)}`
  const what = `${show(h.method)} ${show(target, 160)} ${show(h.headers, 200)}`
  const awaitFrame = values(h.query, 'since').length === 0
  const bytes = encodeRequest({ method: h.method, target, headers: h.headers }, `127.0.0.1:${gw.port}`)
  const raw = await rawExchange(gw.port, bytes, { timeoutMs: ANSWER_TIMEOUT_MS, awaitFrame, head: h.method === 'HEAD' })
    .catch((err: Error) => { throw new Error(`${what}: ${err.message}`) })
  tally.set(String(raw.status), (tally.get(String(raw.status)) ?? 0) + 1)
  if (raw.status >= 500) {
    const a = { status: raw.status, headers: raw.headers, bytes: raw.body, ...readBody(raw.status, raw.headers.get('content-type'), raw.body) }
    throw new Error(`${what} → ${raw.status} ${show(a.json ?? a.text)} (${errorBodyProblem(a) ?? 'with an error body'}; the replica is ready)`)
  }
  if (raw.status !== 101) {
    readBody(raw.status, raw.headers.get('content-type'), raw.body)
    return
  }
  const invalid = validQuery(h.query)
  if (invalid !== null) throw new Error(`${what} → 101 although ${invalid}`)
  if (h.key === undefined || raw.headers.get('sec-websocket-accept') !== websocketAccept(h.key)) {
    throw new Error(`${what} → 101 with Sec-WebSocket-Accept ${show(raw.headers.get('sec-websocket-accept'))} for key ${show(h.key)}`)
  }
  const chosen = raw.headers.get('sec-websocket-protocol')
  if (chosen !== undefined) {
    const offered = (h.protocols ?? '').split(',').map((p) => p.trim())
    if (!offered.includes(chosen)) throw new Error(`${what} → 101 with subprotocol ${show(chosen)}, which was not offered`)
  }
  if (raw.frame === null) return
  const { text } = readBody(101, null, raw.frame)
  let first: { type?: unknown, revision?: unknown, providers?: Array<{ service: string }> }
  try {
    first = JSON.parse(text)
  } catch {
    throw new Error(`${what} → 101, first frame is not JSON: ${show(text)}`)
  }
  if (first.type !== 'snapshot' || !Number.isInteger(first.revision) || !Array.isArray(first.providers)) {
    throw new Error(`${what} → 101, first frame is no snapshot: ${show(first)}`)
  }
  const services = values(h.query, 'service')
  const stranger = first.providers.find((p) => services.length > 0 && !services.includes(p.service))
  if (stranger !== undefined) throw new Error(`${what} → 101, the snapshot holds a provider of ${show(stranger.service)}, not asked for`)
}

describe('generated hostile WebSocket handshakes against a live gateway', () => {
  it(`${HANDSHAKES} handshakes in batches of ${BATCH}: no 5xx, feeds only for valid queries, snapshots of what was asked`, async () => {
    await fuzz(fc.array(handshake, { minLength: BATCH, maxLength: BATCH }), Math.ceil(HANDSHAKES / BATCH), async (batch) => {
      await Promise.all(batch.map(checkHandshake))
      await ledger.unchanged('a batch of handshakes')
    }, async () => { await ledger.resync() })
    expect(tally.get('101') ?? 0, 'handshakes that opened a feed').toBeGreaterThanOrEqual(HANDSHAKES * 0.15)
  }, 180_000 + FUZZ_RUNS * 100)

  it('the gateway still serves: health, and a feed that sees a new registration', async () => {
    expect((await gw.health()).leader).toBe('connected')
    const before = gw.feed.head
    const put = await gw.call('PUT', '/v1/services/orders/providers/after-watch', { body: JSON.stringify({ host: 'h', port: 1, protocol: 'http', heartbeat: 'tcp://127.0.0.1:9' }), headers: { 'content-type': 'application/json' } })
    expect(put.status).toBe(201)
    expect(put.json.revision).toBe(before + 1)
    await gw.feed.reach(put.json.revision)
    expect(gw.feed.events.get(put.json.revision)?.provider?.id).toBe('after-watch')
  })
})
