// The worker's connections to heartbeat endpoints: one TCP socket per endpoint, each speaking
// ZMTP as a subscriber through the pure codec in zmtp.ts, reconnected when it drops, as a libzmq
// SUB connected to every endpoint did (same backoff, connect and handshake bounds). It owns the
// sockets and their timers, and reports per endpoint: the handshake completed, the connection
// dropped, a message arrived. Because every connection is its own socket, a message is known to
// come from its endpoint: the worker needs no address table, and another publisher sending a
// provider's id cannot pass for that provider (worker.ts, onHeartbeat).
//
// Why not libzmq: its SUB spends ~33 KB on each connection (pipe queues and 8 KB codec buffers,
// fixed when it is built), 333 MiB for 10,000 providers. Here a connection is a socket, a codec
// state and, on the pinged lane, a timer: about 1.4 KB of heap. Every read lands in one buffer
// shared by all sockets (the codec copies out the little it keeps), so idle connections hold no
// read buffers at all.
import { isIP, connect as tcpConnect, type Socket } from 'node:net'
import { HEARTBEAT_ENDPOINT_PATTERN } from '../protocol/model.js'
import { endpointTarget } from '../protocol/targets.js'
import { afterReads } from '../common/after-reads.js'
import type { Log } from '../common/log.js'
import { createZmtpSub, type ZmtpPing, type ZmtpSub, type ZmtpSubHandlers } from './zmtp.js'

/** Every socket reads into this one buffer: reads are handled synchronously, one at a time. */
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024)
/** A peer that stops reading cannot make us queue PONGs (or PINGs) without bound: a few hundred
 *  of them already mean it is not a working publisher. */
const WRITE_BACKLOG_MAX_BYTES = 16 * 1024
const ENDPOINT = new RegExp(HEARTBEAT_ENDPOINT_PATTERN)

export interface HeartbeatConnsOptions {
  /** The subscription (the heartbeat topic). */
  topic: Buffer
  maxFrameBytes: number
  maxMessageBytes: number
  /** A TCP connect that has not completed after this long is abandoned and retried. */
  connectTimeoutMs: number
  /** A connection whose ZMTP handshake has not completed after this long is closed. */
  handshakeTimeoutMs: number
  /** A dropped or refused connection is retried after reconnectMs plus up to reconnectMs of
   *  jitter, the base doubling up to reconnectMaxMs while attempts fail (libzmq's rule). */
  reconnectMs: number
  reconnectMaxMs: number
  /** TCP keepalive: idle time before the kernel's first probe. */
  keepaliveIdleMs?: number | undefined
  /** ZMTP heartbeats from our side (zmtp.ts). */
  ping?: ZmtpPing | undefined
  log: Log
  onHandshake: (endpoint: string) => void
  /** An established TCP connection dropped (whether or not its handshake had completed), other
   *  than by disconnect() or close(). Never called twice without a connection in between. */
  onDisconnect: (endpoint: string) => void
  onMessage: (endpoint: string, frames: Buffer[]) => void
}

export interface HeartbeatConns {
  /** Starts connecting (and reconnecting) to `endpoint`; throws a RangeError if it is not a
   *  usable `tcp://host:port`. Connecting to a connected endpoint does nothing. */
  connect: (endpoint: string) => void
  /** Closes the endpoint's connection for good, with no onDisconnect. */
  disconnect: (endpoint: string) => void
  has: (endpoint: string) => boolean
  endpoints: () => IterableIterator<string>
  readonly size: number
  /** disconnect() for every endpoint. */
  close: () => void
}

/** What every connection of one set shares: the options, and the set itself. */
interface Shared {
  readonly opts: HeartbeatConnsOptions
  readonly conns: Map<string, Conn>
}

type Due = 'connect' | 'handshake' | 'reconnect' | 'wake'

/**
 * One endpoint's connection, reconnected until it is removed. A class whose methods are the
 * codec's handlers, and listeners shared by all sockets (they find their Conn on the socket),
 * for memory: Roster runs through tsx, whose keepNames gives every named closure its own
 * property store (~300 bytes), and a dozen closures per connection came to ~5 KB (see zmtp.ts).
 */
