// Scripted followers for the leader's tests: a real DEALER that speaks the gateway's and the
// worker's side of the protocol under the test's control (and can send raw, broken frames), and
// a real SUB on the leader's event PUB. Both record everything they receive with its arrival
// time; they hold no logic of their own beyond answering nothing and pinging when told to.
import { randomUUID } from 'node:crypto'
import { Dealer, Subscriber } from 'zeromq'
import { decode, encode, ProtocolError } from '../../server/protocol/frames.js'
import { pubEndpoint } from '../../server/protocol/endpoints.js'
import type { Body, Message, Observation, Task, Verb, WriteOp, WriteResult } from '../../server/protocol/messages.js'
import type { Change } from '../../server/protocol/model.js'
import { createSendQueue } from '../../server/protocol/send-queue.js'
import { waitFor } from '../../harness/wait-for.js'
import { replayAssigns } from './replay-assigns.js'

/** Everything a leader may send to a DEALER, gateway's or worker's. */
const FOLLOWER_INBOUND = ['PONG', 'SNAPSHOT', 'EVENTS', 'RESULT', 'TOKEN_RESULT', 'TOKENS', 'ASSIGN', 'ACK'] as const
const FEED_INBOUND = ['EVENT', 'BEAT', 'LAST_SEEN'] as const
const PING_INTERVAL_MS = 250

export interface Received<V extends Verb = Verb> { at: number, verb: V, body: Body<V> }

export interface ScriptedFollower {
  readonly id: string
  /** Every decoded message from the leader, oldest first. */
  readonly received: Received[]
  /** Frames from the leader that did not decode (there should be none). */
  readonly undecodable: number
  /** Runs synchronously as each message arrives, before anything else can happen. */
  onReceive: ((r: Received) => void) | null
  send: <V extends Verb>(verb: V, body: Body<V>) => void
  sendRaw: (frames: Buffer[]) => void
  /** Messages of one verb received so far (from index `from` of `received`). */
  messages: <V extends Verb>(verb: V, from?: number) => Array<Received<V>>
  /** The first message of `verb` at or after index `from` that matches. */
  next: <V extends Verb>(verb: V, match?: (body: Body<V>) => boolean, opts?: { from?: number, timeoutMs?: number }) => Promise<Received<V>>
  write: (op: WriteOp) => Promise<WriteResult>
  snapshot: () => Promise<Body<'SNAPSHOT'>>
  since: (revision: number, limit?: number) => Promise<Body<'EVENTS'>>
  /** Sends PING now and every 250 ms, as a LeaderLink does, until stopPinging(). */
  startPinging: (role: 'worker' | 'gateway') => void
  stopPinging: () => void
  /** PINGs (every 100 ms, in the role last given to startPinging, else as a gateway) until a
   *  PONG with an epoch of at least `minEpoch` arrives, and returns it. */
  pong: (minEpoch?: number, timeoutMs?: number) => Promise<Body<'PONG'>>
  /** PINGs as a worker, sends READY with `observations`, and waits for the ASSIGN that follows. */
  ready: (observations?: Observation[]) => Promise<Received<'ASSIGN'>>
  report: (seq: number, observations: Observation[]) => void
  /** The task list the ASSIGNs so far make (replayAssigns), its ids sorted. */
  tasks: () => string[]
  /** The task of `providerId` in that list. */
  task: (providerId: string) => Task | undefined
  close: () => void
}

