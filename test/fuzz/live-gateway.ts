// The system the REST and WebSocket fuzzers attack: a real leader on a fresh Postgres database
// and a real gateway listening on loopback, wired as `roster up` wires them (server/roles.ts),
// but without a worker, so that no generated host or port is ever probed and no revision
// changes unless a request (or a TTL running out) changes it. Also what the properties need to
// judge an answer: a recorder of the whole change feed, a ledger that accounts for every
// revision, and an HTTP client that keeps the raw bytes of each answer.
import type { Leader } from '../../server/leader/leader.js'
import { silentLog } from '../../server/common/log.js'
import { startGateway, startLeader } from '../../server/roles.js'
import WebSocket from 'ws'
import { freeLeaderEndpoint } from '../../harness/ports.js'
import { waitForLeader, waitForReady } from '../../harness/roster-process.js'
import { testStorage } from '../helpers/cluster.js'
import { waitFor } from '../../harness/wait-for.js'
import { show } from './hostile-text.js'

/** Bound on any one answer. The slowest legitimate ones are a `minRevision` wait (5 s) and a
 *  write waiting for its replica (2 s); a request that gets no answer in 15 s is a finding. */
export const ANSWER_TIMEOUT_MS = 15_000

export interface FeedEvent {
  type: 'snapshot' | 'event'
  revision: number
  event?: string
  provider?: Record<string, unknown> & { id: string, service: string, reason?: string }
}

/** Every message of one unfiltered /v1/watch feed, by revision. */
export interface FeedRecorder {
  readonly events: Map<number, FeedEvent>
  readonly head: number
  readonly closed: { code: number, reason: string } | null
  /** Resolves once the feed has reached `revision` (bounded). */
  reach: (revision: number, timeoutMs?: number) => Promise<void>
  close: () => void
}

