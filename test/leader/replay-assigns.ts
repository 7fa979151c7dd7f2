// What a worker's task list is after the ASSIGNs it got, for the leader's tests: the protocol's
// rule (server/protocol/README.md §7) played back without a worker.
import type { Body, Task } from '../../server/protocol/messages.js'

/** The task list a worker holds after `assigns`, applied as the protocol says (README §7): a
 *  complete list replaces it once its last page came, a delta changes it. `onEach` sees the
 *  list's size after each message. Seqs are checked: a gap would be a leader bug. */
export function replayAssigns (assigns: ReadonlyArray<Body<'ASSIGN'>>, onEach?: (size: number) => void): Map<string, Task> {
  let list = new Map<string, Task>()
  let pages: Task[] = []
  let seq = 0
  for (const body of assigns) {
    const starts = body.delta !== true && (body.page ?? 0) === 0
    if (!starts && body.seq !== seq + 1) throw new Error(`ASSIGN seq ${body.seq} after ${seq}`)
    seq = body.seq
    if (body.delta === true) {
      for (const id of body.removed ?? []) list.delete(id)
      for (const t of body.tasks) list.set(t.providerId, t)
    } else {
      if (starts) pages = []
      pages.push(...body.tasks)
      if (body.more !== true) list = new Map(pages.map((t) => [t.providerId, t]))
    }
    onEach?.(list.size)
  }
  return list
}
