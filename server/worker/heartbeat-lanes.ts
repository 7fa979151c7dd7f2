// The worker's connections to heartbeat endpoints, in two lanes (see HeartbeatLane), each a set
// of heartbeat-conns.ts connections that keep reconnecting on their own. It owns those sockets
// and their settings; which endpoints to connect to, and when, is worker.ts's to decide. An
// endpoint is in at most one lane.
import { HANDSHAKE_TIMEOUT_MS, HEARTBEAT_SUB_MAX_BYTES, HEARTBEAT_SUB_MAX_MESSAGE_BYTES } from '../protocol/socket-limits.js'
import type { Log } from '../common/log.js'
import { createHeartbeatConns, type HeartbeatConns } from './heartbeat-conns.js'
import { DISCONNECT_QUIET_MS, type Liveness } from './liveness.js'

/** A dropped provider is reconnected after 100–200 ms (up to one interval of jitter, as libzmq
 *  does), doubling up to 1 s while the provider stays away: a restarted provider is seen
 *  again within about a second, and 10,000 dead endpoints cost at most ~10,000 connect
 *  attempts a second. The 100 ms floor is what makes DISCONNECT_QUIET_MS sound. */
const SUB_RECONNECT_MS = DISCONNECT_QUIET_MS
const SUB_RECONNECT_MAX_MS = 1000

/** ZMTP heartbeats on the `pinged` lane: each provider connection is PINGed every second and
 *  dropped after 5 s without any traffic, which tears down half-open TCP (a provider host that
 *  vanished without a FIN) so that it is reconnected and the provider is reported down
 *  'disconnected'. Providers with intervals under ~1.7 s are caught by the silence rule
 *  first (3 intervals < 5 s). The TTL asks the provider's side to drop a vanished worker
 *  likewise. Caveat: a peer too old to answer ZMTP 3.1 PINGs (libzmq < 4.2) that also heartbeats
 *  less often than every 5 s would be disconnected and reconnected every 5 s. */
const ZMTP_HEARTBEAT_INTERVAL_MS = 1000
const ZMTP_HEARTBEAT_TIMEOUT_MS = 5000
/** The same 5 s bound the ZMTP handshake (socket-limits.ts; libzmq's default is 30 s), which
 *  heartbeats do not cover: a provider frozen while the worker connects accepts TCP in its
 *  kernel but never greets. */
const ZMTP_HANDSHAKE_TIMEOUT_MS = HANDSHAKE_TIMEOUT_MS

/**
 * Why two lanes. A ZMTP heartbeat is a PING written and a PONG read on every connection every
 * second: for 10,000 providers at 1 s, as many extra syscalls as the heartbeats themselves.
 * (Under libzmq, which the worker used before heartbeat-conns.ts, it was worse: every PONG
 * scanned the I/O thread's whole timer list, and 10,000 pinged providers saturated it.) So ZMTP
 * heartbeats go only where they detect something sooner than the silence rule: providers whose
 * silence bound (livenessMisses × interval) exceeds their 5 s timeout, on the `pinged` lane. The
 * others, on the `plain` lane, are caught silent within that bound anyway; for them a vanished
 * host's half-open connection is torn down by TCP keepalive (kernel timers, no userland cost),
 * so that it is reconnected: 2 s idle, then probes 1 s apart. Node sets the probe interval (1 s)
 * and count (10) itself, so that takes 12 s where libzmq's 3 probes took 5 s; a vanished host
 * that comes back answers the next probe with a reset, and is reconnected at once either way.
 */
export type HeartbeatLane = 'plain' | 'pinged'
const LANES = ['plain', 'pinged'] as const
const TCP_KEEPALIVE_IDLE_MS = 2000

/** A connect to a blackholed host is abandoned after 2 s and retried, instead of the kernel's
 *  ~2 minutes of SYN retries, so a provider whose host comes back is seen within seconds. */
const SUB_CONNECT_TIMEOUT_MS = 2000

/** The heartbeat topic (README.md › The heartbeat protocol). */
export const HB_TOPIC = Buffer.from('hb', 'ascii')

