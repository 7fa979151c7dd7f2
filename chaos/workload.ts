// The chaos run's clients, each behaving as a careful user of Roster would: writers that PUT
// (and now and then DELETE) through either gateway and retry 503s and dead gateways; heartbeat
// providers (bench/emitter.ts child processes, one per provider so that SIGKILL is exactly one
// provider's crash) that die, go silent and come back; WebSocket watchers that resume on the
// other gateway with `since` when theirs dies or hangs. Each records what it saw for
// checks.ts; none of them decides whether Roster was right.
import WebSocket from 'ws'
import { now, spawnEmitterProc, type EmitterProc, type Scripts } from '../bench/lib/children.js'
import { isRunning, sleep } from '../bench/lib/processes.js'
import { freePort } from '../harness/ports.js'
import type { Ack, WatcherRecord, WriteRecord } from './checks.js'
import type { Prng } from './prng.js'

/** Nobody listens on the discard port (binding below 1024 needs privileges), so the writers'
 *  providers stay `pending`: their changes are registrations only, never presence. */
const NOBODY = 'tcp://127.0.0.1:9'
/** A SIGSTOPped gateway accepts TCP connections (the kernel does) but never answers: a request
 *  that has had no answer for 2 s is given up and retried on the other gateway. On a busy
 *  two-core machine a healthy write answers in well under that. */
const REQUEST_TIMEOUT_MS = 2000
/** Between retries. Shorter than Retry-After on purpose: the run measures the outage, and a
 *  writer that slept a full second after each 503 would add up to a second to it. */
const RETRY_MS = 50

type Json = Record<string, unknown>

interface Answer { status: number, body: Json | null }

async function request (method: string, url: string, body?: Json): Promise<Answer> {
  const res = await fetch(url, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS)
  })
  const text = await res.text()
  let parsed: Json | null = null
  try { parsed = text === '' ? null : JSON.parse(text) as Json } catch { /* kept null */ }
  return { status: res.status, body: parsed }
}

function providerBody (heartbeat: string, heartbeatIntervalMs: number, seq: string): Json {
  return { host: '127.0.0.1', port: 8080, protocol: 'http', heartbeat, heartbeatIntervalMs, meta: { seq } }
}

export interface Op { op: 'put' | 'delete', id: string, service: string, seq: string, body?: Json }

/**
 * Sends `op` until a gateway acknowledges it (or `stopped()` says to give up), alternating
 * gateways after a failure. A timeout, a dropped connection or a 503 may hide a commit, so after
 * one of those a DELETE answered 404 is ambiguous rather than a lost write.
 */
export async function sendUntilAcked (op: Op, gateways: () => string[], rng: Prng, stopped: () => boolean, onAck: (ack: Ack) => void): Promise<WriteRecord> {
  let uncertain = false
  let index = rng.int(0, 1)
  for (;;) {
    if (stopped()) return { ...strip(op), outcome: 'ambiguous', detail: 'run ended before an acknowledgement' }
    const urls = gateways()
    const url = urls[index % urls.length] as string
    const path = `${url}/v1/services/${op.service}/providers/${op.id}`
    let answer: Answer | null = null
    const sentAt = now()
    try {
      answer = await request(op.op === 'put' ? 'PUT' : 'DELETE', path, op.body)
    } catch {
      uncertain = true
    }
    if (answer !== null) {
      const revision = answer.body?.revision
      if ((answer.status === 200 || answer.status === 201) && typeof revision === 'number') {
        onAck({ op: op.op, sentAt, at: now() })
        return { ...strip(op), outcome: 'acked', revision }
      }
      if (answer.status === 404 && op.op === 'delete') {
        return uncertain
          ? { ...strip(op), outcome: 'ambiguous', detail: '404 after an unanswered attempt' }
          : { ...strip(op), outcome: 'unexpected', detail: 'DELETE of a provider whose registration was acknowledged answered 404' }
      }
      if (answer.status !== 503) {
        return { ...strip(op), outcome: 'unexpected', detail: `${answer.status} ${JSON.stringify(answer.body)}` }
      }
      uncertain = true
    }
    index++
    await sleep(RETRY_MS)
  }
}

function strip (op: Op): Omit<Op, 'body'> {
  return { op: op.op, id: op.id, service: op.service, seq: op.seq }
}

export interface Writer {
  readonly records: WriteRecord[]
  stop: () => Promise<void>
}

/**
 * One writer: registers new providers in its own service, updates and deregisters some of
 * those it registered, one write at a time with `pauseMs` between writes.
 */
