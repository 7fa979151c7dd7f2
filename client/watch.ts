// A watch of the change feed (`GET /v1/watch`) that outlives its gateways: an async iterator of
// the server's snapshot and event messages which, whenever its connection ends (the gateway
// shut down with 1001, was killed, dropped the client with 4008 for lagging), connects to the
// next gateway with `since` = the last revision it took and drops anything it had already
// (feed-cursor.ts), so the caller sees every change exactly once and in order. It owns one
// socket at a time, one loop, and one queue, bounded by pausing the socket; it must never hand
// the caller a message out of order, and never keep reconnecting after close().
import WebSocket from 'ws'
import { RosterUnavailableError, type AttemptFailure, type RosterHttpError } from './errors.js'
import { admit } from './feed-cursor.js'
import { backoffMs, type GatewayPool } from './gateway-pool.js'
import { httpError, sleep, type RetryInfo } from './transport.js'
import type { WatchMessage } from './types.js'

export interface WatchOptions {
  /** Only these services' providers; every service the token may read when absent. */
  services?: readonly string[]
  /**
   * Resume after this revision (one delivered by an earlier watch): the first messages are the
   * events after it, or a snapshot with `reset: true` if the gateway no longer has them all.
   * Absent: the first message is a snapshot of the registry.
   */
  since?: number
  /** Aborting it closes the watch, as close() does. */
  signal?: AbortSignal
  /** Give up (the iterator throws a RosterUnavailableError) when no gateway has accepted the
   *  feed for this long. Default 60 s. */
  reconnectTimeoutMs?: number
}

export interface WatchDeps {
  pool: GatewayPool
  token: string | undefined
  /** Bound on one WebSocket handshake. */
  attemptTimeoutMs: number
  onRetry: ((info: RetryInfo) => void) | undefined
  /** Called with the revision of every message delivered (the client's read-your-writes floor). */
  noteRevision: (revision: number) => void
}

/** 60 s: a leader failover is over within 2 s and a gateway restart within seconds; a minute in
 *  which no gateway accepts the feed is an outage the caller should hear about. */
export const WATCH_RECONNECT_TIMEOUT_MS = 60_000
/** 15 s: a gateway that vanished without closing the connection (a frozen host, a partition) is
 *  noticed within 15–30 s, when a ping goes unanswered and nothing else arrived meanwhile. The
 *  gateway pings its side every 30 s (server/gateway/watch-hub.ts); this is the client's half. */
const PING_INTERVAL_MS = 15_000
/** Messages queued for a caller that reads slower than the feed comes: past QUEUE_HIGH_WATER the
 *  socket is paused, so TCP pushes back and the gateway, past its own bound, closes with 4008;
 *  the watch resumes from what it had queued once the caller caught up. About 400 KB of events. */
const QUEUE_HIGH_WATER = 1000
const QUEUE_LOW_WATER = 100
/** An upgrade refused with an HTTP error: its body is Fastify's small JSON object. */
const MAX_ERROR_BODY_BYTES = 64 * 1024

type State = 'connecting' | 'open' | 'closed'

interface SessionEnd {
  opened: boolean
  /** An HTTP answer no other gateway would change (400, 401, 403): the watch ends with it. */
  fatal: RosterHttpError | null
  failure: AttemptFailure
  cause: unknown
}

interface Reader {
  resolve: (result: IteratorResult<WatchMessage>) => void
  reject: (err: unknown) => void
}

/**
 * The iterator `RosterClient.watch()` returns. Iterate it once (`for await`); `break`, `return()`,
 * `close()` or the options' signal end it. It throws a RosterHttpError when a gateway refuses the
 * feed for a reason no other gateway would change (400 a bad `services` name, 401, 403), and a
 * RosterUnavailableError when no gateway accepted it for `reconnectTimeoutMs`.
 */
export class RosterWatch implements AsyncIterableIterator<WatchMessage> {
  private state: State = 'connecting'
  private readonly deps: WatchDeps
  private readonly services: readonly string[]
  private readonly reconnectTimeoutMs: number
  private cursor: number | null
  private delivered = false
  private readonly queue: WatchMessage[] = []
  private readonly readers: Reader[] = []
  private failure: unknown = null
  private socket: WebSocket | null = null
  private connectedTo: string | null = null
  /** Ends a backoff pause early when the watch is closed. */
  private readonly closing = new AbortController()

