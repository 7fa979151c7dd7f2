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
// state and a timer; every read lands in one buffer shared by all sockets (the codec copies out
// the little it keeps), so idle connections hold no read buffers at all.
import { isIP, connect as tcpConnect, type Socket } from 'node:net'
import { HEARTBEAT_ENDPOINT_PATTERN } from '../protocol/model.js'
import { endpointTarget } from '../protocol/targets.js'
import { afterReads } from '../shared/after-reads.js'
import type { Log } from '../shared/log.js'
import { createZmtpSub, type ZmtpPing, type ZmtpSub } from './zmtp.js'

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

interface Conn {
  readonly endpoint: string
  readonly host: string
  readonly port: number
  socket: Socket | null
  codec: ZmtpSub | null
  /** The one pending timer: reconnect, connect timeout, handshake timeout, or the codec's next
   *  wake (they never overlap), and the time it was armed for (the codec's wake only). */
  timer: NodeJS.Timeout | null
  timerAt: number | null
  /** The current reconnect base: reconnectMs after a connection, doubling while attempts fail. */
  backoffMs: number
  /** A refusal was logged since the last handshake (one warning per bad endpoint, not one per
   *  attempt). */
  warned: boolean
  removed: boolean
}

export function createHeartbeatConns (opts: HeartbeatConnsOptions): HeartbeatConns {
  const { log } = opts
  const conns = new Map<string, Conn>()

  function clearTimer (c: Conn): void {
    if (c.timer !== null) clearTimeout(c.timer)
    c.timer = null
    c.timerAt = null
  }

  /** Runs `fn` after `ms`, after that turn's socket reads (shared/after-reads.ts): a stalled
   *  event loop must not time out a handshake or a PING whose answer is waiting to be read. */
  function after (c: Conn, ms: number, fn: () => void): void {
    clearTimer(c)
    c.timer = setTimeout(() => {
      c.timer = null
      c.timerAt = null
      afterReads(() => { if (!c.removed) fn() })
    }, Math.max(1, Math.ceil(ms)))
  }

  function open (c: Conn): void {
    let established = false
    const socket = tcpConnect({
      host: c.host,
      port: c.port,
      noDelay: true,
      ...(opts.keepaliveIdleMs !== undefined ? { keepAlive: true, keepAliveInitialDelay: opts.keepaliveIdleMs } : {}),
      onread: {
        buffer: READ_BUFFER,
        callback: (n) => {
          const codec = c.codec
          if (c.socket === socket && codec !== null) {
            codec.receive(READ_BUFFER.subarray(0, n), performance.now())
            armWake(c) // a peer's PING may have set a TTL
          }
          return true
        }
      }
    })
    c.socket = socket
    after(c, opts.connectTimeoutMs, () => { if (c.socket === socket && !established) socket.destroy() })
    socket.on('error', (err) => log.debug({ endpoint: c.endpoint, err }, 'heartbeat connection error'))
    socket.once('connect', () => {
      if (c.socket !== socket) return
      established = true
      c.backoffMs = opts.reconnectMs
      const codec = createZmtpSub({ topic: opts.topic, maxFrameBytes: opts.maxFrameBytes, maxMessageBytes: opts.maxMessageBytes, ping: opts.ping }, {
        send: (bytes) => {
          if (socket.writableLength > WRITE_BACKLOG_MAX_BYTES) fail(c, socket, codec, 'the peer does not read what we send')
          else socket.write(bytes)
        },
        ready: () => {
          clearTimer(c)
          c.warned = false
          opts.onHandshake(c.endpoint)
        },
        message: (frames) => { if (c.codec === codec) opts.onMessage(c.endpoint, frames) },
        fail: (reason) => fail(c, socket, codec, reason)
      })
      c.codec = codec
      socket.write(codec.hello())
      after(c, opts.handshakeTimeoutMs, () => {
        if (c.codec === codec && !codec.ready) fail(c, socket, codec, `no ZMTP handshake within ${opts.handshakeTimeoutMs} ms`)
      })
    })
    socket.once('close', () => {
      if (c.socket !== socket) return
      c.socket = null
      c.codec = null
      clearTimer(c)
      if (c.removed) return
      // Reported before the reconnect is scheduled: nothing from the next connection can come
      // before its own handshake, which is at least reconnectMs away.
      if (established) opts.onDisconnect(c.endpoint)
      const delay = c.backoffMs + Math.random() * opts.reconnectMs
      c.backoffMs = Math.min(c.backoffMs * 2, opts.reconnectMaxMs)
      after(c, delay, () => { if (c.socket === null) open(c) })
    })
  }

  function fail (c: Conn, socket: Socket, codec: ZmtpSub, reason: string): void {
    // Refusals before the handshake mean a misconfigured endpoint: worth a warning, once.
    if (!codec.ready && !c.warned) {
      c.warned = true
      log.warn({ endpoint: c.endpoint, reason }, 'heartbeat endpoint refused; retrying')
    } else {
      log.debug({ endpoint: c.endpoint, reason }, 'heartbeat connection closed')
    }
    // Done with this connection: nothing more of it reaches the worker, but its drop does
    // (on 'close').
    if (c.codec === codec) c.codec = null
    socket.destroy()
  }

  /** Keeps a timer at the codec's next wake (its PINGs and their timeouts). */
  function armWake (c: Conn): void {
    const codec = c.codec
    if (codec === null || !codec.ready) return
    const at = codec.wakeAt()
    if (at === null || (c.timerAt !== null && c.timerAt <= at)) return
    after(c, at - performance.now(), () => {
      if (c.codec !== codec) return
      codec.tick(performance.now())
      armWake(c)
    })
    c.timerAt = at
  }

  function remove (c: Conn): void {
    c.removed = true
    clearTimer(c)
    const socket = c.socket
    c.socket = null
    c.codec = null
    socket?.destroy()
    conns.delete(c.endpoint)
  }

  return {
    connect (endpoint) {
      if (conns.has(endpoint)) return
      if (!ENDPOINT.test(endpoint)) throw new RangeError(`not a tcp://host:port endpoint: ${JSON.stringify(endpoint)}`)
      const { host, port } = endpointTarget(endpoint)
      if (port < 1 || port > 65535) throw new RangeError(`port out of range in ${JSON.stringify(endpoint)}`)
      if (endpoint.startsWith('tcp://[') && isIP(host) !== 6) throw new RangeError(`not an IPv6 address in ${JSON.stringify(endpoint)}`)
      const c: Conn = { endpoint, host, port, socket: null, codec: null, timer: null, timerAt: null, backoffMs: opts.reconnectMs, warned: false, removed: false }
      conns.set(endpoint, c)
      open(c)
    },

    disconnect (endpoint) {
      const c = conns.get(endpoint)
      if (c !== undefined) remove(c)
    },

    has: (endpoint) => conns.has(endpoint),
    endpoints: () => conns.keys(),
    get size () { return conns.size },

    close () {
      for (const c of [...conns.values()]) remove(c)
    }
  }
}
