// Generators of hostile ZeroMQ messages for the zmq-*.test.ts fuzz tests: random bytes, random
// frame counts, every verb with bodies of the wrong shape, valid bodies with one field replaced
// by a hostile value, and strings from the whole of UTF-16 (NUL, control characters, lone
// surrogates, very long). `hostile(accepts)` keeps only what the receiving socket must refuse,
// so that every frame sent is one the receiver has to count as bad.
import fc from 'fast-check'
import { decode } from '../../server/protocol/frames.js'
import { Bodies, type Verb } from '../../server/protocol/messages.js'

/** Generated messages per socket: 1,000 in `npm test`, ROSTER_FUZZ_RUNS (10,000 in `npm run fuzz`). */
export const FUZZ_RUNS = Math.max(1, Number(process.env.ROSTER_FUZZ_RUNS ?? 1000) || 1000)
/** A fixed seed unless ROSTER_FUZZ_SEED says otherwise, so that a failure can be replayed. */
export const FUZZ_SEED = Number(process.env.ROSTER_FUZZ_SEED ?? 20261203)

const VERBS = Object.keys(Bodies) as Verb[]

/** Any UTF-16 code unit, lone surrogates and NUL included, with control characters favoured. */
const codeUnit = fc.oneof(
  fc.integer({ min: 0, max: 0x1f }),
  fc.integer({ min: 0xd800, max: 0xdfff }),
  fc.integer({ min: 0, max: 0xffff })
).map((c) => String.fromCharCode(c))

export const hostileString = fc.oneof(
  { weight: 6, arbitrary: fc.string({ unit: codeUnit, maxLength: 40 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: codeUnit, minLength: 1000, maxLength: 20_000 }) },
  { weight: 1, arbitrary: fc.constantFrom('\u0000', '\ud800', '\udfff', '\ud800\u0000', 'hb', '__proto__', 'constructor', '') }
)

const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  hostileString,
  fc.integer(),
  fc.double(),
  fc.constantFrom(null, true, false, -1, 0, 2 ** 53, Number.MAX_SAFE_INTEGER + 2, 1e308),
  fc.array(hostileString, { maxLength: 5 }),
  fc.dictionary(hostileString, hostileString, { maxKeys: 4 })
)

/** A plausible body for each verb, to be broken in one place. */
const provider = {
  id: 'p1', service: 'orders', host: '10.0.0.1', port: 80, protocol: 'http', heartbeat: 'tcp://127.0.0.1:9',
  heartbeatIntervalMs: 1000, tags: [], meta: {}, state: 'up', stateSince: '2026-01-01T00:00:00.000Z', lastSeen: null, revision: 1
}
const plausible: Record<Verb, Record<string, unknown>> = {
  SNAPSHOT_REQ: { requestId: 'r1' },
  SINCE_REQ: { requestId: 'r1', revision: 0, limit: 10 },
  WRITE: { writes: [{ requestId: 'r1', op: { type: 'register', service: 'orders', id: 'p1', spec: { host: 'h', port: 1, protocol: 'http', heartbeat: 'tcp://127.0.0.1:9' } } }] },
  TOKEN_WRITE: { requestId: 'r1', op: { type: 'revoke', id: 'no-such-token' } },
  TOKENS_REQ: { requestId: 'r1' },
  SNAPSHOT: { requestId: 'r1', epoch: 1, revision: 1, providers: [provider] },
  EVENTS: { requestId: 'r1', epoch: 1, available: true, events: [{ revision: 2, event: 'updated', provider }], head: 2 },
  RESULT: { epoch: 1, results: [{ requestId: 'r1', result: { ok: true, statusCode: 200, revision: 1 } }] },
  TOKEN_RESULT: { requestId: 'r1', epoch: 1, result: { ok: true, statusCode: 201, generation: 1 } },
  TOKENS: { requestId: 'r1', epoch: 1, generation: 1, tokens: [] },
  READY: { workerId: 'w1', observations: [{ providerId: 'p1', state: 'up', lastSeen: 1 }] },
  PING: { peerId: 'w1', role: 'worker' },
  REPORT: { workerId: 'w1', seq: 1, observations: [{ providerId: 'p1', state: 'down', lastSeen: 1, reason: 'silent' }] },
  BYE: { workerId: 'w1' },
  PONG: { epoch: 1, revision: 1 },
  ASSIGN: { epoch: 1, seq: 1, tasks: [{ providerId: 'p1', heartbeat: 'tcp://127.0.0.1:9', heartbeatIntervalMs: 1000, state: 'up', lastSeen: 1 }] },
  ACK: { epoch: 1, seq: 1 },
  EVENT: { epoch: 1, changes: [{ revision: 2, event: 'updated', provider }] },
  BEAT: { epoch: 1, revision: 1, tokens: 0 },
  SEEN: { workerId: 'w1', seen: [['p1', 1]] },
  LAST_SEEN: { epoch: 1, seen: [['p1', 1]] }
}

