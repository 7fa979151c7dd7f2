// The follower side of the protocol, shared by workers and gateways: one DEALER towards the
// active leader among the candidates, PING/PONG liveness (Paranoid Pirate), failover to the next
// candidate when the leader falls silent, and epoch fencing. It owns that DEALER; the caller
// owns what the messages mean. It must never deliver a message from an epoch older than the
// highest one it has seen: that is how a deposed leader is made harmless.
import { Dealer } from 'zeromq'
import { curveClientOptions, type ClusterKeys } from './cluster-keys.js'
import { createBadFrames, decodeOrDrop, encode } from './frames.js'
import { limitOptions } from './socket-limits.js'
import { type Body, type Message, type Verb } from './messages.js'
import { createSendQueue, type SendQueue } from './send-queue.js'
import { everyAfterReads } from '../common/after-reads.js'
import type { Log } from '../common/log.js'

/** 4 × 250 ms: a dead leader is noticed within 1–1.25 s, which leaves a standby's takeover
 *  (writes back within 2 s: README.md › What each failure looks like to a client) time to happen before followers give up on a candidate. */
export const PING_INTERVAL_MS = 250
export const LIVENESS_MISSES = 4

export interface LeaderInfo { endpoint: string, epoch: number, revision: number }

export interface LeaderLinkOptions<V extends Verb> {
  candidates: readonly string[]
  peerId: string
  role: 'worker' | 'gateway'
  /** Verbs this follower accepts from a leader; everything else is a bad frame. */
  inbound: readonly V[]
  /** A leader answered for the first time, or one with a newer epoch took over. */
  onLeader: (leader: LeaderInfo) => void
  /** The leader fell silent (or was fenced); the link is looking for one. */
  onLost: () => void
  onMessage: (msg: Extract<Message, { verb: V }>) => void
  log: Log
  pingIntervalMs?: number
  livenessMisses?: number
  /** The largest frame this follower accepts from a leader (socket-limits.ts). */
  maxMessageBytes: number
  /** With keys, the DEALER is a CURVE client of the leader (cluster-keys.ts). */
  clusterKeys?: ClusterKeys
}

export interface LeaderLink {
  start: () => void
  stop: () => Promise<void>
  /** Queues a message to the current leader; false (nothing queued) when there is none. */
  send: <W extends Verb>(verb: W, body: Body<W>) => boolean
  readonly leader: LeaderInfo | null
  readonly stats: { readonly badFrames: number, fencedMessages: number, failovers: number }
}