export function startWriter (index: number, opts: { gateways: () => string[], rng: Prng, pauseMs: number, onAck: (ack: Ack) => void }): Writer {
  const service = `chaos-w${index}`
  const records: WriteRecord[] = []
  const live: string[] = []
  let stopped = false
  let seq = 0
  const loop = (async () => {
    for (let n = 0; !stopped; n++) {
      const roll = opts.rng.next()
      let op: Op
      if (live.length > 0 && roll < 0.1) {
        const id = live.splice(opts.rng.int(0, live.length - 1), 1)[0] as string
        op = { op: 'delete', id, service, seq: String(++seq) }
      } else {
        const id = live.length > 0 && roll < 0.35 ? opts.rng.pick(live) : `w${index}-${n}`
        op = { op: 'put', id, service, seq: String(++seq) }
        op.body = providerBody(NOBODY, 1000, op.seq)
      }
      const rec = await sendUntilAcked(op, opts.gateways, opts.rng, () => stopped, opts.onAck)
      records.push(rec)
      // Only a provider whose registration is acknowledged is updated or deleted later, so a
      // 404 on its deletion means an acknowledged write went missing.
      if (op.op === 'put' && rec.outcome === 'acked' && !live.includes(op.id)) live.push(op.id)
      if (op.op === 'put' && rec.outcome !== 'acked') { const i = live.indexOf(op.id); if (i >= 0) live.splice(i, 1) }
      await sleep(opts.pauseMs)
    }
  })()
  return {
    records,
    async stop () { stopped = true; await loop }
  }
}

/** A heartbeat provider of the run and the emitter process that is its heartbeat. */
interface EmittedProvider { id: string, endpoint: string, proc: EmitterProc | null, silent: boolean, history: Array<'up' | 'down'> }

export interface EmitterFleet {
  readonly service: string
  /** Each provider's expected state: up while its emitter runs and beats, down otherwise. */
  expected: () => Map<string, 'up' | 'down'>
  /** Each provider's transitions so far: up (first seen), then one per churn. */
  transitions: () => Map<string, Array<'up' | 'down'>>
  /** One random change: kill or silence a beating provider, revive or resume another. */
  churn: () => Promise<string>
  /** Kills every emitter process. */
  close: () => Promise<void>
}

export async function startEmitterFleet (opts: {
  count: number, scripts: Scripts, intervalMs: number, rng: Prng, gateways: () => string[]
}): Promise<EmitterFleet> {
  const service = 'chaos-emit'
  const providers: EmittedProvider[] = []
  const spawnFor = async (p: EmittedProvider, endpoint: string): Promise<string> => {
    p.proc = await spawnEmitterProc(opts.scripts, opts.intervalMs, p.id)
    return await p.proc.add(p.id, endpoint)
  }
  for (let i = 0; i < opts.count; i++) {
    const p: EmittedProvider = { id: `emit-${i}`, endpoint: '', proc: null, silent: false, history: ['up'] }
    // Below the ephemeral range, so that the port is still ours when the provider comes back.
    p.endpoint = await spawnFor(p, `tcp://127.0.0.1:${await freePort()}`)
    providers.push(p)
  }
  for (const p of providers) {
    const rec = await sendUntilAcked(
      { op: 'put', id: p.id, service, seq: '0', body: providerBody(p.endpoint, opts.intervalMs, '0') },
      opts.gateways, opts.rng, () => false, () => {})
    if (rec.outcome !== 'acked') throw new Error(`registering ${p.id} failed: ${rec.detail ?? rec.outcome}`)
  }
  const beating = (p: EmittedProvider): boolean => p.proc !== null && isRunning(p.proc.child) && !p.silent
  return {
    service,
    expected: () => new Map(providers.map((p) => [p.id, beating(p) ? 'up' : 'down'])),
    transitions: () => new Map(providers.map((p) => [p.id, [...p.history]])),
    async churn () {
      const p = opts.rng.pick(providers)
      p.history.push(beating(p) ? 'down' : 'up')
      if (beating(p)) {
        if (opts.rng.chance(0.5)) {
          p.proc?.child.kill('SIGKILL')
          await p.proc?.exited
          return `killed ${p.id}`
        }
        await p.proc?.silence(p.id)
        p.silent = true
        return `silenced ${p.id}`
      }
      if (p.silent && p.proc !== null && isRunning(p.proc.child)) {
        await p.proc.resume(p.id)
        p.silent = false
        return `resumed ${p.id}`
      }
      p.silent = false
      await spawnFor(p, p.endpoint)
      return `revived ${p.id}`
    },
    async close () {
      for (const p of providers) if (p.proc !== null && isRunning(p.proc.child)) p.proc.child.kill('SIGKILL')
      await Promise.all(providers.map(async (p) => { await p.proc?.exited }))
    }
  }
}

