// Serializes writes to one ZeroMQ socket. zeromq 6 allows a single send in flight per socket and
// throws EBUSY synchronously on a second, so every role funnels its sends through one queue.
// A failed send (a timeout towards a vanished peer) is reported to `onError` and does not stop
// the queue: the protocol above recovers lost messages by retry or by sequence repair.
import type { Socket } from 'zeromq'

type Writable = Socket & { send: (msg: Buffer[]) => Promise<void> }

export interface SendQueue {
  send: (frames: Buffer[]) => void
  /** Resolves once everything queued so far has been handed to libzmq (or failed). */
  drain: () => Promise<void>
  readonly length: number
}

/** `maxQueued` bounds memory when the peer does not keep up: the oldest message is dropped. */
export function createSendQueue (
  socket: Writable,
  onError: (err: unknown) => void,
  maxQueued = 100_000
): SendQueue {
  const queue: Buffer[][] = []
  let running: Promise<void> | null = null

  async function pump (): Promise<void> {
    while (queue.length > 0) {
      const frames = queue.shift() as Buffer[]
      if (socket.closed) { queue.length = 0; return }
      try {
        await socket.send(frames)
      } catch (err) {
        onError(err)
      }
    }
  }

  // Restarts the pump if a send slipped in between the loop's last check and its end.
  function kick (): void {
    if (running != null) return
    running = pump().finally(() => {
      running = null
      if (queue.length > 0 && !socket.closed) kick()
    })
  }

  return {
    send (frames) {
      if (socket.closed) return
      if (queue.length >= maxQueued) queue.shift()
      queue.push(frames)
      kick()
    },
    async drain () {
      while (running != null) await running
    },
    get length () { return queue.length }
  }
}
