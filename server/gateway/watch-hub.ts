// The WebSocket change feed's fan-out: it owns every /v1/watch socket, brings each one up to the
// replica (a snapshot, or the missed events from the replica's ring or the leader's change log),
// then streams every later change for the client's services, in revision order. It must never
// send a client a gap or a duplicate, and never hold more than a bounded amount per client: a
// client that cannot keep up is closed with 4008 and told where to resume.
import type { WebSocket } from 'ws'
import type { Change, Provider } from '../protocol/model.js'
import type { FastifyBaseLogger } from 'fastify'
import type { LeaderPort } from './ports.js'
import type { Replica } from './replica.js'
import type { WatchEvent, WatchSnapshot } from './schemas/watch.js'

/** Close codes the feed uses (4000–4999 are the application's range, RFC 6455 §7.4.2). */
export const WatchCloseCode = {
  goingAway: 1001,
  internalError: 1011,
  tryAgainLater: 1013,
  tooFarBehind: 4008
} as const

/** Clients never need to send anything on the feed; ws closes with 1009 above this. */
export const WATCH_MAX_INBOUND_BYTES = 4096

export interface WatchLimits {
  /** Bytes a live client's socket may hold unsent (ws `bufferedAmount`) before it is dropped.
   *  Default 4 MiB: about 10 000 events of ~400 B, seconds of a busy registry's changes, far
   *  more than a healthy client lags; beyond it the client resumes with `since` for less. */
  maxBufferedBytes: number
  /** Changes queued for a client while it catches up; beyond this it is dropped. Default
   *  10 000, the replica ring's default: a catch-up slower than the ring turns over would not
   *  converge anyway. */
  maxPendingChanges: number
  /** While catching up, sending pauses above this many unsent bytes until they are flushed to
   *  the kernel, so a resume of the whole ring does not land in memory at once. Default 1 MiB. */
  catchUpHighWaterBytes: number
  /** Changes asked of the leader per `changesSince` page. Default 1000 (the protocol allows
   *  10 000): one page stays well under a ZeroMQ frame's comfortable size. */
  leaderPageSize: number
  /** How long a `since` ahead of this replica waits for it (the client came from a gateway that
   *  was further along) before it gets a reset snapshot. Default 2 s, as for writes. */
  sinceAheadWaitMs: number
  /** A client that did not answer the previous ping is terminated. Default 30 s, the ws
   *  README's figure: half-open TCP connections are found within a minute. */
  pingIntervalMs: number
  /** On close, how long clients get to answer the 1001 close frame before being terminated.
   *  Default 1 s, so that shutdown does not wait for ws's 30 s close timeout. */
  closeGraceMs: number
  /** Feed clients at once (`--max-watchers`); beyond it an upgrade is refused with 503.
   *  Default 50,000: five times the 10,000 watchers the fan-out benchmark serves well (bench/). */
  maxClients: number
  /** Unsent bytes of all live clients together (`--watch-buffer-bytes`); beyond it the clients
   *  holding the most are closed with 4008 until the rest fit. Default 256 MiB: 64 clients at
   *  the 4 MiB per-client bound, which keeps a gateway (about 200 MiB idle) within about half a
   *  GiB however many clients stall; healthy clients hold next to nothing (their frames go
   *  straight to the kernel), so only stalled ones are ever closed. */
  maxTotalBufferedBytes: number
  /** Clients whose catch-up reads the leader's change log at once; the others wait their turn,
   *  so that a crowd resuming from far back reads the log a page at a time, not all together. */
  maxLeaderCatchUps: number
}

export const DEFAULT_WATCH_LIMITS: WatchLimits = {
  maxBufferedBytes: 4 * 1024 * 1024,
  maxPendingChanges: 10_000,
  catchUpHighWaterBytes: 1024 * 1024,
  leaderPageSize: 1000,
  sinceAheadWaitMs: 2000,
  pingIntervalMs: 30_000,
  closeGraceMs: 1000,
  maxClients: 50_000,
  maxTotalBufferedBytes: 256 * 1024 * 1024,
  maxLeaderCatchUps: 2
}

