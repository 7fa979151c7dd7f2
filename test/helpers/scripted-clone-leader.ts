// A scripted leader for the gateway's Clone client: a real ROUTER on `port` and a real XPUB on
// `port + 1` (the leader's layout, protocol README §1) that answer PING, SNAPSHOT_REQ, SINCE_REQ
// and WRITE from an in-test change log, under the test's control. Tests decide what is published
// (or "lost": appended to the log only), when snapshots are answered and at which revision, and
// can send raw frames on either socket. The XPUB reports subscriptions, so a test knows when the
// client's SUB is connected instead of guessing. It records every request it receives.
import { Router, XPublisher } from 'zeromq'
import { decode, encode, ProtocolError } from '../../server/protocol/frames.js'
import { pubEndpoint } from '../../server/protocol/endpoints.js'
import { Inbound, type Body, type Message, type Verb, type WriteOp, type WriteResult } from '../../server/protocol/messages.js'
import type { Change, Provider } from '../../server/protocol/model.js'
import { createSendQueue } from '../../server/protocol/send-queue.js'
import { freeLeaderEndpoint } from '../../harness/ports.js'
import { waitFor } from '../../harness/wait-for.js'

export interface CloneLeaderRequest { at: number, msg: Message }

export interface ScriptedCloneLeader {
  /** The ROUTER endpoint (a follower's candidate); the PUB is on the next port. */
  readonly endpoint: string
  /** Every valid message received from followers, oldest first. */
  readonly received: CloneLeaderRequest[]
  /** Subscription messages seen on the XPUB (one per SUB that subscribed). */
  readonly subscriptions: number
  epoch: number
  /** false: a hung leader that reads and records but answers nothing. */
  answering: boolean
  /** false: SNAPSHOT_REQs are kept until releaseSnapshots(). */
  answerSnapshots: boolean
  /** false: WRITEs are recorded and never answered. */
  answerWrites: boolean
  /** What a WRITE gets; by default `{ ok: true, statusCode: 201, revision: head }`. */
  onWrite: ((op: WriteOp, requestId: string) => void) | null
  /** The change log: every change, revision 1 upwards. */
  readonly log: Change[]
  /** Changes at or below this revision are "pruned": SINCE_REQ below it answers available:false. */
  floor: number
  readonly head: number
  /** Adds a change to the log without publishing it (an EVENT lost on the way). */
  append: (change: Change) => void
  /** Adds a change to the log (if new) and publishes its EVENT with `epoch` (default: current). */
  publish: (change: Change, epoch?: number) => void
  beat: (revision?: number, epoch?: number) => void
  /** Raw frames on the PUB / to the last follower that spoke on the ROUTER. */
  publishRaw: (frames: Buffer[]) => void
  sendRaw: (frames: Buffer[]) => void
  reply: <V extends Verb>(verb: V, body: Body<V>) => void
  /** Answers the held SNAPSHOT_REQs with the registry as of `revision` (default: head). */
  releaseSnapshots: (revision?: number) => void
  /** The registry as of `revision`, replayed from the log. */
  providersAt: (revision: number) => Provider[]
  messages: <V extends Verb>(verb: V, from?: number) => Array<{ at: number, body: Body<V> }>
  /** Resolves once `n` subscriptions have reached the PUB. */
  subscribed: (n?: number) => Promise<void>
  close: () => void
}