  constructor (deps: WatchDeps, opts: WatchOptions = {}) {
    const { services, since, signal, reconnectTimeoutMs = WATCH_RECONNECT_TIMEOUT_MS } = opts
    if (services !== undefined && (!Array.isArray(services) || services.some((s) => typeof s !== 'string' || s === ''))) {
      throw new TypeError('watch: services must be an array of service names (non-empty strings)')
    }
    if (since !== undefined && (!Number.isSafeInteger(since) || since < 0)) {
      throw new TypeError(`watch: since must be a revision (an integer >= 0), got ${String(since)}`)
    }
    if (!Number.isSafeInteger(reconnectTimeoutMs) || reconnectTimeoutMs <= 0) {
      throw new TypeError(`watch: reconnectTimeoutMs must be a positive integer, got ${String(reconnectTimeoutMs)}`)
    }
    this.deps = deps
    this.services = services ?? []
    this.reconnectTimeoutMs = reconnectTimeoutMs
    this.cursor = since ?? null
    if (signal?.aborted === true) {
      this.state = 'closed'
      return
    }
    signal?.addEventListener('abort', () => this.close(), { once: true, signal: this.closing.signal })
    // The loop's one top-level catch: anything unexpected ends the watch with that error.
    this.loop().catch((err: unknown) => this.fail(err))
  }

  private get closed (): boolean {
    return this.state === 'closed'
  }

  /** The revision of the last message taken from the feed: where the next connection resumes. */
  get revision (): number | null {
    return this.cursor
  }

  /** The base URL of the gateway the watch is connected to; null while it connects. */
  get gateway (): string | null {
    return this.connectedTo
  }

  [Symbol.asyncIterator] (): this {
    return this
  }

  async next (): Promise<IteratorResult<WatchMessage>> {
    const message = this.queue.shift()
    if (message !== undefined) {
      if (this.queue.length <= QUEUE_LOW_WATER && this.socket?.isPaused === true) this.socket.resume()
      return { value: message, done: false }
    }
    if (this.failure !== null) {
      const failure = this.failure
      this.failure = null
      throw failure
    }
    if (this.closed) return { value: undefined, done: true }
    return await new Promise<IteratorResult<WatchMessage>>((resolve, reject) => this.readers.push({ resolve, reject }))
  }

  async return (): Promise<IteratorResult<WatchMessage>> {
    this.close()
    return { value: undefined, done: true }
  }

  /** Stops the watch: closes its connection, drops what is queued, ends the iteration. Idempotent. */
  close (): void {
    if (this.closed) return
    this.state = 'closed'
    this.queue.length = 0
    this.closing.abort()
    this.hangUp()
    for (const reader of this.readers.splice(0)) reader.resolve({ value: undefined, done: true })
  }

  private hangUp (): void {
    const socket = this.socket
    if (socket === null) return
    if (socket.readyState === WebSocket.OPEN) socket.close(1000, 'client closed the watch')
    else socket.terminate()
  }

  /** Ends the watch with `err`: the reader waiting now gets it, or the next one after the queue. */
  private fail (err: unknown): void {
    if (this.closed) return
    this.state = 'closed'
    this.closing.abort()
    this.hangUp()
    const reader = this.readers.shift()
    if (reader !== undefined) reader.reject(err)
    else this.failure = err
    for (const other of this.readers.splice(0)) other.resolve({ value: undefined, done: true })
  }

  private deliver (message: WatchMessage): void {
    this.delivered = true
    this.deps.noteRevision(message.revision)
    const reader = this.readers.shift()
    if (reader !== undefined) return reader.resolve({ value: message, done: false })
    this.queue.push(message)
    if (this.queue.length >= QUEUE_HIGH_WATER) this.socket?.pause()
  }

  /** Connects, in the pool's order, until close() or a fatal answer; after every gateway failed
   *  in a row it pauses (backoff), and it gives up once none was connected for reconnectTimeoutMs. */
  private async loop (): Promise<void> {
    const { pool, onRetry } = this.deps
    const attempts: AttemptFailure[] = []
    let lastConnectedAt = Date.now()
    let round = 0
    let order = pool.order()
    let openedThisRound = false
    for (;;) {
      const gateway = order.shift() as string
      const end = await this.session(gateway)
      if (this.closed) return
      if (end.fatal !== null) return this.fail(end.fatal)
      pool.failed(gateway)
      if (end.opened) {
        lastConnectedAt = Date.now()
        openedThisRound = true
        round = 0
        attempts.length = 0
      }
      attempts.push(end.failure)
      let delayMs = 0
      if (order.length === 0) {
        if (!openedThisRound) delayMs = backoffMs(round++, undefined)
        order = pool.order()
        openedThisRound = false
      }
      if (Date.now() + delayMs - lastConnectedAt >= this.reconnectTimeoutMs) {
        return this.fail(new RosterUnavailableError(
          `no gateway accepted the watch for ${this.reconnectTimeoutMs} ms (the last, ${end.failure.gateway}: ${end.failure.code}: ${end.failure.message})`,
          attempts.slice(-50),
          { cause: end.cause }
        ))
      }
      onRetry?.({ operation: 'watch', failure: end.failure, delayMs })
      if (delayMs > 0) await sleep(delayMs, this.closing.signal).catch(() => {})
      if (this.closed) return
    }
  }

