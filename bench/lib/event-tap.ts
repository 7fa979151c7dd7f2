// A SUB on the leader's event PUB (`--bind` port + 1, server/protocol/README.md), the stream every
// gateway subscribes to, in the runner's own process. The detection benchmark uses it only to
// split "the leader decided" → "the client has the frame" into the commit (until the EVENT is
// published) and the fan-out (gateway replica, watch hub, WebSocket). Being in the runner, its
// stamps and the WebSocket's come from one process and one clock: a tap in a process of its own
// woke up later than the gateway on a busy machine and made the fan-out look negative.
import { Subscriber } from 'zeromq'
import { curveClientOptions, type ClusterKeys } from '../../server/protocol/cluster-keys.js'
import { now } from './children.js'

export interface EventTap {
  /** When the EVENT carrying `revision` reached the tap (NaN if it did not). */
  publishedAt: (revision: number) => number
  readonly seen: number
  close: () => void
}

interface EventBody { changes?: Array<{ revision?: unknown }> }

export function openEventTap (endpoint: string, clusterKeys?: ClusterKeys): EventTap {
  const sub = new Subscriber({ linger: 0, reconnectInterval: 100, ...curveClientOptions(clusterKeys) })
  sub.subscribe('EVENT')
  sub.connect(endpoint)
  const at = new Map<number, number>()
  void (async () => {
    for await (const [verb, body] of sub) {
      const t = now()
      if (verb?.toString('latin1') !== 'EVENT' || body === undefined) continue
      try {
        for (const change of (JSON.parse(body.toString('utf8')) as EventBody).changes ?? []) {
          if (typeof change.revision === 'number') at.set(change.revision, t)
        }
      } catch {
        // not ours to judge; the gateways' decoder is
      }
    }
  })().catch(() => {}) // ends when the socket closes
  return {
    publishedAt: (revision) => at.get(revision) ?? NaN,
    get seen () { return at.size },
    close: () => { if (!sub.closed) sub.close() }
  }
}
