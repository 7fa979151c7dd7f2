// The leader's reads of the change log (SINCE_REQ), run MAX_LOG_READS at a time in arrival
// order; beyond MAX_QUEUED_LOG_READS waiting, a request is dropped (counted): its gateway times out
// and retries or sends its feed client a reset snapshot. However many clients resume, their reads
// hold one pool connection and a bounded share of Postgres, and commits never queue behind them.
// One per leader process, across its terms; the caller words the answer (term.ts).
import type { Log } from '../common/log.js'
import type { RegistryStore } from '../store/registry-store.js'

/** Change-log reads at once: one. A page (≤ 10,000 rows, usually 1,000) reads in milliseconds,
 *  so a queue of them drains quickly, while commits keep the rest of the pool and of Postgres. */
const MAX_LOG_READS = 1
/** SINCE_REQs waiting beyond this are dropped: 64 pages of 1,000 changes are a few seconds of
 *  reads, and a request waiting longer would time out at its gateway (2 s) anyway. */
const MAX_QUEUED_LOG_READS = 64

export type ChangesSince = Awaited<ReturnType<RegistryStore['changesSince']>>

export interface ChangeLogReads {
  /** Reads the changes after `revision` (at most `limit`) when its turn comes, then calls `done`;
   *  a read that fails is logged and not answered (the gateway retries). */
  read: (revision: number, limit: number, done: (read: ChangesSince) => void) => void
}

export function createChangeLogReads (store: RegistryStore, log: Log): ChangeLogReads {
  let running = 0
  const waiting: Array<() => void> = []
  let dropped = 0
  return {
    read (revision, limit, done) {
      const run = (): void => {
        running++
        store.changesSince(revision, limit).then(
          done,
          (err) => log.warn({ err }, 'could not read the change log; the gateway will retry')
        ).finally(() => {
          running--
          waiting.shift()?.()
        })
      }
      if (running < MAX_LOG_READS) return run()
      if (waiting.length >= MAX_QUEUED_LOG_READS) {
        // Logged at the first drop and every thousandth: a flood of requests is not a flood of lines.
        if (dropped++ % 1000 === 0) log.warn({ dropped, queued: waiting.length }, 'too many change-log reads waiting; dropping requests')
        return
      }
      waiting.push(run)
    }
  }
}