/** Liveness of a watcher's connection: a ping every 500 ms, and a gateway that has not answered
 *  one for 2 s (a SIGSTOPped process) is given up: the watcher resumes on the other one. */
const PING_MS = 500
const PONG_TIMEOUT_MS = 2000
/** A handshake a stopped gateway never completes is given up after this long. */
const HANDSHAKE_TIMEOUT_MS = 2000

export interface Watcher {
  readonly name: string
  readonly lastRevision: number
  record: () => WatcherRecord
  /** Time from losing a gateway to the next one accepting the resumed subscription. */
  readonly resumes: ReadonlyArray<{ ms: number, from: string, to: string }>
  stop: () => void
}

/** Opens a watcher on gateway `first` (an index into gateways()); resolves after its snapshot. */
export async function startWatcher (name: string, services: string[] | null, first: number, gateways: () => string[]): Promise<Watcher> {
  const events: WatcherRecord['events'] extends ReadonlyArray<infer E> ? E[] : never = []
  const problems: string[] = []
  const resumes: Array<{ ms: number, from: string, to: string }> = []
  let startRevision: number | null = null
  let last = 0
  let index = first
  let ws: WebSocket | null = null
  let stopped = false
  let lostAt: number | null = null
  let lostFrom = ''
  let pinger: NodeJS.Timeout | null = null
  let firstSnapshot: (() => void) | null = null

  const query = (since: number | null): string => {
    const parts = (services ?? []).map((s) => `service=${encodeURIComponent(s)}`)
    if (since !== null) parts.push(`since=${since}`)
    return parts.length === 0 ? '' : `?${parts.join('&')}`
  }

  function connect (): void {
    const urls = gateways()
    const url = urls[index % urls.length] as string
    const since = startRevision === null ? null : last
    const socket = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/watch${query(since)}`, { handshakeTimeout: HANDSHAKE_TIMEOUT_MS })
    ws = socket
    let pongAt = now()
    let opened = false
    socket.on('open', () => {
      opened = true
      // Resumed once the other gateway accepted the subscription (its replay of `since` follows
      // at once); a filtered watcher's first frame may wait for its service's next change.
      if (lostAt !== null) { resumes.push({ ms: now() - lostAt, from: lostFrom, to: url }); lostAt = null }
      pinger = setInterval(() => {
        if (now() - pongAt > PONG_TIMEOUT_MS) { socket.terminate(); return }
        socket.ping()
      }, PING_MS)
    })
    socket.on('pong', () => { pongAt = now() })
    socket.on('message', (data) => {
      if (ws !== socket) return
      pongAt = now()
      let msg: { type?: string, revision?: number, event?: string, reset?: boolean, provider?: { id: string, service: string, state: string } }
      try { msg = JSON.parse(data.toString()) as typeof msg } catch { problems.push(`a frame that is not JSON from ${url}`); return }
      if (typeof msg.revision !== 'number') { problems.push(`a frame without a revision from ${url}: ${data.toString().slice(0, 200)}`); return }
      if (msg.type === 'snapshot') {
        if (startRevision === null) {
          startRevision = msg.revision
          firstSnapshot?.()
        } else {
          problems.push(`resumed with since=${since ?? 'none'} on ${url} but got a snapshot${msg.reset === true ? ' (reset)' : ''} at revision ${msg.revision}`)
        }
        last = msg.revision
      } else if (msg.type === 'event' && msg.provider !== undefined && msg.event !== undefined) {
        events.push({ revision: msg.revision, event: msg.event, providerId: msg.provider.id, service: msg.provider.service, state: msg.provider.state })
        last = msg.revision
      } else {
        problems.push(`an unknown frame from ${url}: ${data.toString().slice(0, 200)}`)
      }
    })
    socket.on('error', () => {}) // followed by 'close'
    socket.on('close', () => {
      if (pinger !== null) { clearInterval(pinger); pinger = null }
      if (ws !== socket || stopped) return
      if (lostAt === null && startRevision !== null) { lostAt = now(); lostFrom = url }
      // Resume on the other gateway; if that one is down too, keep alternating.
      index++
      setTimeout(() => { if (!stopped) connect() }, opened ? 0 : 100)
    })
  }

  const ready = new Promise<void>((resolve) => { firstSnapshot = resolve })
  connect()
  await ready
  return {
    name,
    get lastRevision () { return last },
    record: () => ({ name, services, startRevision: startRevision ?? 0, events, problems }),
    resumes,
    stop () {
      stopped = true
      if (pinger !== null) clearInterval(pinger)
      ws?.terminate()
    }
  }
}
