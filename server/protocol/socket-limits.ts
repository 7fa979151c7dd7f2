// What any one peer may cost a Roster socket: the largest frame it accepts (libzmq drops the
// connection of a peer that announces a bigger one, before allocating it) and how long a new
// connection may take to finish its ZMTP (and CURVE) handshake. Every socket of every role takes
// its options from here, and each bound is derived below from the largest valid message, with
// room to spare, so that no legitimate message comes near it.
//
// The sizes start from the largest valid provider in JSON. A string field of n UTF-16 code units
// costs at most 6n bytes (a control character or lone surrogate is escaped as \uXXXX):
//   meta 32 × (64 + 512) × 6 = 110,592; tags 32 × 64 × 6 = 12,288; the other fields are
//   ASCII by their patterns (host 253, heartbeat 300, id 128, check path 1024) or short: < 4 KB.
// So one provider (or change, or WRITE) is under 128 KiB.
const KiB = 1024
const MiB = 1024 * KiB

/** The JSON of the largest valid provider (see above). */
export const MAX_PROVIDER_BYTES = 128 * KiB

/** A SNAPSHOT (and an EVENTS answer) is sent in pages of about this many bytes of providers
 *  (changes), plus at most one provider past it: a registry of 500,000 typical providers
 *  (~500 bytes each) is ~250 pages, instead of one 250 MB frame. */
export const PAGE_BYTES = 1 * MiB

/** ASSIGN pages carry at most this many tasks. A task is ASCII by the registration's patterns:
 *  id 128 + heartbeat 300, or host 253 + path 1024, plus ~250 of keys and numbers: < 2 KB, so a
 *  page is under 2 MB. A READY carries at most as many observations (also < 2 KB each: id 128,
 *  detail 256 × 6, ~150 more), as a REPORT already does. */
export const PAGE_ITEMS = 1000

/** Leader ROUTER: the largest inbound messages are READY and REPORT pages (1000 × 2 KB = 2 MB)
 *  and a WRITE (at most BATCH_ITEMS writes, messages.ts: < 3 MiB). A SEEN page is < 150 KB. */
export const LEADER_ROUTER_MAX_BYTES = 4 * MiB
/** Leader PUB: receives only subscriptions, and followers subscribe to everything (""). */
export const LEADER_PUB_MAX_BYTES = 1 * KiB
/** Gateway DEALER: SNAPSHOT and EVENTS pages (PAGE_BYTES + one provider), RESULT (at most
 *  BATCH_ITEMS results, < 3 MiB). */
export const GATEWAY_DEALER_MAX_BYTES = 4 * MiB
/** Gateway SUB: an EVENT carries at most BATCH_ITEMS changes (< 3 MiB); BEAT is tiny, and a
 *  LAST_SEEN page < 150 KB. */
export const GATEWAY_SUB_MAX_BYTES = 4 * MiB
/** Worker DEALER: ASSIGN pages (< 2 MB); ACK and PONG are tiny. */
export const WORKER_DEALER_MAX_BYTES = 4 * MiB
/** Worker heartbeat SUB: `hb` and an id of at most 128 bytes; further frames are reserved
 *  (server/protocol/README.md §6), so they get some room too. */
export const HEARTBEAT_SUB_MAX_BYTES = 1 * KiB
/** The worker's heartbeat connections (worker/heartbeat-conns.ts) also bound a whole message,
 *  which libzmq does not (a peer could send frames with MORE set for ever): 16 frames of the
 *  largest size, far above `hb`, an id and a few reserved frames. */
export const HEARTBEAT_SUB_MAX_MESSAGE_BYTES = 16 * HEARTBEAT_SUB_MAX_BYTES

/** `items` in pieces of at most `size`, in order (none for no items): how a role splits what
 *  one message may not carry (PAGE_ITEMS, messages.ts BATCH_ITEMS) into several. */
export function chunks<T> (items: readonly T[], size: number): T[][] {
  const out: T[][] = []
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size))
  return out
}

/** A connection that has not finished its handshake after 5 s is dropped (libzmq's default is
 *  30 s): a real peer on a LAN needs milliseconds, CURVE included, and a port scanner or a frozen
 *  process cannot hold connections open by never greeting. */
export const HANDSHAKE_TIMEOUT_MS = 5000

/** The options every Roster socket sets: its largest frame and the handshake bound. */
export function limitOptions (maxMessageBytes: number): { maxMessageSize: number, handshakeInterval: number } {
  return { maxMessageSize: maxMessageBytes, handshakeInterval: HANDSHAKE_TIMEOUT_MS }
}
