// The consistency rule every read passes through: no answer before the replica holds a
// snapshot, and `?minRevision=N` waits (bounded) for the replica to reach N so that a client
// reads its own writes through any gateway. It only waits and throws; it never reads data.
import { NotReadyError, RevisionTimeoutError } from './errors.js'
import type { Replica } from './replica.js'

/** 5 s: a write reaches every gateway's replica in one PUB hop (milliseconds) or, after a gap,
 *  one repair round trip; a replica 5 s behind is broken or partitioned and should say so
 *  (504) rather than hold the client's request open. */
export const MIN_REVISION_WAIT_MS = 5000

export type ReadGate = (minRevision: number | undefined) => Promise<void>

export function createReadGate (replica: Replica, waitMs = MIN_REVISION_WAIT_MS): ReadGate {
  return async function readGate (minRevision) {
    if (!replica.ready) throw new NotReadyError()
    if (minRevision === undefined || replica.revision >= minRevision) return
    if (!(await replica.waitForRevision(minRevision, waitMs))) {
      throw new RevisionTimeoutError(minRevision, replica.revision, waitMs)
    }
  }
}
