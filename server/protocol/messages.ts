// Every message the three roles exchange over ZeroMQ: its verb (frame 0) and the TypeBox schema
// of its JSON body (frame 1). server/protocol/README.md is the specification; this module is
// its executable form. Nothing here touches a socket.
import { Type, type Static } from '@sinclair/typebox'
import {
  Change, CHECK_INTERVAL_MAX_MS, CHECK_INTERVAL_MIN_MS, Port, Provider, ProviderId, ProviderSpec, REASON_MAX_LENGTH, ServiceName, StorableText
} from './model.js'
import { MAX_PROVIDER_BYTES, PAGE_ITEMS } from './socket-limits.js'
import { TokenId, TokenRecord } from './token-model.js'

export const Epoch = Type.Integer({ minimum: 1, description: 'the leader term that sent this message' })
const RequestId = Type.String({ minLength: 1, maxLength: 64 })
const WorkerId = Type.String({ minLength: 1, maxLength: 64 })
/** A page's index within one paged answer (SNAPSHOT, ASSIGN). */
const Page = Type.Integer({ minimum: 0, maximum: 1_000_000 })
/** Wall-clock ms; the maximum is the last instant a JavaScript Date can hold. */
const Ms = Type.Integer({ minimum: 0, maximum: 8_640_000_000_000_000 })
const EpochMs = Type.Union([Ms, Type.Null()])

/** `[providerId, lastSeen]`: a provider's latest heartbeat (or successful check, or renewal) in
 *  wall-clock ms. A pair rather than an object: a summary repeats it for every up provider twice
 *  a second, and the pair is half the bytes. Pages carry at most PAGE_ITEMS of them (< 150 KB:
 *  an id is at most 128 ASCII characters). */
export const Seen = Type.Tuple([ProviderId, Ms])
export type Seen = Static<typeof Seen>
const SeenPage = Type.Array(Seen, { minItems: 1, maxItems: PAGE_ITEMS })

/** What a worker believes about one provider. `lastSeen` is the wall-clock time (ms since the
 *  epoch) of the provider's last heartbeat (or successful check), null if there was none. */
export const Observation = Type.Object(
  {
    providerId: ProviderId,
    state: Type.Union([Type.Literal('pending'), Type.Literal('up'), Type.Literal('down')]),
    lastSeen: EpochMs,
    reason: Type.Optional(Type.Union([Type.Literal('disconnected'), Type.Literal('silent'), Type.Literal('check-failed')])),
    /** On down with reason check-failed: what failed ('HTTP 503', 'ECONNREFUSED', …). */
    detail: Type.Optional(StorableText({ maxLength: REASON_MAX_LENGTH })),
    /** On down: how long after the last heartbeat (or successful check) the worker decided. */
    detectedAfterMs: Type.Optional(Type.Integer({ minimum: 0 }))
  },
  { additionalProperties: false }
)
export type Observation = Static<typeof Observation>

const ProbeIntervalMs = Type.Integer({ minimum: CHECK_INTERVAL_MIN_MS, maximum: CHECK_INTERVAL_MAX_MS })
const ProbeTimeoutMs = Type.Integer({ minimum: 1, maximum: CHECK_INTERVAL_MAX_MS })
const ProbeHost = Type.String({ minLength: 1, maxLength: 253 })

/** An http or tcp check as a worker runs it: the registration's check plus where to run it. */
export const Probe = Type.Union([
  Type.Object(
    { type: Type.Literal('http'), host: ProbeHost, port: Port, path: Type.String({ minLength: 1, maxLength: 1024 }), intervalMs: ProbeIntervalMs, timeoutMs: ProbeTimeoutMs },
    { additionalProperties: false }
  ),
  Type.Object(
    { type: Type.Literal('tcp'), host: ProbeHost, port: Port, intervalMs: ProbeIntervalMs, timeoutMs: ProbeTimeoutMs },
    { additionalProperties: false }
  )
])
export type Probe = Static<typeof Probe>

/** One provider a worker must watch, with what the leader knows of it, so that a worker taking
 *  over a provider continues from its state instead of starting at pending. A task has either a
 *  `heartbeat` endpoint to subscribe to or a `check` to run (ttl checks stay with the leader).
 *  `maintenance`: the provider is held out of rotation by an operator; the worker keeps watching
 *  it from a neutral `pending`, and does not report its own view merely because it differs. */
export const Task = Type.Object(
  {
    providerId: ProviderId,
    heartbeat: Type.Optional(Type.String()),
    heartbeatIntervalMs: Type.Integer({ minimum: 1 }),
    check: Type.Optional(Probe),
    state: Type.Union([Type.Literal('pending'), Type.Literal('up'), Type.Literal('down')]),
    lastSeen: EpochMs,
    maintenance: Type.Optional(Type.Literal(true))
  },
  { additionalProperties: false }
)
export type Task = Static<typeof Task>