/** When the hub closes with each code and what a client does then, as the feed's AsyncAPI
 *  document publishes it (asyncapi.ts). Keyed like WatchCloseCode, so that a new code cannot
 *  be added without saying what it means to clients. */
export const WATCH_CLOSE_MEANINGS: Record<keyof typeof WatchCloseCode, { reason: string, when: string, client: string }> = {
  goingAway: {
    reason: 'going away',
    when: 'the gateway is shutting down (also an upgrade that arrives while it shuts down)',
    client: 'reconnect at once, to another gateway if there is one, with since=<the last revision you processed>'
  },
  tooFarBehind: {
    reason: 'too far behind; resume with since=N',
    when: `the client fell too far behind: more than ${DEFAULT_WATCH_LIMITS.maxBufferedBytes / 1024 / 1024} MiB unsent, ` +
      `more than ${DEFAULT_WATCH_LIMITS.maxPendingChanges.toLocaleString('en')} changes queued while it caught up (the defaults), ` +
      'or it is among the slowest when all clients together hold more than --watch-buffer-bytes; every frame up to N was sent before the close',
    client: 'process what arrived, then reconnect with since=N (the last revision you processed); read faster or watch fewer services if it recurs'
  },
  tryAgainLater: {
    reason: 'too many watchers; retry later or elsewhere',
    when: 'the gateway already serves --max-watchers clients and this upgrade raced past the check that normally answers 503',
    client: 'reconnect after a second, or to another gateway, with since=<the last revision you processed>'
  },
  internalError: {
    reason: 'internal error; resume with since=N',
    when: 'the gateway failed to serve this client (a bug; it is logged)',
    client: 'reconnect with since=N, with a growing delay if it recurs'
  }
}

/** A close reason that tells the client where to resume: the documented reason with its N. */
function resumeReason (code: 'tooFarBehind' | 'internalError', cursor: number): string {
  return WATCH_CLOSE_MEANINGS[code].reason.replace('N', String(cursor))
}

export interface WatchRequest {
  /** Only these services; null for all. */
  services: readonly string[] | null
  /** Resume after this revision; null for a snapshot first. */
  since: number | null
  /** With no `services`: the services this client's token may read; null (or absent) for all. */
  readable?: ((service: string) => boolean) | null
}

export interface WatchHub {
  /** Adopts a just-upgraded socket. Call it synchronously in the websocket handler: from this
   *  call on, every change the replica applies is either sent or queued for this client. */
  accept: (socket: WebSocket, request: WatchRequest) => void
  readonly clients: number
  /** At `maxClients`: refuse the upgrade (before accepting it) with 503. */
  readonly full: boolean
  readonly maxClients: number
  /** Bytes accepted for clients and not yet handed to the kernel, summed at the call. */
  readonly bufferedBytes: number
  /** Clients closed with 4008 (too far behind) since the hub began. */
  readonly closedBehind: number
  /** Sends 1001 to every client, waits up to `closeGraceMs`, terminates the rest. Idempotent. */
  close: () => Promise<void>
}

export interface WatchHubDeps {
  replica: Replica
  leader: LeaderPort
  log: FastifyBaseLogger
  limits?: Partial<WatchLimits>
}

interface Client {
  readonly socket: WebSocket
  readonly services: ReadonlySet<string> | null
  readonly readable: ((service: string) => boolean) | null
  /** Everything up to this revision, for this client's services, has been sent. */
  cursor: number
  /** Live: changes are sent as they come. Otherwise a catch-up is running and they queue. */
  live: boolean
  pending: Change[]
  /** Bumped by every reset; a catch-up that sees another generation has been superseded. */
  generation: number
  closed: boolean
  answeredPing: boolean
}

/** Catch-up events sent per turn of the event loop, by all catch-ups together: 200 frames are
 *  about a millisecond of work, the most a request waits behind the catch-ups in one turn. */