async function recordFeed (url: string): Promise<FeedRecorder> {
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/watch`)
  const events = new Map<number, FeedEvent>()
  let head = -1
  let closed: { code: number, reason: string } | null = null
  ws.on('message', (data) => {
    const m = JSON.parse(data.toString()) as FeedEvent
    if (m.type === 'event') events.set(m.revision, m)
    head = Math.max(head, m.revision)
  })
  ws.on('close', (code, reason) => { closed = { code, reason: reason.toString() } })
  await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject) })
  await waitFor(() => head >= 0, { what: 'the feed snapshot' })
  return {
    events,
    get head () { return head },
    get closed () { return closed },
    async reach (revision, timeoutMs = 5000) {
      await waitFor(() => {
        if (closed !== null) throw new Error(`the recorded feed was closed: ${closed.code} ${closed.reason}`)
        return head >= revision
      }, { timeoutMs, what: `the feed to reach revision ${revision} (it is at ${head})` })
    },
    close: () => ws.terminate()
  }
}

export interface Answer {
  status: number
  headers: Headers | Map<string, string>
  bytes: Buffer
  /** The body decoded as UTF-8; a body that is not valid UTF-8 throws when the answer is read. */
  text: string
  /** The body as JSON when it is JSON, else undefined. */
  json: any
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true })

/** Decodes an answer's body, failing on bytes that are not UTF-8 (a lone surrogate written
 *  out raw, say) and on a JSON content type whose body does not parse. */
export function readBody (status: number, contentType: string | null | undefined, bytes: Buffer): { text: string, json: any } {
  let text: string
  try {
    text = strictUtf8.decode(bytes)
  } catch {
    throw new Error(`answer ${status} is not valid UTF-8: ${show(bytes.subarray(0, 200).toString('latin1'))}`)
  }
  if (!/json/i.test(contentType ?? '') || text === '') return { text, json: undefined }
  try {
    return { text, json: JSON.parse(text) }
  } catch {
    throw new Error(`answer ${status} says JSON but does not parse: ${show(text)}`)
  }
}

/** The `{ statusCode, code, error, message }` body every error answer carries (errors.ts). */
export function errorBodyProblem (a: Answer): string | null {
  const b = a.json as Record<string, unknown> | undefined
  if (b === undefined || typeof b !== 'object' || b === null) return `no JSON error body: ${show(a.text)}`
  if (b.statusCode !== a.status || typeof b.code !== 'string' || typeof b.error !== 'string' || typeof b.message !== 'string') {
    return `error body without { statusCode, code, error, message }: ${show(b)}`
  }
  return null
}

export interface Health { leader: string, revision: number }

export interface LiveGateway {
  url: string
  port: number
  leader: Leader
  feed: FeedRecorder
  /** fetch with a bound, returning the raw bytes as well. */
  call: (method: string, path: string, init?: { body?: string | Buffer, headers?: Record<string, string> }) => Promise<Answer>
  health: () => Promise<Health>
  /** Waits (bounded) until the gateway reports a connected leader: before each write, so that
   *  a 503 is only ever what the request itself caused. */
  leaderConnected: () => Promise<void>
  stop: () => Promise<void>
}

export async function startLiveGateway (): Promise<LiveGateway> {
  const storage = await testStorage('roster-fuzz-')
  const bind = await freeLeaderEndpoint()
  const leaderStop = await startLeader({ ...storage, bind }, silentLog)
  const gateway = await startGateway({ port: 0, host: '127.0.0.1', candidates: [bind] }, silentLog)
  await waitForLeader(gateway.url)
  await waitForReady(gateway.url)
  const feed = await recordFeed(gateway.url)

  const call: LiveGateway['call'] = async (method, path, init = {}) => {
    let res: Response
    try {
      res = await fetch(`${gateway.url}${path}`, {
        method,
        headers: init.headers,
        body: init.body,
        signal: AbortSignal.timeout(ANSWER_TIMEOUT_MS)
      })
    } catch (err) {
      throw new Error(`${method} ${show(path)}: no answer (${(err as Error).message})`, { cause: err })
    }
    const bytes = Buffer.from(await res.arrayBuffer())
    return { status: res.status, headers: res.headers, bytes, ...readBody(res.status, res.headers.get('content-type'), bytes) }
  }

  const health = async (): Promise<Health> => {
    const a = await call('GET', '/v1/health')
    if (a.status !== 200) throw new Error(`GET /v1/health answered ${a.status}: ${show(a.text)}`)
    return a.json as Health
  }

  return {
    url: gateway.url,
    port: Number(new URL(gateway.url).port),
    leader: leaderStop.leader,
    feed,
    call,
    health,
    async leaderConnected () {
      await waitFor(async () => (await health()).leader === 'connected', { timeoutMs: 20_000, what: 'a connected leader' })
    },
    async stop () {
      feed.close()
      await gateway.stop()
      await leaderStop()
    }
  }
}

/** Changes nobody asked for in this system: a TTL running out (`down`), flap damping holding or
 *  releasing a provider (`down`/`up`), and a provider removed after deregisterAfterMs. */
function isBackground (e: FeedEvent): boolean {
  return e.type === 'event' && (e.event === 'down' || e.event === 'up' ||
    (e.event === 'deregistered' && e.provider?.reason === 'down-too-long'))
}

/**
 * Accounts for every registry revision: each one must be the answer of an accepted write or a
 * background change seen on the feed. A rejected request that changed anything leaves a revision
 * nobody accounts for; the error names it, its feed event and the requests rejected since the
 * last accounted revision.
 */
export class RevisionLedger {
  known = -1
  private rejected: string[] = []

  private readonly gw: LiveGateway

  constructor (gw: LiveGateway) {
    this.gw = gw
  }

  /** Starts over from the gateway's revision (at the start, and after a failed run). */
  async resync (): Promise<void> {
    await this.gw.leaderConnected()
    const { revision } = await this.gw.health()
    await this.gw.feed.reach(revision)
    this.known = revision
    this.rejected = []
  }

  private async explain (upTo: number, what: string): Promise<void> {
    if (upTo <= this.known) return
    await this.gw.feed.reach(upTo)
    for (let r = this.known + 1; r <= upTo; r++) {
      const e = this.gw.feed.events.get(r)
      if (e === undefined || !isBackground(e)) {
        throw new Error(`revision ${r} is no accepted write's and no background change (${what}); ` +
          `feed: ${show(e ?? null)}; requests rejected since revision ${this.known}: ${this.rejected.join(' | ') || 'none'}`)
      }
    }
    this.known = upTo
  }

  /** After a rejected (or read-only) request: the registry must be where it was, but for
   *  background changes. */
  async unchanged (request: string): Promise<void> {
    this.rejected.push(request)
    if (this.rejected.length > 20) this.rejected.shift()
    const { revision } = await this.gw.health()
    await this.explain(revision, `after ${request}`)
  }

  /** After an accepted write that answered `revision`: everything between the last accounted
   *  revision and it must be background. */
  async accepted (revision: number, request: string): Promise<void> {
    if (revision <= this.known) return
    await this.explain(revision - 1, `before the accepted ${request} at ${revision}`)
    await this.gw.feed.reach(revision)
    this.known = revision
    this.rejected = []
  }
}