export const WriteOp = Type.Union([
  Type.Object(
    { type: Type.Literal('register'), service: ServiceName, id: ProviderId, spec: ProviderSpec },
    { additionalProperties: false }
  ),
  Type.Object(
    { type: Type.Literal('deregister'), service: ServiceName, id: ProviderId },
    { additionalProperties: false }
  ),
  /** An operator puts a provider in maintenance (`enabled`) or takes it out. */
  Type.Object(
    {
      type: Type.Literal('maintenance'),
      service: ServiceName,
      id: ProviderId,
      enabled: Type.Boolean(),
      reason: Type.Optional(StorableText({ maxLength: REASON_MAX_LENGTH }))
    },
    { additionalProperties: false }
  ),
  /** A provider with a ttl check renews it. Kept in the leader's memory, never stored. */
  Type.Object(
    { type: Type.Literal('renew'), service: ServiceName, id: ProviderId },
    { additionalProperties: false }
  )
])
export type WriteOp = Static<typeof WriteOp>

/** The outcome of a write, as the gateway turns it into an HTTP answer. */
export const WriteResult = Type.Union([
  Type.Object({
    ok: Type.Literal(true),
    statusCode: Type.Integer(),
    revision: Type.Integer(),
    provider: Type.Optional(Provider)
  }),
  Type.Object({
    ok: Type.Literal(false),
    statusCode: Type.Integer(),
    code: Type.String(),
    message: Type.String()
  })
])
export type WriteResult = Static<typeof WriteResult>

/** A change to the token table, sent by the gateway that took the admin request. A `create`
 *  carries the secret's hash only: the secret never leaves the gateway that made it. */
export const TokenOp = Type.Union([
  Type.Object({ type: Type.Literal('create'), token: TokenRecord }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal('revoke'), id: TokenId }, { additionalProperties: false })
])
export type TokenOp = Static<typeof TokenOp>

/** The outcome of a token change; `generation` is the token list's generation that contains it. */
export const TokenResult = Type.Union([
  Type.Object({ ok: Type.Literal(true), statusCode: Type.Integer(), generation: Type.Integer({ minimum: 0 }) }),
  Type.Object({ ok: Type.Literal(false), statusCode: Type.Integer(), code: Type.String(), message: Type.String() })
])
export type TokenResult = Static<typeof TokenResult>

/** At most this many writes, results or changes travel in one WRITE, RESULT or EVENT message:
 *  each is under MAX_PROVIDER_BYTES, so a message stays under 3 MiB without measuring its items
 *  (socket-limits.ts derives the sockets' bounds from it). */
export const BATCH_ITEMS = Math.floor(3 * 1024 * 1024 / MAX_PROVIDER_BYTES)

/** Bodies by verb. Requests travel DEALER → leader ROUTER, replies ROUTER → DEALER, and the
 *  feed leader PUB → gateway SUB. */