export function startFollower (endpoint: string, id = `follower-${randomUUID().slice(0, 8)}`): ScriptedFollower {
  const dealer = new Dealer({ linger: 0, routingId: id, reconnectInterval: 50 })
  dealer.connect(endpoint)
  const out = createSendQueue(dealer, () => {})
  let pinger: NodeJS.Timeout | null = null
  let role: 'worker' | 'gateway' = 'gateway'
  let undecodable = 0

  const f: ScriptedFollower = {
    id,
    received: [],
    get undecodable () { return undecodable },
    onReceive: null,
    send: (verb, body) => { out.send(encode(verb, body)) },
    sendRaw: (frames) => { out.send(frames) },
    messages: <V extends Verb>(verb: V, from = 0) =>
      f.received.slice(from).filter((r): r is Received<V> => r.verb === verb),
    async next<V extends Verb> (verb: V, match: (body: Body<V>) => boolean = () => true, opts: { from?: number, timeoutMs?: number } = {}) {
      return await waitFor(() => f.messages(verb, opts.from).find((r) => match(r.body)), {
        timeoutMs: opts.timeoutMs ?? 5000,
        what: `${verb} at ${id} (got ${JSON.stringify(f.received.slice(-3).map((r) => r.verb))})`
      })
    },
    async write (op) {
      const requestId = randomUUID()
      f.send('WRITE', { writes: [{ requestId, op }] })
      const answer = (b: Body<'RESULT'>): WriteResult | undefined => b.results.find((r) => r.requestId === requestId)?.result
      return answer((await f.next('RESULT', (b) => answer(b) !== undefined)).body) as WriteResult
    },
    async snapshot () {
      const requestId = randomUUID()
      f.send('SNAPSHOT_REQ', { requestId })
      return (await f.next('SNAPSHOT', (b) => b.requestId === requestId)).body
    },
    async since (revision, limit = 1000) {
      const requestId = randomUUID()
      f.send('SINCE_REQ', { requestId, revision, limit })
      return (await f.next('EVENTS', (b) => b.requestId === requestId)).body
    },
    startPinging (as) {
      role = as
      if (pinger !== null) return
      const ping = (): void => f.send('PING', { peerId: id, role })
      ping()
      pinger = setInterval(ping, PING_INTERVAL_MS)
    },
    stopPinging () {
      if (pinger !== null) clearInterval(pinger)
      pinger = null
    },
    async pong (minEpoch = 1, timeoutMs = 5000) {
      const from = f.received.length
      let lastPing = 0
      const found = await waitFor(() => {
        const got = f.messages('PONG', from).find((r) => r.body.epoch >= minEpoch)
        if (got === undefined && Date.now() - lastPing >= 100) {
          lastPing = Date.now()
          f.send('PING', { peerId: id, role })
        }
        return got
      }, { timeoutMs, what: `a PONG with epoch ≥ ${minEpoch} at ${id}` })
      return found.body
    },
    async ready (observations = []) {
      const from = f.received.length
      f.startPinging('worker')
      f.send('READY', { workerId: id, observations })
      return await f.next('ASSIGN', () => true, { from })
    },
    report (seq, observations) {
      f.send('REPORT', { workerId: id, seq, observations })
    },
    tasks: () => [...replayAssigns(f.messages('ASSIGN').map((m) => m.body)).keys()].sort(),
    task: (providerId) => replayAssigns(f.messages('ASSIGN').map((m) => m.body)).get(providerId),
    close () {
      f.stopPinging()
      dealer.close()
    }
  }

  void (async () => {
    for await (const frames of dealer) {
      let msg: Message
      try {
        msg = decode(frames, FOLLOWER_INBOUND)
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw err
        undecodable++
        continue
      }
      const r = { at: Date.now(), verb: msg.verb, body: msg.body } as Received
      f.received.push(r)
      f.onReceive?.(r)
    }
  })().catch((err: unknown) => { console.error('scripted follower read loop failed', err) })
  return f
}

export interface FeedReader {
  /** Every EVENT, BEAT and LAST_SEEN received, oldest first. */
  readonly received: Array<Received<'EVENT' | 'BEAT' | 'LAST_SEEN'>>
  readonly undecodable: number
  /** The changes of every EVENT received, in arrival order. */
  changes: (from?: number) => Change[]
  /** Resolves once a BEAT arrived: from then on the SUB is connected and misses nothing. */
  connected: () => Promise<void>
  /** The first EVENT whose change matches, at or after index `from` of `received`. */
  nextChange: (match: (c: Change) => boolean, opts?: { from?: number, timeoutMs?: number }) => Promise<Change>
  close: () => void
}

/** A SUB on the leader's event PUB; `onEvent` runs synchronously as each EVENT arrives. */
export function readLeaderFeed (routerEndpoint: string, onEvent?: (c: Change) => void): FeedReader {
  const sub = new Subscriber({ linger: 0, reconnectInterval: 50 })
  sub.subscribe()
  sub.connect(pubEndpoint(routerEndpoint))
  let undecodable = 0
  const r: FeedReader = {
    received: [],
    get undecodable () { return undecodable },
    changes: (from = 0) => r.received.slice(from).flatMap((m) => (m.verb === 'EVENT' ? (m as Received<'EVENT'>).body.changes : [])),
    async connected () {
      await waitFor(() => r.received.some((m) => m.verb === 'BEAT'), { timeoutMs: 5000, what: 'a BEAT on the leader feed' })
    },
    async nextChange (match, opts = {}) {
      return await waitFor(() => r.changes(opts.from).find(match), {
        timeoutMs: opts.timeoutMs ?? 5000,
        what: `a matching EVENT on the feed (last: ${JSON.stringify(r.changes().slice(-3).map((c) => [c.revision, c.event, c.provider.id]))})`
      })
    },
    close: () => { sub.close() }
  }
  void (async () => {
    for await (const frames of sub) {
      let msg: Message
      try {
        msg = decode(frames, FEED_INBOUND)
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw err
        undecodable++
        continue
      }
      r.received.push({ at: Date.now(), verb: msg.verb, body: msg.body } as Received<'EVENT' | 'BEAT' | 'LAST_SEEN'>)
      if (msg.verb === 'EVENT') for (const c of msg.body.changes) onEvent?.(c)
    }
  })().catch((err: unknown) => { console.error('feed reader failed', err) })
  return r
}