export function createLeaderLink<V extends Verb> (opts: LeaderLinkOptions<V>): LeaderLink {
  const { candidates, log } = opts
  const pingIntervalMs = opts.pingIntervalMs ?? PING_INTERVAL_MS
  const silenceMs = pingIntervalMs * (opts.livenessMisses ?? LIVENESS_MISSES)
  const bad = createBadFrames(log, 'dropped a bad frame from the leader')
  const stats = {
    get badFrames () { return bad.count },
    fencedMessages: 0,
    failovers: 0
  }
  const inbound = [...new Set<Verb>([...opts.inbound, 'PONG'])]

  let running = false
  let candidateIndex = 0
  let socket: Dealer | null = null
  let queue: SendQueue | null = null
  let leader: LeaderInfo | null = null
  let highestEpoch = 0
  let lastHeardAt = 0
  let timer: NodeJS.Timeout | null = null

  function openSocket (): void {
    const endpoint = candidates[candidateIndex % candidates.length] as string
    // A fresh socket per attempt (as ppworker.py does): nothing queued for a dead leader survives.
    const dealer = new Dealer({
      linger: 0,
      routingId: opts.peerId,
      sendHighWaterMark: 10_000,
      sendTimeout: 0,
      ...limitOptions(opts.maxMessageBytes),
      ...curveClientOptions(opts.clusterKeys)
    })
    // Taken before connect, or early events are lost; reading `events` after close() throws.
    let events: Dealer['events']
    try {
      events = dealer.events
    } catch (err) {
      dealer.close()
      throw err
    }
    dealer.connect(endpoint)
    socket = dealer
    queue = createSendQueue(dealer, (err) => log.debug({ err, endpoint }, 'send to leader failed'))
    lastHeardAt = Date.now()
    readLoop(dealer, endpoint).catch((err) => log.error({ err }, 'leader link read loop failed'))
    watchConnection(dealer, events, endpoint).catch((err) => log.error({ err }, 'leader link monitor failed'))
    ping()
  }

  /**
   * A leader that dies (SIGKILL, a crash) or stops closes its TCP connection: the kernel tells us
   * at once, so we fail over now instead of after `silenceMs` of silence. That leaves the standby's
   * takeover as the only wait. Silence stays the rule for what closes nothing (a frozen process, a
   * partition). A connection that merely blipped costs one look at the next candidate, which the
   * silence rule turns back within `silenceMs` if that one is not the leader.
   */
  async function watchConnection (dealer: Dealer, events: Dealer['events'], endpoint: string): Promise<void> {
    for await (const ev of events) {
      if (dealer !== socket) return
      if (ev.type !== 'disconnect' || leader === null || leader.endpoint !== endpoint) continue
      failover('leader closed the connection, failing over')
      return
    }
  }

  function closeSocket (): void {
    socket?.close()
    socket = null
    queue = null
  }

  async function readLoop (dealer: Dealer, endpoint: string): Promise<void> {
    for await (const frames of dealer) {
      if (dealer !== socket) return
      const msg = decodeOrDrop(frames, inbound, bad, { endpoint })
      if (msg === null) continue
      // A failing callback must not deafen the link: log it and keep reading.
      try {
        handle(msg, endpoint)
      } catch (err) {
        log.error({ err, verb: msg.verb }, 'handling a leader message failed')
      }
    }
  }

  function handle (msg: Message, endpoint: string): void {
    const epoch = (msg.body as { epoch: number }).epoch
    if (epoch < highestEpoch) {
      // A deposed leader that has not noticed yet: ignore it and look for the real one.
      stats.fencedMessages++
      return
    }
    lastHeardAt = Date.now()
    const revision = msg.verb === 'PONG' ? msg.body.revision : (leader?.revision ?? 0)
    if (leader === null || epoch > highestEpoch || leader.endpoint !== endpoint) {
      highestEpoch = epoch
      leader = { endpoint, epoch, revision }
      log.info({ endpoint, epoch }, 'following leader')
      opts.onLeader(leader)
    } else {
      leader.revision = revision
    }
    if (msg.verb !== 'PONG' || (opts.inbound as readonly Verb[]).includes('PONG')) {
      opts.onMessage(msg as Extract<Message, { verb: V }>)
    }
  }

  function ping (): void {
    queue?.send(encode('PING', { peerId: opts.peerId, role: opts.role }))
  }

  /**
   * Opens the next socket, or leaves none and lets the next tick try again. zeromq.js names a
   * socket's monitor `inproc://zmq.monitor.<address of its observer>`, and libzmq releases that
   * name only once the reaper thread has closed the previous socket; a new observer allocated at
   * the freed address meanwhile gets EADDRINUSE (seen on a loaded machine, where it crashed a
   * worker at its first failover).
   */
  function open (): void {
    try {
      openSocket()
    } catch (err) {
      log.warn({ err }, `cannot open a socket to the leader yet; retrying in ${pingIntervalMs} ms`)
    }
  }

  function tick (): void {
    if (!running) return
    if (socket === null) {
      open()
      return
    }
    if (Date.now() - lastHeardAt > silenceMs) {
      failover('leader is silent, failing over')
      return
    }
    ping()
  }

  /** Gives up on the current candidate and tries the next one on a fresh socket. */
  function failover (why: string): void {
    if (leader !== null) {
      log.warn({ endpoint: leader.endpoint, silenceMs }, why)
      leader = null
      opts.onLost()
    }
    stats.failovers++
    closeSocket()
    candidateIndex++
    open()
  }

  return {
    start () {
      if (running) return
      running = true
      open()
      // After the turn's socket reads (common/after-reads.ts): after a stall of this process,
      // the leader's PONGs that came in time are read before it is called silent.
      timer = everyAfterReads(tick, pingIntervalMs)
    },
    async stop () {
      if (!running) return
      running = false
      if (timer) clearInterval(timer)
      await queue?.drain()
      // A short linger lets a just-queued BYE reach the leader; the process never waits longer.
      if (socket !== null) socket.linger = 100
      closeSocket()
      leader = null
    },
    send (verb, body) {
      if (leader === null || queue === null) return false
      queue.send(encode(verb, body))
      return true
    },
    get leader () { return leader },
    stats
  }
}
