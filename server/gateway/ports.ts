// The interfaces the gateway's parts share: what they need from the leader. They live here, not
// in app.ts, so that the routes, the watch hub and the leader client import this file and app.ts
// imports them, never the other way round (`npm run cycles` fails on an import cycle). Types only:
// this file must never import a gateway module.
import type { Change } from '../protocol/model.js'
import type { TokenOp, TokenResult, WriteOp, WriteResult } from '../protocol/messages.js'

/** What the metrics read from the leader client (leader-client.ts stats); absent in tests that
 *  build a gateway on a stand-in leader. */
export interface LeaderClientStats {
  readonly feedBadFrames: number
  readonly linkBadFrames: number
  readonly leaderHead: number
  readonly snapshots: number
  readonly repairs: number
}

/** What the gateway needs from the leader; server/gateway/leader-client.ts implements it. */
export interface LeaderPort {
  readonly connected: boolean
  /** Rejects with LeaderUnavailableError (code ROSTER_ERR_LEADER_UNAVAILABLE) when there is no leader or it did not answer in time. */
  write: (op: WriteOp) => Promise<WriteResult>
  /** The leader's durable change log after `revision` (for `since` older than the replica's ring). Rejects LeaderUnavailableError. */
  changesSince: (revision: number, limit: number) => Promise<{ available: boolean, changes: Change[] }>
  /** Creates or revokes a token; resolves with the leader's answer and the epoch it answered in
   *  (the token table reaches that generation of that epoch soon after). Rejects LeaderUnavailableError. */
  tokenWrite: (op: TokenOp) => Promise<{ epoch: number, result: TokenResult }>
  /** The leader client's counts, for GET /metrics (metrics.ts); a stand-in leader has none. */
  readonly stats?: LeaderClientStats
}