export const Bodies = {
  // gateway → leader
  SNAPSHOT_REQ: Type.Object({ requestId: RequestId }, { additionalProperties: false }),
  SINCE_REQ: Type.Object(
    { requestId: RequestId, revision: Type.Integer({ minimum: 0 }), limit: Type.Integer({ minimum: 1, maximum: 10_000 }) },
    { additionalProperties: false }
  ),
  /** The writes a gateway took in one turn of its event loop, in the order it took them: one
   *  message instead of one each is what makes a write cheap for both roles under load. */
  WRITE: Type.Object(
    {
      writes: Type.Array(Type.Object({ requestId: RequestId, op: WriteOp }, { additionalProperties: false }), { minItems: 1, maxItems: BATCH_ITEMS })
    },
    { additionalProperties: false }
  ),
  TOKEN_WRITE: Type.Object({ requestId: RequestId, op: TokenOp }, { additionalProperties: false }),
  TOKENS_REQ: Type.Object({ requestId: RequestId }, { additionalProperties: false }),
  // leader → gateway
  /** Sent in pages (socket-limits.ts PAGE_BYTES), all taken at `revision`: pages 0, 1, … of one
   *  requestId, each but the last with `more: true`. Absent `page`/`more`: a single page. */
  SNAPSHOT: Type.Object(
    {
      requestId: RequestId,
      epoch: Epoch,
      revision: Type.Integer({ minimum: 0 }),
      providers: Type.Array(Provider),
      page: Type.Optional(Page),
      more: Type.Optional(Type.Boolean())
    },
    { additionalProperties: false }
  ),
  EVENTS: Type.Object(
    {
      requestId: RequestId,
      epoch: Epoch,
      /** false when `revision` is older than the retained change log: ask for a snapshot. */
      available: Type.Boolean(),
      events: Type.Array(Change),
      /** the leader's latest revision when it answered */
      head: Type.Integer({ minimum: 0 })
    },
    { additionalProperties: false }
  ),
  /** The answers to one gateway's writes of one commit. */
  RESULT: Type.Object(
    {
      epoch: Epoch,
      results: Type.Array(Type.Object({ requestId: RequestId, result: WriteResult }, { additionalProperties: false }), { minItems: 1, maxItems: BATCH_ITEMS })
    },
    { additionalProperties: false }
  ),
  TOKEN_RESULT: Type.Object({ requestId: RequestId, epoch: Epoch, result: TokenResult }, { additionalProperties: false }),
  /** Every stored token (hashes, never secrets) as of `generation`. */
  TOKENS: Type.Object(
    { requestId: RequestId, epoch: Epoch, generation: Type.Integer({ minimum: 0 }), tokens: Type.Array(TokenRecord) },
    { additionalProperties: false }
  ),
  // worker → leader (PING also from gateways)
  READY: Type.Object({ workerId: WorkerId, observations: Type.Array(Observation) }, { additionalProperties: false }),
  PING: Type.Object(
    { peerId: WorkerId, role: Type.Union([Type.Literal('worker'), Type.Literal('gateway')]) },
    { additionalProperties: false }
  ),
  REPORT: Type.Object(
    { workerId: WorkerId, seq: Type.Integer({ minimum: 1 }), observations: Type.Array(Observation) },
    { additionalProperties: false }
  ),
  BYE: Type.Object({ workerId: WorkerId }, { additionalProperties: false }),
  /** A worker's summary of the providers it sees up whose lastSeen moved since its previous
   *  summary (README §11): freshness only, never a change, never acknowledged. */
  SEEN: Type.Object({ workerId: WorkerId, seen: SeenPage }, { additionalProperties: false }),
  // leader → worker and gateway
  /** `assigned` (to a worker only): the seq of the last ASSIGN the leader sent it in this term. */
  PONG: Type.Object(
    { epoch: Epoch, revision: Type.Integer({ minimum: 0 }), assigned: Type.Optional(Type.Integer({ minimum: 0 })) },
    { additionalProperties: false }
  ),
  /** A worker's tasks (README §7). Without `delta`: the complete list, in pages of at most
   *  PAGE_ITEMS tasks (socket-limits.ts) like SNAPSHOT, applied once the worker holds pages 0 to
   *  the one without `more`. With `delta`: `tasks` are added or replace the worker's task of the
   *  same provider, and `removed` are no longer its. `seq` counts the ASSIGNs to this worker in
   *  the term, so that it applies them in order and notices a lost one. */
  ASSIGN: Type.Object(
    {
      epoch: Epoch,
      seq: Type.Integer({ minimum: 1 }),
      tasks: Type.Array(Task, { maxItems: PAGE_ITEMS }),
      delta: Type.Optional(Type.Literal(true)),
      removed: Type.Optional(Type.Array(ProviderId, { maxItems: PAGE_ITEMS })),
      page: Type.Optional(Page),
      more: Type.Optional(Type.Boolean())
    },
    { additionalProperties: false }
  ),
  ACK: Type.Object({ epoch: Epoch, seq: Type.Integer({ minimum: 1 }) }, { additionalProperties: false }),
  // leader PUB → gateways
  /** The changes of one commit, in revision order (a commit of more than BATCH_ITEMS changes
   *  is published as several EVENT messages). */
  EVENT: Type.Object(
    { epoch: Epoch, changes: Type.Array(Change, { minItems: 1, maxItems: BATCH_ITEMS }) },
    { additionalProperties: false }
  ),
  /** `tokens`: the generation of the leader's token list; a gateway holding another one (in this
   *  epoch) asks for the list with TOKENS_REQ. */
  BEAT: Type.Object(
    { epoch: Epoch, revision: Type.Integer({ minimum: 0 }), tokens: Type.Integer({ minimum: 0 }) },
    { additionalProperties: false }
  ),
  /** The lastSeen values the leader accepted since its previous LAST_SEEN (README §11): a gateway
   *  sets them on its replica without a revision and without an event. */
  LAST_SEEN: Type.Object({ epoch: Epoch, seen: SeenPage }, { additionalProperties: false })
} as const

export type Verb = keyof typeof Bodies
export type Body<V extends Verb> = Static<(typeof Bodies)[V]>
export type Message = { [V in Verb]: { verb: V, body: Body<V> } }[Verb]
export type MessageOf<V extends Verb> = Extract<Message, { verb: V }>

/** Which verbs each socket may receive; anything else on that socket is a bad frame. */
export const Inbound = {
  leaderRouter: ['SNAPSHOT_REQ', 'SINCE_REQ', 'WRITE', 'TOKEN_WRITE', 'TOKENS_REQ', 'READY', 'PING', 'REPORT', 'BYE', 'SEEN'],
  gatewayDealer: ['PONG', 'SNAPSHOT', 'EVENTS', 'RESULT', 'TOKEN_RESULT', 'TOKENS'],
  gatewaySub: ['EVENT', 'BEAT', 'LAST_SEEN'],
  workerDealer: ['PONG', 'ASSIGN', 'ACK']
} as const satisfies Record<string, readonly Verb[]>