class Conn implements ZmtpSubHandlers {
  readonly endpoint: string
  readonly host: string
  readonly port: number
  readonly shared: Shared
  socket: ConnSocket | null = null
  codec: ZmtpSub | null = null
  /** The TCP connection of `socket` is up (its drop is then reported). */
  established = false
  /** The one pending timer: connect timeout, handshake timeout, reconnect, or the codec's next
   *  wake (they never overlap), what it is for, and the time it was armed for (wake only). */
  timer: NodeJS.Timeout | null = null
  due: Due | null = null
  timerAt: number | null = null
  /** The current reconnect base: reconnectMs after a connection, doubling while attempts fail. */
  backoffMs: number
  /** A refusal was logged since the last handshake (one warning per bad endpoint, not one per
   *  attempt). */
  warned = false
  removed = false

  constructor (shared: Shared, endpoint: string, host: string, port: number) {
    this.shared = shared
    this.endpoint = endpoint
    this.host = host
    this.port = port
    this.backoffMs = shared.opts.reconnectMs
  }

  open (): void {
    const { opts } = this.shared
    const socket: ConnSocket = tcpConnect({
      host: this.host,
      port: this.port,
      noDelay: true,
      ...(opts.keepaliveIdleMs !== undefined ? { keepAlive: true, keepAliveInitialDelay: opts.keepaliveIdleMs } : {}),
      onread: { buffer: READ_BUFFER, callback: onSocketRead }
    })
    socket[CONN] = this
    this.socket = socket
    this.established = false
    socket.on('error', onSocketError)
    socket.once('connect', onSocketConnect)
    socket.once('close', onSocketClose)
    this.arm('connect', opts.connectTimeoutMs)
  }

  /** Arms the one timer; it runs `due` after that turn's socket reads (common/after-reads.ts):
   *  a stalled event loop must not time out a handshake or a PING whose answer waits unread. */
  arm (due: Due, ms: number): void {
    this.clearTimer()
    this.due = due
    this.timer = setTimeout(onTimer, Math.max(1, Math.ceil(ms)), this)
  }

  clearTimer (): void {
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
    this.due = null
    this.timerAt = null
  }

  fired (due: Due): void {
    if (this.removed) return
    const { opts } = this.shared
    const codec = this.codec
    if (due === 'connect') {
      if (!this.established) this.socket?.destroy()
    } else if (due === 'handshake') {
      if (codec !== null && !codec.ready) this.fail(`no ZMTP handshake within ${opts.handshakeTimeoutMs} ms`)
    } else if (due === 'reconnect') {
      if (this.socket === null) this.open()
    } else if (codec !== null) {
      codec.tick(performance.now())
      this.armWake()
    }
  }

  /** Keeps the timer at the codec's next wake (its PINGs and their timeouts). */
  armWake (): void {
    const codec = this.codec
    if (codec === null || !codec.ready) return
    const at = codec.wakeAt()
    if (at === null || (this.timerAt !== null && this.timerAt <= at)) return
    this.arm('wake', at - performance.now())
    this.timerAt = at
  }

  connected (): void {
    const { opts } = this.shared
    this.established = true
    this.backoffMs = opts.reconnectMs
    this.codec = createZmtpSub({ topic: opts.topic, maxFrameBytes: opts.maxFrameBytes, maxMessageBytes: opts.maxMessageBytes, ping: opts.ping }, this)
    this.socket?.write(this.codec.hello())
    this.arm('handshake', opts.handshakeTimeoutMs)
  }

  closed (): void {
    const { opts } = this.shared
    const established = this.established
    this.socket = null
    this.codec = null
    this.established = false
    this.clearTimer()
    if (this.removed) return
    // Reported before the reconnect is scheduled: nothing from the next connection can come
    // before its own handshake, which is at least reconnectMs away.
    if (established) opts.onDisconnect(this.endpoint)
    const delay = this.backoffMs + Math.random() * opts.reconnectMs
    this.backoffMs = Math.min(this.backoffMs * 2, opts.reconnectMaxMs)
    this.arm('reconnect', delay)
  }

