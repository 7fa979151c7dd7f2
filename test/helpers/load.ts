// Load and observation for failure tests: a writer that keeps registering providers through a
// gateway and records when each request started and ended and how it was answered, a poller
// that does the same for any GET, and the figures drawn from those records (failover time,
// longest write outage). It only observes from outside, over HTTP, as a client would.
import { expect } from 'vitest'
import type { FeedReader } from './cluster.js'
import { adminQuery } from '../../harness/postgres-admin.js'
import { waitFor } from '../../harness/wait-for.js'

/** A request that gets no answer in this time counts as hung (status -1). */
const REQUEST_HANG_MS = 15_000

export interface Attempt {
  /** The provider id written, or the path read. */
  key: string
  startedAt: number
  endedAt: number
  /** HTTP status; 0 when the connection failed, -1 when no answer came in REQUEST_HANG_MS. */
  status: number
  retryAfter: string | null
  body: any
}

async function attempt (key: string, method: string, url: string, body?: unknown): Promise<Attempt> {
  const startedAt = Date.now()
  try {
    const res = await fetch(url, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(REQUEST_HANG_MS)
    })
    const text = await res.text()
    return { key, startedAt, endedAt: Date.now(), status: res.status, retryAfter: res.headers.get('retry-after'), body: text === '' ? undefined : JSON.parse(text) }
  } catch (err) {
    const status = (err as Error).name === 'TimeoutError' ? -1 : 0
    return { key, startedAt, endedAt: Date.now(), status, retryAfter: null, body: undefined }
  }
}

export interface Recorder {
  readonly attempts: Attempt[]
  /** Stops after the requests in flight; resolves with every attempt, in completion order. */
  stop: () => Promise<Attempt[]>
}

/**
 * `concurrency` loops, each registering `${service}-${n}` (a new id every time, so every
 * acknowledged write is one provider to look for afterwards) through `url` until stopped, with
 * `pauseMs` between requests. A refused write is not retried under the same id: the record says
 * what happened to each id.
 */
export function startWriter (url: string, service: string, spec: Record<string, unknown>, opts: { concurrency?: number, pauseMs?: number, max?: number } = {}): Recorder {
  let next = 0
  return loop(opts.concurrency ?? 2, opts.pauseMs ?? 5, opts.max ?? 100_000, async () => {
    const id = `${service}-${next++}`
    return await attempt(id, 'PUT', `${url}/v1/services/${service}/providers/${id}`, spec)
  })
}

/** GETs `url + path` every `intervalMs` until stopped. */
export function startPoller (url: string, path: string, intervalMs = 25): Recorder {
  return loop(1, intervalMs, 100_000, async () => await attempt(path, 'GET', `${url}${path}`))
}

function loop (concurrency: number, pauseMs: number, max: number, run: () => Promise<Attempt>): Recorder {
  const attempts: Attempt[] = []
  let stopped = false
  const loops = Array.from({ length: concurrency }, async () => {
    while (!stopped && attempts.length < max) {
      attempts.push(await run())
      await new Promise((resolve) => setTimeout(resolve, pauseMs))
    }
  })
  const done = Promise.all(loops).then(() => attempts)
  return { attempts, stop: async () => { stopped = true; return await done } }
}

export const acknowledged = (attempts: Attempt[]): Attempt[] => attempts.filter((a) => a.status >= 200 && a.status < 300)

/**
 * The longest time the writer went without an acknowledgement while it was writing: between two
 * consecutive acknowledged completions.
 */
export function longestOutage (attempts: Attempt[]): { ms: number, from: number, to: number } {
  const acks = acknowledged(attempts).map((a) => a.endedAt).sort((x, y) => x - y)
  let worst = { ms: 0, from: 0, to: 0 }
  for (let i = 1; i < acks.length; i++) {
    const ms = (acks[i] as number) - (acks[i - 1] as number)
    if (ms > worst.ms) worst = { ms, from: acks[i - 1] as number, to: acks[i] as number }
  }
  return worst
}

/** Time from `t` to the first acknowledgement of a write that was sent after `t`. */
export function firstAckAfter (attempts: Attempt[], t: number): number | null {
  const first = acknowledged(attempts).filter((a) => a.startedAt >= t).map((a) => a.endedAt).sort((x, y) => x - y)[0]
  return first === undefined ? null : first - t
}

/** The pid of the `roster leader` process that holds the leader lock on the database at `url`,
 *  read from Postgres (its lock session is named roster-leader-<pid>), or null. */
export async function leaderLockHolder (url: string): Promise<number | null> {
  const rows = await adminQuery<{ application_name: string }>(url, `
    select a.application_name from pg_locks l join pg_stat_activity a on a.pid = l.pid
     where l.locktype = 'advisory' and l.granted and l.database = (select oid from pg_database where datname = current_database())`)
  const m = /^roster-leader-(\d+)$/.exec(rows[0]?.application_name ?? '')
  return m === null ? null : Number(m[1])
}

/** Whether the leader process `pid` has its lock session open on the database at `url`: it is
 *  up and campaigning (a standby), or active. */
export async function hasLockSession (url: string, pid: number): Promise<boolean> {
  const rows = await adminQuery(url, 'select 1 from pg_stat_activity where application_name = $1 and datname = current_database()', [`roster-leader-${pid}`])
  return rows.length > 0
}

export function describeAttempts (attempts: Attempt[]): string {
  const byStatus = new Map<number, number>()
  for (const a of attempts) byStatus.set(a.status, (byStatus.get(a.status) ?? 0) + 1)
  return [...byStatus].map(([s, n]) => `${s}×${n}`).join(' ')
}

/**
 * The end-to-end promise after a failure, checked against Postgres itself (`databaseUrl`, not a
 * proxy): every write acknowledged to `writes` is stored at the revision it was acknowledged
 * with, no revision was given twice, and `feed` (watching `service` since before the writes)
 * carried exactly the stored changes of that service, once each, in order, after one snapshot
 * and without a reset. Returns the stored revisions.
 */
export async function expectNothingLost (databaseUrl: string, service: string, writes: Attempt[], feed: FeedReader): Promise<number[]> {
  const stored = await adminQuery<{ revision: string, provider_id: string }>(databaseUrl,
    'select revision, provider_id from changes where service = $1 order by revision', [service])
  const storedRevision = new Map(stored.map((r) => [r.provider_id, Number(r.revision)]))
  const acks = acknowledged(writes)
  for (const w of acks) expect(storedRevision.get(w.key), `${w.key} acknowledged at ${w.body.revision}`).toBe(w.body.revision)
  expect(new Set(acks.map((w) => w.body.revision)).size).toBe(acks.length)
  const providers = await adminQuery<{ id: string }>(databaseUrl, 'select id from providers where service = $1', [service])
  const ids = new Set(providers.map((p) => p.id))
  for (const w of acks) expect(ids.has(w.key), w.key).toBe(true)

  const revisions = stored.map((r) => Number(r.revision))
  const events = (): FeedReader['messages'] => feed.messages.filter((m) => m.type === 'event')
  await waitFor(() => events().at(-1)?.revision === revisions.at(-1), { timeoutMs: 10_000, what: `the feed to reach revision ${revisions.at(-1)}` })
  expect(events().map((m) => m.revision)).toEqual(revisions)
  expect(events().map((m) => m.provider?.id)).toEqual(stored.map((r) => r.provider_id))
  expect(feed.messages.filter((m) => m.type === 'snapshot')).toHaveLength(1)
  expect(feed.messages.some((m) => m.reset === true)).toBe(false)
  expect(feed.closed).toBeNull()
  return revisions
}
