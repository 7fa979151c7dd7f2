// A scripted leader for the worker's tests: a real ROUTER on loopback that speaks the leader's
// side of the worker protocol (PONG, ASSIGN, ACK) under the test's control, and records every
// message it receives. It owns that socket; it has no store, no assignment logic and no opinion.
import { Router } from 'zeromq'
import { decode, encode, ProtocolError } from '../../server/protocol/frames.js'
import { Inbound, type Body, type Message, type Observation, type Task, type Verb } from '../../server/protocol/messages.js'
import { createSendQueue } from '../../server/protocol/send-queue.js'

export interface Received {
  /** Monotonic-anchored wall clock, as the worker's lastSeen (performance.timeOrigin + now()). */
  at: number
  msg: Message
}

export interface ScriptedLeaderOptions {
  epoch?: number
  /** Tasks sent as ASSIGN in answer to READY. */
  tasks?: Task[]
  /** ACK every REPORT at once (default true). */
  autoAck?: boolean
}

export interface ScriptedLeader {
  readonly endpoint: string
  readonly received: Received[]
  /** Changes what the leader answers with from now on. */
  epoch: number
  tasks: Task[]
  autoAck: boolean
  /** false: a hung leader that reads and records but answers nothing. */
  answering: boolean
  /** Sends a message to the worker (the last peer that spoke), whatever `answering` says. */
  send: <V extends Verb>(verb: V, body: Body<V>) => void
  /** Sends raw frames to the worker, for bad-frame tests. */
  sendRaw: (frames: Buffer[]) => void
  /** Sends the complete list `tasks` (which also becomes the answer to READY). */
  assign: (tasks: Task[], epoch?: number) => void
  /** Sends a delta: `tasks` added or replaced, `removed` dropped (`tasks` is left as it is). */
  delta: (tasks: Task[], removed: string[]) => void
  /** Acts out a lost ASSIGN: its seq is used, nothing is sent. PONG says the last seq used. */
  loseAssign: () => void
  /** Every REPORT received, oldest first, with its arrival time. */
  reports: () => Array<{ at: number, seq: number, observations: Observation[] }>
  /** Received messages of one verb, oldest first. */
  messages: <V extends Verb>(verb: V) => Array<{ at: number, body: Body<V> }>
  close: () => void
}

export const now = (): number => Math.floor(performance.timeOrigin + performance.now())

export async function startScriptedLeader (opts: ScriptedLeaderOptions = {}): Promise<ScriptedLeader> {
  const router = new Router({ linger: 0, handover: true })
  await router.bind('tcp://127.0.0.1:*')
  const queue = createSendQueue(router, () => {})
  let peer: Buffer | null = null

  /** The seq of the last ASSIGN sent (or lost, loseAssign). */
  let assignSeq = 0
  const leader: ScriptedLeader = {
    endpoint: router.lastEndpoint as string,
    received: [],
    epoch: opts.epoch ?? 1,
    tasks: opts.tasks ?? [],
    autoAck: opts.autoAck ?? true,
    answering: true,
    send (verb, body) {
      if (peer !== null) queue.send([peer, ...encode(verb, body)])
    },
    sendRaw (frames) {
      if (peer !== null) queue.send([peer, ...frames])
    },
    assign (tasks, epoch) {
      leader.tasks = tasks
      leader.send('ASSIGN', { epoch: epoch ?? leader.epoch, seq: ++assignSeq, tasks })
    },
    delta (tasks, removed) {
      leader.send('ASSIGN', { epoch: leader.epoch, seq: ++assignSeq, delta: true, tasks, removed })
    },
    loseAssign () {
      assignSeq++
    },
    reports: () => leader.messages('REPORT').map(({ at, body }) => ({ at, seq: body.seq, observations: body.observations })),
    messages: <V extends Verb>(verb: V) => leader.received
      .filter((r) => r.msg.verb === verb)
      .map((r) => ({ at: r.at, body: r.msg.body as Body<V> })),
    close: () => router.close()
  }

  async function readLoop (): Promise<void> {
    for await (const [identity, ...frames] of router) {
      if (identity === undefined) continue
      let msg: Message
      try {
        msg = decode(frames, Inbound.leaderRouter)
      } catch (err) {
        if (err instanceof ProtocolError) continue
        throw err
      }
      leader.received.push({ at: now(), msg })
      peer = identity
      if (!leader.answering) continue
      if (msg.verb === 'PING') leader.send('PONG', { epoch: leader.epoch, revision: 0, assigned: assignSeq })
      else if (msg.verb === 'READY') leader.send('ASSIGN', { epoch: leader.epoch, seq: ++assignSeq, tasks: leader.tasks })
      else if (msg.verb === 'REPORT' && leader.autoAck) leader.send('ACK', { epoch: leader.epoch, seq: msg.body.seq })
    }
  }
  readLoop().catch((err: unknown) => { console.error('scripted leader read loop failed', err) })
  return leader
}

/** A task for a provider that has never been seen, as a leader assigns a fresh registration. */
export function pendingTask (providerId: string, heartbeat: string, heartbeatIntervalMs: number): Task {
  return { providerId, heartbeat, heartbeatIntervalMs, state: 'pending', lastSeen: null }
}