const CATCH_UP_SLICE = 200
const OPEN = 1 // WebSocket.OPEN, without importing ws's runtime into a module that only needs its type
/** Frames are JSON text, also when handed to ws as a Buffer. */
const TEXT = { binary: false } as const

export function createWatchHub (deps: WatchHubDeps): WatchHub {
  const { replica, leader, log } = deps
  const limits: WatchLimits = { ...DEFAULT_WATCH_LIMITS, ...deps.limits }
  const clients = new Set<Client>()
  let closedBehind = 0
  let closing: Promise<void> | null = null

  const unsubscribe = replica.subscribe({ change: onChange, reset: onReset })
  const pinger = setInterval(ping, limits.pingIntervalMs)
  pinger.unref()

  function wants (client: Client, change: Change): boolean {
    if (client.services !== null) return client.services.has(change.provider.service)
    return client.readable === null || client.readable(change.provider.service)
  }

  // Typed by the schemas that the AsyncAPI document publishes (schemas/watch.ts), so that a
  // frame and its documentation cannot drift apart.
  function eventFrame (change: Change): string {
    const message: WatchEvent = { type: 'event', revision: change.revision, event: change.event, provider: change.provider }
    return JSON.stringify(message)
  }

  function snapshotFrame (revision: number, reset: boolean, providers: Provider[]): Buffer {
    const message: WatchSnapshot = reset ? { type: 'snapshot', reset: true, revision, providers } : { type: 'snapshot', revision, providers }
    return Buffer.from(JSON.stringify(message))
  }

  // Clients of every service share one snapshot Buffer per replica version (a revision, or a
  // lastSeen refresh: at most two a second): after a gateway dies, its clients reconnect here
  // together, and a copy of the whole registry each would not fit.
  let snapshotCache: { revision: number, version: number, reset: boolean, frame: Buffer } | null = null
  function fullSnapshot (revision: number, reset: boolean): Buffer {
    const version = replica.version
    if (snapshotCache?.revision !== revision || snapshotCache.version !== version || snapshotCache.reset !== reset) {
      snapshotCache = { revision, version, reset, frame: snapshotFrame(revision, reset, replica.providers()) }
    }
    return snapshotCache.frame
  }

  function stale (client: Client, generation: number): boolean {
    return client.closed || client.generation !== generation
  }

  function forget (client: Client): void {
    client.closed = true
    client.pending = []
    clients.delete(client)
  }

  function drop (client: Client, code: number, reason: string): void {
    if (client.closed) return
    if (code !== WatchCloseCode.goingAway) log.info({ code, reason, cursor: client.cursor }, 'closing watch client')
    forget(client)
    // close() rather than terminate(): the frames already buffered, then the close frame with
    // the resume hint, still reach a client that is slow rather than gone; ws destroys the
    // socket if the client never answers (its 30 s close timeout), which bounds the memory.
    client.socket.close(code, reason)
  }

  function dropBehind (client: Client): void {
    if (!client.closed) closedBehind++
    drop(client, WatchCloseCode.tooFarBehind, resumeReason('tooFarBehind', client.cursor))
  }

  // The replica calls this synchronously for every applied change, in revision order. It must
  // not throw: the caller is the leader client's feed loop.
  function onChange (change: Change): void {
    // One Buffer for every client: ws writes a server's unmasked Buffer without copying it,
    // so a change costs one serialization and one allocation however many clients watch.
    let frame: Buffer | null = null
    // Live clients with unsent bytes, and their sum, for the bound on all clients together.
    const loaded: Client[] = []
    let totalBuffered = 0
    for (const client of clients) {
      if (client.closed) continue
      try {
        if (!client.live) {
          if (!wants(client, change)) continue
          client.pending.push(change)
          if (client.pending.length > limits.maxPendingChanges) dropBehind(client)
          continue
        }
        // A live client may already be past this change when its catch-up read the leader's
        // log ahead of this replica; those are skipped so that nothing is sent twice.
        if (change.revision > client.cursor) {
          if (wants(client, change)) {
            frame ??= Buffer.from(eventFrame(change))
            client.socket.send(frame, TEXT)
          }
          client.cursor = change.revision
        }
        const buffered = client.socket.bufferedAmount
        if (buffered > limits.maxBufferedBytes) {
          dropBehind(client)
        } else if (buffered > 0) {
          loaded.push(client)
          totalBuffered += buffered
        }
      } catch (err) {
        log.error({ err }, 'watch fan-out failed for one client')
        drop(client, WatchCloseCode.internalError, resumeReason('internalError', client.cursor))
      }
    }
    if (totalBuffered > limits.maxTotalBufferedBytes) shedSlowest(loaded, totalBuffered)
  }

  /** Closes the clients holding the most unsent bytes (the slowest readers) until the rest fit
   *  in maxTotalBufferedBytes. Catching-up clients are not counted: their own sends pause at
   *  catchUpHighWaterBytes, and a snapshot's Buffer is shared between them. */
  function shedSlowest (loaded: Client[], total: number): void {
    const bySize = loaded.map((c) => ({ c, bytes: c.socket.bufferedAmount })).sort((a, b) => b.bytes - a.bytes)
    let closed = 0
    for (const { c, bytes } of bySize) {
      if (total <= limits.maxTotalBufferedBytes) break
      dropBehind(c)
      total -= bytes
      closed++
    }
    log.warn({ closed, maxTotalBufferedBytes: limits.maxTotalBufferedBytes }, 'watch clients hold too many unsent bytes; closed the slowest')
  }

  // A new snapshot replaced the replica's history: every client starts over from it.
  function onReset (): void {
    // A new snapshot can carry a revision already cached with other contents (a new leader
    // rebuilt from Postgres); the cache must not outlive the state it was built from.
    snapshotCache = null
    for (const client of clients) {
      client.generation++
      client.live = false
      client.pending = []
      run(client, client.generation, () => sendSnapshot(client, client.generation, true))
    }
  }

  function ping (): void {
    for (const client of clients) {
      if (!client.answeredPing) {
        forget(client)
        client.socket.terminate()
        continue
      }
      client.answeredPing = false
      client.socket.ping()
    }
  }

  /** Sends one frame and resolves once it is written to the kernel (or the socket is gone). */
  function sendFlushed (client: Client, frame: string | Buffer): Promise<void> {
    return new Promise((resolve) => {
      if (client.socket.readyState !== OPEN) return resolve()
      const onClose = (): void => resolve()
      client.socket.once('close', onClose)
      client.socket.send(frame, TEXT, () => {
        client.socket.off('close', onClose)
        resolve()
      })
    })
  }

  /** Sends the changes after the client's cursor, in order, with backpressure. Returns false if
   *  the catch-up was superseded (reset, close) meanwhile. */
  async function sendChanges (client: Client, generation: number, changes: readonly Change[]): Promise<boolean> {
    for (const change of changes) {
      if (stale(client, generation)) return false
      if (change.revision <= client.cursor) continue
      if (wants(client, change)) {
        const frame = catchUpFrame(change)
        if (client.socket.bufferedAmount > limits.catchUpHighWaterBytes) await sendFlushed(client, frame)
        else client.socket.send(frame, TEXT)
        if (catchUpBudget > 0) catchUpBudget--
        else await catchUpTurn()
      }
      client.cursor = change.revision
    }
    return !stale(client, generation)
  }

  // All catch-ups together send at most CATCH_UP_SLICE events per turn of the event loop; the
  // rest wait for the next turn (setImmediate, after the I/O of this one). So requests (writes
  // waiting for the replica, reads) and live events are served between the slices of a crowd
  // of catch-ups rather than after them, however many clients resume at once.
  let catchUpBudget = CATCH_UP_SLICE
  let nextTurn: Promise<void> | null = null
  async function catchUpTurn (): Promise<void> {
    while (catchUpBudget <= 0) {
      nextTurn ??= new Promise<void>((resolve) => setImmediate(() => {
        nextTurn = null
        catchUpBudget = CATCH_UP_SLICE
        resolve()
      }))
      await nextTurn
    }
    catchUpBudget--
  }

  // Catch-ups from the replica's ring send the same Change objects to every client: each is
  // serialized once, and the Buffer lives as long as the ring holds the change.
  const ringFrames = new WeakMap<Change, Buffer>()
  function catchUpFrame (change: Change): Buffer {
    let frame = ringFrames.get(change)
    if (frame === undefined) {
      frame = Buffer.from(eventFrame(change))
      ringFrames.set(change, frame)
    }
    return frame
  }

  /** Sends what queued during the catch-up, then turns live. The switch happens in the same
   *  tick as the check that the queue is empty, so no change can fall between queue and live. */
  async function goLive (client: Client, generation: number): Promise<void> {
    while (!stale(client, generation)) {
      if (client.pending.length === 0) {
        client.live = true
        return
      }
      const batch = client.pending
      client.pending = []
      if (!(await sendChanges(client, generation, batch))) return
    }
  }

  async function sendSnapshot (client: Client, generation: number, reset: boolean): Promise<void> {
    // Taken synchronously, so the revision and the providers belong together; changes after it
    // are in `pending` (the client was registered before), older queued ones are skipped.
    const revision = replica.revision
    client.cursor = revision
    const { services, readable } = client
    const frame = services !== null
      ? snapshotFrame(revision, reset, [...services].sort().flatMap((s) => replica.providers(s)))
      : readable === null
        ? fullSnapshot(revision, reset)
        : snapshotFrame(revision, reset, replica.providers().filter((p) => readable(p.service)))
    // Waiting for the snapshot to reach the kernel keeps a large one out of the live client's
    // bufferedAmount, which would otherwise read as "too far behind" on the next event.
    await sendFlushed(client, frame)
    await goLive(client, generation)
  }

  async function resume (client: Client, generation: number, since: number): Promise<void> {
    if (since > replica.revision) {
      const reached = await replica.waitForRevision(since, limits.sinceAheadWaitMs)
      if (stale(client, generation)) return
      if (!reached) return sendSnapshot(client, generation, true)
    }
    // A replay longer than a snapshot of the same services costs the client, this gateway and
    // the leader more than the snapshot does: such a client gets the snapshot (reset) instead.
    // For every service the count is known now; for a filter it is counted page by page, and
    // the snapshot replaces what was sent so far once the count passes the snapshot's size.
    // The registry may grow during a long catch-up, so the size is taken at each page.
    const snapshotSize = (): number => client.services === null
      ? replica.services().reduce((n, s) => n + (client.readable === null || client.readable(s.name) ? s.providers : 0), 0)
      : [...client.services].reduce((n, s) => n + replica.providers(s).length, 0)
    if (client.services === null && replica.revision - since > snapshotSize()) return sendSnapshot(client, generation, true)
    let replayed = 0
    client.cursor = since
    while (client.cursor < replica.revision) {
      const ring = replica.historySince(client.cursor)
      let changes: readonly Change[]
      if (ring !== null) {
        changes = ring
      } else {
        const page = await leaderPage(client, generation)
        if (page === 'stale') return
        if (page === null || !page.available || !continues(page.changes, client.cursor)) return sendSnapshot(client, generation, true)
        changes = page.changes
      }
      replayed += changes.reduce((n, c) => n + (c.revision > client.cursor && wants(client, c) ? 1 : 0), 0)
      if (replayed > snapshotSize()) return sendSnapshot(client, generation, true)
      if (!(await sendChanges(client, generation, changes))) return
      if (ring !== null) break
    }
    await goLive(client, generation)
  }

  // Catch-ups waiting for a turn to read the leader's log (maxLeaderCatchUps at once).
  let leaderReaders = 0
  const leaderQueue: Array<() => void> = []

  /** One page of the leader's log after the client's cursor, read in turn with the other
   *  catch-ups; null when the leader could not answer, 'stale' when the catch-up was superseded. */
  async function leaderPage (client: Client, generation: number): Promise<{ available: boolean, changes: Change[] } | null | 'stale'> {
    if (leaderReaders >= limits.maxLeaderCatchUps) await new Promise<void>((resolve) => leaderQueue.push(resolve))
    else leaderReaders++
    try {
      if (stale(client, generation)) return 'stale'
      const page = await leader.changesSince(client.cursor, limits.leaderPageSize)
      return stale(client, generation) ? 'stale' : page
    } catch (err) {
      if (stale(client, generation)) return 'stale'
      log.info({ err, since: client.cursor }, 'leader could not supply missed events; sending a reset snapshot')
      return null
    } finally {
      // The turn passes straight to the next waiter, so the count never drops below the queue.
      const next = leaderQueue.shift()
      if (next !== undefined) next()
      else leaderReaders--
    }
  }

  /** A page is usable only if it starts right after the cursor and has no holes; an empty page
   *  while the replica is ahead means the two histories disagree. */
  function continues (changes: readonly Change[], cursor: number): boolean {
    if (changes.length === 0) return false
    return changes.every((c, i) => c.revision === cursor + 1 + i)
  }

  function run (client: Client, generation: number, task: () => Promise<void>): void {
    task().catch((err: unknown) => {
      if (stale(client, generation)) return
      log.error({ err }, 'watch catch-up failed')
      drop(client, WatchCloseCode.internalError, resumeReason('internalError', client.cursor))
    })
  }

  return {
    get clients () { return clients.size },
    get full () { return clients.size >= limits.maxClients },
    maxClients: limits.maxClients,
    get bufferedBytes () {
      let bytes = 0
      for (const c of clients) bytes += c.socket.bufferedAmount
      return bytes
    },
    get closedBehind () { return closedBehind },

    accept (socket, request) {
      if (closing !== null) {
        socket.close(WatchCloseCode.goingAway, WATCH_CLOSE_MEANINGS.goingAway.reason)
        return
      }
      // The route refuses upgrades at the bound; this catches the few that raced past it.
      if (clients.size >= limits.maxClients) {
        socket.close(WatchCloseCode.tryAgainLater, WATCH_CLOSE_MEANINGS.tryAgainLater.reason)
        return
      }
      const client: Client = {
        socket,
        services: request.services === null ? null : new Set(request.services),
        readable: request.readable ?? null,
        cursor: request.since ?? replica.revision,
        live: false,
        pending: [],
        generation: 0,
        closed: false,
        answeredPing: true
      }
      clients.add(client)
      socket.on('close', () => forget(client))
      socket.on('pong', () => { client.answeredPing = true })
      // Clients have nothing to say on this feed; their frames are read (ws answers pings) and
      // ignored. Socket errors reach the plugin's errorHandler, which the gateway configures.
      const since = request.since
      run(client, 0, () => (since === null ? sendSnapshot(client, 0, false) : resume(client, 0, since)))
    },

    close () {
      closing ??= (async () => {
        clearInterval(pinger)
        unsubscribe()
        const sockets = [...clients].map((c) => c.socket)
        for (const client of [...clients]) drop(client, WatchCloseCode.goingAway, WATCH_CLOSE_MEANINGS.goingAway.reason)
        const closed = Promise.all(sockets.map((s) => new Promise<void>((resolve) => {
          if (s.readyState === 3) resolve()
          else s.once('close', () => resolve())
        })))
        let timer: NodeJS.Timeout | undefined
        const grace = new Promise<void>((resolve) => { timer = setTimeout(resolve, limits.closeGraceMs) })
        await Promise.race([closed, grace])
        clearTimeout(timer)
        for (const s of sockets) if (s.readyState !== 3) s.terminate()
      })()
      return closing
    }
  }
}
