// The gateway's HTTP connection limits: a cap on open connections and the timeouts that reclaim
// idle or dribbling ones. Without them, idle connections exhausted the process's file
// descriptors and the gateway could not reconnect to its leader (issue 9: 19,890 idle
// connections, writes 503 for 18 s). The cap leaves descriptors for the leader link and Postgres.
import { readFileSync } from 'node:fs'

export interface HttpLimits {
  /** Open connections (WebSockets included); Node closes new ones at once beyond it. */
  maxConnections: number
  /** A connection silent this long while a request is in progress, or before its first byte,
   *  is closed (Node's `server.timeout`, Fastify `connectionTimeout`). */
  connectionTimeoutMs: number
  /** An idle keep-alive connection between requests is closed after this. */
  keepAliveTimeoutMs: number
  /** The request line and headers must arrive within this (slowloris). */
  headersTimeoutMs: number
  /** The whole request, body included, must arrive within this. */
  requestTimeoutMs: number
  /** How often Node looks for connections past headersTimeoutMs / requestTimeoutMs. */
  connectionsCheckingIntervalMs: number
}

/** 30 s of silence: the longest a healthy exchange is quiet is a `?minRevision` wait (5 s) or a
 *  write waiting for its commit and for the replica (4 s + 2 s); a connection that never sends a
 *  byte is gone after it. WebSockets are not affected: the upgrade clears the socket's timeout,
 *  and the feed's own ping (watch-hub.ts, 30 s) finds dead ones. */
export const CONNECTION_TIMEOUT_MS = 30_000
/** 72 s, Fastify's default: longer than the 60 s idle timeout of common load balancers, so
 *  that the balancer, never the gateway, closes an idle pooled connection (otherwise a request
 *  it sends as the gateway closes fails with 502). The connection cap bounds what idle
 *  connections can hold meanwhile. */
export const KEEP_ALIVE_TIMEOUT_MS = 72_000
/** 10 s for a request line and at most a few KiB of headers: a real client sends them in one
 *  packet; a slowloris dribbling a header every few seconds is cut off. */
export const HEADERS_TIMEOUT_MS = 10_000
/** 30 s for the whole request: the largest body (64 KiB) arrives in 6.5 s even at 10 KB/s. */
export const REQUEST_TIMEOUT_MS = 30_000
/** Node's default is 30 s, which would let a dribbling connection live 40 s instead of 10;
 *  one pass over every connection each second costs microseconds per thousand connections. */
export const CONNECTIONS_CHECKING_INTERVAL_MS = 1000

/** File descriptors kept out of the connection cap for everything else the process holds:
 *  the ZeroMQ context (epoll, an eventfd per socket and I/O thread: ~10), the leader link's
 *  DEALER and SUB (a TCP connection each per leader tried), the Postgres pool (10) and, in
 *  `roster up`, the embedded database's files (tens), stdio, libuv's own (~20) and the
 *  listening socket: about 100 in all, doubled, and rounded up. */
export const RESERVED_DESCRIPTORS = 256
/** Used when the descriptor limit cannot be read (not Linux) or is unlimited: a connection
 *  costs tens of KiB, so 10,000 of them stay in the hundreds of MiB. */
export const FALLBACK_MAX_CONNECTIONS = 10_000
/** Never below this, even with a tiny descriptor limit: the gateway must still serve someone. */
const MIN_MAX_CONNECTIONS = 64

/** The soft RLIMIT_NOFILE from /proc/self/limits' text, or null (missing, or unlimited). Node
 *  raises the soft limit to the hard one at startup, so this is what the process really has. */
export function parseOpenFilesLimit (limitsText: string): number | null {
  const line = limitsText.split('\n').find((l) => l.startsWith('Max open files'))
  const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0]
  if (soft === undefined || !/^\d+$/.test(soft)) return null
  return Number(soft)
}

/** The default connection cap: the descriptor limit less RESERVED_DESCRIPTORS (a soft limit of
 *  20,000 gives 19,744), or FALLBACK_MAX_CONNECTIONS when the limit is unknown. */
export function defaultMaxConnections (openFilesLimit: number | null): number {
  if (openFilesLimit === null) return FALLBACK_MAX_CONNECTIONS
  return Math.max(MIN_MAX_CONNECTIONS, openFilesLimit - RESERVED_DESCRIPTORS)
}

export function readOpenFilesLimit (): number | null {
  try {
    return parseOpenFilesLimit(readFileSync('/proc/self/limits', 'utf8'))
  } catch {
    return null
  }
}

export function defaultHttpLimits (): HttpLimits {
  return {
    maxConnections: defaultMaxConnections(readOpenFilesLimit()),
    connectionTimeoutMs: CONNECTION_TIMEOUT_MS,
    keepAliveTimeoutMs: KEEP_ALIVE_TIMEOUT_MS,
    headersTimeoutMs: HEADERS_TIMEOUT_MS,
    requestTimeoutMs: REQUEST_TIMEOUT_MS,
    connectionsCheckingIntervalMs: CONNECTIONS_CHECKING_INTERVAL_MS
  }
}