/** The lane of every watched endpoint (or of those of `only` that are watched): ZMTP heartbeats
 *  only where they beat the silence rule. */
export function wantedLanes (liveness: Liveness, livenessMisses: number, only?: Iterable<string>): Map<string, HeartbeatLane> {
  const want = new Map<string, HeartbeatLane>()
  for (const endpoint of only ?? liveness.endpoints()) {
    const longest = liveness.longestInterval(endpoint)
    if (longest > 0) want.set(endpoint, longest * livenessMisses > ZMTP_HEARTBEAT_TIMEOUT_MS ? 'pinged' : 'plain')
  }
  return want
}

export interface HeartbeatLanesOptions {
  log: Log
  onHandshake: (endpoint: string) => void
  onDisconnect: (endpoint: string) => void
  onMessage: (endpoint: string, frames: Buffer[]) => void
}

export interface HeartbeatLanes {
  /** Closes every connection (or every one to an endpoint of `only`) that is not wanted in its
   *  lane, with no onDisconnect, and returns their endpoints. */
  retain: (want: ReadonlyMap<string, HeartbeatLane>, only?: Iterable<string>) => string[]
  /** The wanted endpoints with no connection yet. */
  missing: (want: ReadonlyMap<string, HeartbeatLane>) => Array<[string, HeartbeatLane]>
  /** Starts connecting to `endpoint` in `lane`; throws a RangeError if it is not a usable
   *  `tcp://host:port` (heartbeat-conns.ts). */
  connect: (endpoint: string, lane: HeartbeatLane) => void
  /** Established connections and connections being (re)made. */
  readonly size: number
  /** Closes every connection and returns their endpoints. */
  close: () => string[]
}

export function openHeartbeatLanes (opts: HeartbeatLanesOptions): HeartbeatLanes {
  const lanes: Record<HeartbeatLane, HeartbeatConns> = { plain: openLane('plain', opts), pinged: openLane('pinged', opts) }
  return {
    retain (want, only) {
      const dropped: string[] = []
      for (const name of LANES) {
        for (const endpoint of only === undefined ? [...lanes[name].endpoints()] : only) {
          if (want.get(endpoint) === name || !lanes[name].has(endpoint)) continue
          lanes[name].disconnect(endpoint)
          dropped.push(endpoint)
        }
      }
      return dropped
    },
    missing: (want) => [...want].filter(([endpoint, name]) => !lanes[name].has(endpoint)),
    connect (endpoint, lane) { lanes[lane].connect(endpoint) },
    get size () { return lanes.plain.size + lanes.pinged.size },
    close () {
      const closed: string[] = []
      for (const name of LANES) {
        closed.push(...lanes[name].endpoints())
        lanes[name].close()
      }
      return closed
    }
  }
}

function openLane (name: HeartbeatLane, opts: HeartbeatLanesOptions): HeartbeatConns {
  return createHeartbeatConns({
    topic: HB_TOPIC,
    maxFrameBytes: HEARTBEAT_SUB_MAX_BYTES,
    maxMessageBytes: HEARTBEAT_SUB_MAX_MESSAGE_BYTES,
    connectTimeoutMs: SUB_CONNECT_TIMEOUT_MS,
    handshakeTimeoutMs: ZMTP_HANDSHAKE_TIMEOUT_MS,
    reconnectMs: SUB_RECONNECT_MS,
    reconnectMaxMs: SUB_RECONNECT_MAX_MS,
    ...(name === 'pinged'
      ? { ping: { intervalMs: ZMTP_HEARTBEAT_INTERVAL_MS, timeoutMs: ZMTP_HEARTBEAT_TIMEOUT_MS, ttlMs: ZMTP_HEARTBEAT_TIMEOUT_MS } }
      : { keepaliveIdleMs: TCP_KEEPALIVE_IDLE_MS }),
    log: opts.log,
    onHandshake: opts.onHandshake,
    onDisconnect: opts.onDisconnect,
    onMessage: opts.onMessage
  })
}
