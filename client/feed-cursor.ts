// The rule that makes a watch deliver every change exactly once and in order across
// reconnections: the cursor is the revision of the last message taken from the feed, the next
// connection resumes with `since` = cursor, and whatever a gateway sends at or below the cursor
// again is dropped. Pure: it decides, the watch (watch.ts) does the I/O.
import type { WatchMessage } from './types.js'

export interface Admitted {
  /** The message to hand to the caller, or null to drop it. */
  message: WatchMessage | null
  /** The cursor after this message. */
  cursor: number | null
}

/**
 * Decides what to do with one parsed frame, given the cursor before it (null before the first
 * message of a watch started without `since`) and whether anything was delivered yet.
 *
 * - An event at or below the cursor was delivered already (a gateway that resumed from an older
 *   revision, a replay that overlapped the live stream): dropped.
 * - A snapshot is always delivered and moves the cursor to its revision, even backwards: it is
 *   the registry as that gateway has it, and what follows continues from there. One that
 *   arrives after anything was delivered replaces it, so it carries `reset: true` whatever the
 *   gateway wrote (a gateway sends it that way when it answers a `since` with a snapshot).
 * - Anything else (a message type this client does not know) is dropped, so that a newer
 *   gateway may add types without breaking older clients.
 */
export function admit (cursor: number | null, delivered: boolean, frame: unknown): Admitted {
  if (typeof frame !== 'object' || frame === null) return { message: null, cursor }
  const m = frame as { type?: unknown, revision?: unknown }
  if (typeof m.revision !== 'number' || !Number.isSafeInteger(m.revision) || m.revision < 0) return { message: null, cursor }
  if (m.type === 'snapshot') {
    const snapshot = frame as WatchMessage & { type: 'snapshot' }
    return { message: delivered && snapshot.reset !== true ? { ...snapshot, reset: true } : snapshot, cursor: m.revision }
  }
  if (m.type === 'event') {
    if (cursor !== null && m.revision <= cursor) return { message: null, cursor }
    return { message: frame as WatchMessage, cursor: m.revision }
  }
  return { message: null, cursor }
}