  remove (): void {
    this.removed = true
    this.clearTimer()
    const socket = this.socket
    this.socket = null
    this.codec = null
    socket?.destroy()
    this.shared.conns.delete(this.endpoint)
  }

  // ---- the codec's handlers (ZmtpSubHandlers) ----

  send (bytes: Buffer): void {
    const socket = this.socket
    if (socket === null) return
    if (socket.writableLength > WRITE_BACKLOG_MAX_BYTES) this.fail('the peer does not read what we send')
    else socket.write(bytes)
  }

  ready (): void {
    this.clearTimer()
    this.warned = false
    this.shared.opts.onHandshake(this.endpoint)
  }

  message (frames: Buffer[]): void {
    if (this.codec !== null) this.shared.opts.onMessage(this.endpoint, frames)
  }

  /** Done with this connection: nothing more of it reaches the worker, but its drop does (on
   *  'close'). */
  fail (reason: string): void {
    const { log } = this.shared.opts
    // Refusals before the handshake mean a misconfigured endpoint: worth a warning, once.
    if (this.codec !== null && !this.codec.ready && !this.warned) {
      this.warned = true
      log.warn({ endpoint: this.endpoint, reason }, 'heartbeat endpoint refused; retrying')
    } else {
      log.debug({ endpoint: this.endpoint, reason }, 'heartbeat connection closed')
    }
    this.codec = null
    this.socket?.destroy()
  }
}

const CONN = Symbol('heartbeat connection')
type ConnSocket = Socket & { [CONN]?: Conn }

/** The owner of a socket's events, if that socket is still its connection's current one. */
function ownerOf (socket: ConnSocket): Conn | null {
  const c = socket[CONN]
  return c !== undefined && c.socket === socket && !c.removed ? c : null
}

function onSocketRead (this: ConnSocket, n: number): boolean {
  const c = ownerOf(this)
  if (c?.codec != null) {
    c.codec.receive(READ_BUFFER.subarray(0, n), performance.now())
    c.armWake() // a peer's PING may have set a TTL
  }
  return true
}

function onSocketError (this: ConnSocket, err: Error): void {
  const c = this[CONN]
  c?.shared.opts.log.debug({ endpoint: c.endpoint, err }, 'heartbeat connection error')
}

function onSocketConnect (this: ConnSocket): void {
  ownerOf(this)?.connected()
}

function onSocketClose (this: ConnSocket): void {
  ownerOf(this)?.closed()
}

function onTimer (c: Conn): void {
  const due = c.due
  c.timer = null
  c.due = null
  c.timerAt = null
  if (due !== null) afterReads(() => c.fired(due))
}

export function createHeartbeatConns (opts: HeartbeatConnsOptions): HeartbeatConns {
  const shared: Shared = { opts, conns: new Map() }
  const { conns } = shared
  return {
    connect (endpoint) {
      if (conns.has(endpoint)) return
      if (!ENDPOINT.test(endpoint)) throw new RangeError(`not a tcp://host:port endpoint: ${JSON.stringify(endpoint)}`)
      const { host, port } = endpointTarget(endpoint)
      if (port < 1 || port > 65535) throw new RangeError(`port out of range in ${JSON.stringify(endpoint)}`)
      if (endpoint.startsWith('tcp://[') && isIP(host) !== 6) throw new RangeError(`not an IPv6 address in ${JSON.stringify(endpoint)}`)
      const c = new Conn(shared, endpoint, host, port)
      conns.set(endpoint, c)
      c.open()
    },

    disconnect (endpoint) {
      conns.get(endpoint)?.remove()
    },

    has: (endpoint) => conns.has(endpoint),
    endpoints: () => conns.keys(),
    get size () { return conns.size },

    close () {
      for (const c of [...conns.values()]) c.remove()
    }
  }
}