/** Replaces the value at a random path of `body` (top level or one level down) by `value`. */
function breakAt (body: Record<string, unknown>, pick: number, value: unknown): Record<string, unknown> {
  const copy = structuredClone(body)
  const keys = Object.keys(copy)
  const key = keys[pick % keys.length] as string
  const inner = copy[key]
  if (inner !== null && typeof inner === 'object' && !Array.isArray(inner) && pick % 2 === 1) {
    const innerKeys = Object.keys(inner)
    if (innerKeys.length > 0) (inner as Record<string, unknown>)[innerKeys[pick % innerKeys.length] as string] = value
  } else {
    copy[key] = value
  }
  return copy
}

const frame = (s: string | Uint8Array): Buffer => typeof s === 'string' ? Buffer.from(s) : Buffer.from(s)

/** Messages of every hostile kind (arrays of frames, as a peer would send them). */
export const hostileMessage: fc.Arbitrary<Buffer[]> = fc.oneof(
  // random bytes in random frame counts (0 frames is impossible on the wire: at least 1)
  fc.array(fc.uint8Array({ maxLength: 300 }), { minLength: 1, maxLength: 5 }).map((fs) => fs.map(frame)),
  // a verb (or a near-verb) with any body at all
  fc.tuple(fc.oneof(fc.constantFrom(...VERBS), hostileString), fc.oneof(hostileString, fc.jsonValue().map((v) => JSON.stringify(v) ?? 'null')))
    .map(([v, b]) => [frame(v), frame(b)]),
  // a verb with a plausible body broken in one field, sometimes with an extra frame
  fc.tuple(fc.constantFrom(...VERBS), fc.nat(), hostileValue, fc.boolean())
    .map(([v, pick, value, extra]) => {
      const msg = [frame(v), frame(JSON.stringify(breakAt(plausible[v], pick, value)))]
      return extra ? [...msg, frame('extra')] : msg
    }),
  // a body that is not an object, or is truncated JSON
  fc.tuple(fc.constantFrom(...VERBS), fc.nat({ max: 200 }))
    .map(([v, cut]) => [frame(v), frame(JSON.stringify(plausible[v]).slice(0, cut % JSON.stringify(plausible[v]).length))])
)

/** Keeps only messages that a socket accepting `accepts` must refuse (drop and count). */
export function mustRefuse (accepts: readonly Verb[]): (msg: Buffer[]) => boolean {
  return (msg) => {
    try {
      decode(msg, accepts)
      return false
    } catch {
      return true
    }
  }
}

/** `n` hostile messages that a socket accepting `accepts` must refuse, from a fixed seed. */
export function hostileSample (accepts: readonly Verb[], n = FUZZ_RUNS, seed = FUZZ_SEED): Buffer[][] {
  return fc.sample(hostileMessage.filter(mustRefuse(accepts)), { numRuns: n, seed })
}

/**
 * Sends `messages` in batches of `batch`, waiting after each until `counted()` has caught up
 * with what was sent (plus `base`). Unpaced, 10,000 messages overrun the receiver's high-water
 * mark (a ROUTER or PUB then drops them silently) and, with the receiver in this process, starve
 * its timers: a leader misses its lock session's health check and steps down.
 */
export async function sendInBatches (
  messages: Buffer[][],
  send: (msg: Buffer[]) => Promise<void> | void,
  counted: () => number,
  opts: { base?: number, batch?: number, what: string }
): Promise<void> {
  const { waitFor } = await import('../../harness/wait-for.js')
  const base = opts.base ?? 0
  const batch = opts.batch ?? 250
  for (let i = 0; i < messages.length; i += batch) {
    for (const msg of messages.slice(i, i + batch)) await send(msg)
    const target = base + Math.min(i + batch, messages.length)
    await waitFor(() => counted() >= target, { timeoutMs: 30_000, what: `${opts.what}: ${target - base} counted (${counted() - base})` })
  }
  // Nothing counted twice, nothing extra.
  if (counted() !== base + messages.length) throw new Error(`${opts.what}: counted ${counted() - base}, sent ${messages.length}`)
}