/** Binds on `endpoint`, or on a free port pair. */
export async function startCloneLeader (opts: { endpoint?: string, epoch?: number, log?: Change[] } = {}): Promise<ScriptedCloneLeader> {
  const endpoint = opts.endpoint ?? await freeLeaderEndpoint()
  const router = new Router({ linger: 0, handover: true })
  const pub = new XPublisher({ linger: 0 })
  pub.verbosity = 'allSubs'
  await router.bind(endpoint)
  await pub.bind(pubEndpoint(endpoint))
  const routerOut = createSendQueue(router, () => {})
  const pubOut = createSendQueue(pub, () => {})
  let peer: Buffer | null = null
  let subscriptions = 0
  const heldSnapshots: string[] = []

  const leader: ScriptedCloneLeader = {
    endpoint,
    received: [],
    get subscriptions () { return subscriptions },
    epoch: opts.epoch ?? 1,
    answering: true,
    answerSnapshots: true,
    answerWrites: true,
    onWrite: null,
    log: [...(opts.log ?? [])],
    floor: 0,
    get head () { return leader.log.at(-1)?.revision ?? 0 },
    append (change) {
      if (leader.log.some((c) => c.revision === change.revision)) return
      if (change.revision !== leader.head + 1) throw new Error(`the scripted log must stay contiguous: ${change.revision} after ${leader.head}`)
      leader.log.push(change)
    },
    publish (change, epoch) {
      if (epoch === undefined || epoch >= leader.epoch) leader.append(change)
      pubOut.send(encode('EVENT', { epoch: epoch ?? leader.epoch, changes: [change] }))
    },
    beat (revision, epoch) {
      pubOut.send(encode('BEAT', { epoch: epoch ?? leader.epoch, revision: revision ?? leader.head, tokens: 0 }))
    },
    publishRaw (frames) { pubOut.send(frames) },
    sendRaw (frames) { if (peer !== null) routerOut.send([peer, ...frames]) },
    reply (verb, body) { if (peer !== null) routerOut.send([peer, ...encode(verb, body)]) },
    releaseSnapshots (revision) {
      for (const requestId of heldSnapshots.splice(0)) answerSnapshot(requestId, revision ?? leader.head)
    },
    providersAt (revision) {
      const state = new Map<string, Provider>()
      for (const c of leader.log) {
        if (c.revision > revision) break
        if (c.event === 'deregistered') state.delete(c.provider.id)
        else state.set(c.provider.id, c.provider)
      }
      return [...state.values()]
    },
    messages: <V extends Verb>(verb: V, from = 0) => leader.received.slice(from)
      .filter((r) => r.msg.verb === verb)
      .map((r) => ({ at: r.at, body: r.msg.body as Body<V> })),
    async subscribed (n = 1) {
      await waitFor(() => subscriptions >= n, { timeoutMs: 5000, what: `${n} subscription(s) on the scripted leader's PUB` })
    },
    close () {
      router.close()
      pub.close()
    }
  }

  function answerSnapshot (requestId: string, revision: number): void {
    leader.reply('SNAPSHOT', { requestId, epoch: leader.epoch, revision, providers: leader.providersAt(revision) })
  }

  async function readRouter (): Promise<void> {
    for await (const [identity, ...frames] of router) {
      if (identity === undefined) continue
      let msg: Message
      try {
        msg = decode(frames, Inbound.leaderRouter)
      } catch (err) {
        if (err instanceof ProtocolError) continue
        throw err
      }
      leader.received.push({ at: Date.now(), msg })
      peer = identity
      if (!leader.answering) continue
      switch (msg.verb) {
        case 'PING':
          leader.reply('PONG', { epoch: leader.epoch, revision: leader.head })
          break
        case 'SNAPSHOT_REQ':
          if (leader.answerSnapshots) answerSnapshot(msg.body.requestId, leader.head)
          else heldSnapshots.push(msg.body.requestId)
          break
        case 'SINCE_REQ': {
          const { requestId, revision, limit } = msg.body
          const available = revision >= leader.floor
          const events = available ? leader.log.filter((c) => c.revision > revision).slice(0, limit) : []
          leader.reply('EVENTS', { requestId, epoch: leader.epoch, available, events, head: leader.head })
          break
        }
        case 'WRITE':
          if (!leader.answerWrites) break
          for (const { requestId, op } of msg.body.writes) {
            if (leader.onWrite !== null) leader.onWrite(op, requestId)
            else {
              const result: WriteResult = { ok: true, statusCode: 201, revision: leader.head }
              leader.reply('RESULT', { epoch: leader.epoch, results: [{ requestId, result }] })
            }
          }
          break
        default:
          break
      }
    }
  }

  async function readSubscriptions (): Promise<void> {
    for await (const [frame] of pub) {
      if (frame !== undefined && frame[0] === 1) subscriptions++
    }
  }

  readRouter().catch((err: unknown) => { console.error('scripted clone leader: router loop failed', err) })
  readSubscriptions().catch((err: unknown) => { console.error('scripted clone leader: xpub loop failed', err) })
  return leader
}
