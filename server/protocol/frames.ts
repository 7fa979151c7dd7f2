// Encodes and decodes Roster's ZeroMQ messages: frame 0 is the ASCII verb, frame 1 the JSON
// body. decode() validates the body against the verb's schema with a compiled checker and
// throws ProtocolError on anything else, so a peer's bad input can never reach the roles' logic.
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler'
import { FormatRegistry, type TSchema } from '@sinclair/typebox'
import { ValueErrorType, type ValueError } from '@sinclair/typebox/errors'
import { Bodies, type Body, type Message, type Verb } from './messages.js'
import { STORABLE_TEXT_PREFIX, storableTextProblem } from './model.js'
import type { Log } from '../common/log.js'
import { Errors } from './error-codes.js'

export class ProtocolError extends Error {
  readonly code = Errors.protocolBadFrame.code
  override name = 'ProtocolError'
}

// TypeBox's checkers know no string formats until told; the model uses ISO-8601 timestamps.
const ISO_DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/
if (!FormatRegistry.Has('date-time')) {
  FormatRegistry.Set('date-time', (value) => ISO_DATE_TIME.test(value) && !Number.isNaN(Date.parse(value)))
}

const checkers = Object.fromEntries(
  Object.entries(Bodies).map(([verb, schema]) => [verb, TypeCompiler.Compile(schema as TSchema)])
) as Record<Verb, TypeCheck<TSchema>>

export function encode<V extends Verb> (verb: V, body: Body<V>): [Buffer, Buffer] {
  return [Buffer.from(verb, 'ascii'), Buffer.from(JSON.stringify(body))]
}

/** Decodes `frames` (without any routing envelope) into a message whose verb is one of
 *  `allowed`. Throws ProtocolError saying what was wrong. */
export function decode<const A extends readonly Verb[]> (
  frames: Buffer[],
  allowed: A
): Extract<Message, { verb: A[number] }> {
  if (frames.length !== 2) throw new ProtocolError(`expected 2 frames (verb, body), got ${frames.length}`)
  const [verbFrame, bodyFrame] = frames as [Buffer, Buffer]
  const verb = verbFrame.toString('latin1')
  if (!(allowed as readonly string[]).includes(verb)) {
    throw new ProtocolError(`unexpected verb ${JSON.stringify(verb.slice(0, 32))}`)
  }
  let body: unknown
  try {
    body = JSON.parse(bodyFrame.toString('utf8'))
  } catch {
    throw new ProtocolError(`${verb}: body is not valid JSON`)
  }
  const checker = checkers[verb as Verb]
  if (!checker.Check(body)) {
    const found = checker.Errors(body).First()
    const first = found === undefined ? undefined : mostSpecific(found)
    const pattern = first?.type === ValueErrorType.StringPattern ? String(first.schema.pattern) : ''
    // A StringEnum (model.ts) is a registered kind, which TypeBox reports as "Expected kind …".
    const allowed = first?.type === ValueErrorType.Kind && Array.isArray(first.schema.enum) ? first.schema.enum as unknown[] : null
    const message = pattern.startsWith(STORABLE_TEXT_PREFIX)
      ? storableTextProblem(pattern, first?.value)
      : allowed !== null ? `must be one of: ${allowed.map(String).join(', ')}` : first?.message
    throw new ProtocolError(`${verb}: body${first?.path ?? ''} ${message ?? 'is invalid'}`)
  }
  return { verb, body } as Extract<Message, { verb: A[number] }>
}

/** At most this many bad-frame lines per socket per second: enough to see what a broken peer
 *  sends, while 100,000 garbage frames a second cost a few lines, not 100,000. */
export const BAD_FRAME_LOGS_PER_SECOND = 3
const BAD_FRAME_LOG_WINDOW_MS = 1000

/** One socket's bad frames: every one is counted; they are logged at most
 *  BAD_FRAME_LOGS_PER_SECOND a second, and the next line logged says how many were not. */
export interface BadFrames {
  readonly count: number
  /** Counts a bad frame and maybe logs it, with `fields` (a peer, an endpoint) and the reason. */
  drop: (reason: string, fields?: Record<string, unknown>) => void
}

export function createBadFrames (log: Log, message: string, now: () => number = Date.now): BadFrames {
  let count = 0
  let windowStart = -Infinity
  let logged = 0
  let suppressed = 0
  return {
    get count () { return count },
    drop (reason, fields = {}) {
      count++
      const t = now()
      if (t - windowStart >= BAD_FRAME_LOG_WINDOW_MS) {
        windowStart = t
        logged = 0
      }
      if (logged >= BAD_FRAME_LOGS_PER_SECOND) {
        suppressed++
        return
      }
      logged++
      log.warn({ ...fields, err: reason, ...(suppressed > 0 ? { suppressed } : {}), badFrames: count }, message)
      suppressed = 0
    }
  }
}

/** The protocol's rule for a bad frame (README §2): the message is dropped and counted (and
 *  logged, rate-limited) in `bad`; null is returned instead of a message. */
export function decodeOrDrop<const A extends readonly Verb[]> (
  frames: Buffer[],
  allowed: A,
  bad: BadFrames,
  fields?: Record<string, unknown>
): Extract<Message, { verb: A[number] }> | null {
  try {
    return decode(frames, allowed)
  } catch (err) {
    if (!(err instanceof ProtocolError)) throw err
    bad.drop(err.message, fields)
    return null
  }
}

/** TypeBox reports a failed union as a whole ("Expected union value"); descend into the one
 *  variant that came closest (fewest errors), so the message names the field that is wrong. */
function mostSpecific (error: ValueError): ValueError {
  const scored = error.errors.map((variant) => [...variant])
  if (scored.length === 0) return error
  const fewest = Math.min(...scored.map((errs) => errs.length))
  const closest = scored.filter((errs) => errs.length === fewest)
  const inner = closest.length === 1 ? closest[0]?.[0] : undefined
  return inner === undefined ? error : mostSpecific(inner)
}