  private url (gateway: string): string {
    const query = new URLSearchParams()
    for (const service of this.services) query.append('service', service)
    if (this.cursor !== null) query.set('since', String(this.cursor))
    const base = gateway.replace(/^http/, 'ws')
    return `${base}/v1/watch${query.size > 0 ? `?${query.toString()}` : ''}`
  }

  /** One connection to one gateway, from the handshake to its close. */
  private async session (gateway: string): Promise<SessionEnd> {
    return await new Promise<SessionEnd>((resolve) => {
      const headers: Record<string, string> = {}
      if (this.deps.token !== undefined) headers.authorization = `Bearer ${this.deps.token}`
      const socket = new WebSocket(this.url(gateway), { headers, handshakeTimeout: this.deps.attemptTimeoutMs, followRedirects: false })
      this.socket = socket
      this.state = 'connecting'
      let opened = false
      let refused: RosterHttpError | null = null
      let socketError: (Error & { code?: string }) | null = null
      let badFrame: string | null = null
      let heard = true
      let pinger: ReturnType<typeof setInterval> | undefined

      socket.on('unexpected-response', (_req, res) => {
        const chunks: Buffer[] = []
        let size = 0
        res.on('data', (chunk: Buffer) => {
          size += chunk.length
          if (size <= MAX_ERROR_BODY_BYTES) chunks.push(chunk)
        })
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8')
          let body: unknown
          try { body = JSON.parse(text) } catch { body = undefined }
          const retryAfter = res.headers['retry-after']
          refused = httpError(gateway, res.statusCode ?? 0, new Headers(typeof retryAfter === 'string' ? { 'retry-after': retryAfter } : {}), body, text)
          socket.terminate()
        })
        res.on('error', () => socket.terminate())
      })
      socket.on('open', () => {
        opened = true
        if (this.closed) return this.hangUp()
        this.state = 'open'
        this.connectedTo = gateway
        pinger = setInterval(() => {
          // A paused socket reads no pongs either; the caller's pace is not the gateway's fault.
          if (socket.isPaused) return
          if (!heard) return socket.terminate()
          heard = false
          socket.ping()
        }, PING_INTERVAL_MS)
      })
      socket.on('pong', () => { heard = true })
      socket.on('message', (data: Buffer, isBinary: boolean) => {
        heard = true
        if (this.closed || badFrame !== null) return
        let frame: unknown
        try {
          frame = isBinary ? undefined : JSON.parse(data.toString('utf8'))
        } catch {
          frame = undefined
        }
        if (frame === undefined) {
          // Not Roster's feed (a proxy's page, a corrupted stream): try another gateway.
          badFrame = `a frame that is not JSON text (${data.length} bytes)`
          return socket.terminate()
        }
        const { message, cursor } = admit(this.cursor, this.delivered, frame)
        this.cursor = cursor
        if (message !== null) this.deliver(message)
      })
      socket.on('error', (err: Error & { code?: string }) => { socketError = err })
      socket.on('close', (code: number, reason: Buffer) => {
        clearInterval(pinger)
        if (this.socket === socket) this.socket = null
        this.connectedTo = null
        resolve(this.ending(gateway, opened, code, reason.toString('utf8'), refused, socketError, badFrame))
      })
    })
  }

  private ending (
    gateway: string, opened: boolean, code: number, reason: string,
    refused: RosterHttpError | null, socketError: (Error & { code?: string }) | null, badFrame: string | null
  ): SessionEnd {
    if (refused !== null) {
      const failure = { gateway, code: refused.code, statusCode: refused.statusCode, message: refused.message }
      // 502/503/504: not ready, too many watchers, a proxy without a gateway. Others are final.
      const retry = refused.statusCode === 502 || refused.statusCode === 503 || refused.statusCode === 504
      return { opened, fatal: retry ? null : refused, failure, cause: refused }
    }
    if (badFrame !== null) return { opened, fatal: null, failure: { gateway, code: 'bad-frame', message: badFrame }, cause: null }
    if (!opened) {
      const errCode = socketError?.code ?? 'ENETWORK'
      return { opened, fatal: null, failure: { gateway, code: errCode, message: socketError?.message ?? 'the connection failed' }, cause: socketError }
    }
    // 1001 the gateway shut down, 1006 its connection dropped, 4008 this client lagged, 1011 or
    // 1013 the gateway's own trouble: every one is resumed from the cursor on another gateway.
    return { opened, fatal: null, failure: { gateway, code: `close-${code}`, message: reason === '' ? 'the connection closed' : reason }, cause: socketError }
  }
}
