// The gateway's errors: one class per error it answers over HTTP, each with its code and status
// from the catalogue (server/protocol/error-codes.ts), plus the one formatter that turns any
// thrown error into Fastify's `{ statusCode, code, error, message }` body. It must never put the
// text of an unexpected 5xx (a stack, a driver message, an endpoint) in front of a client.
//
// Why classes rather than @fastify/error: the leader sends codes at run time
// (WriteResult.code), which a per-code constructor cannot carry; one small base class covers
// both the static catalogue and the leader's verdicts, etcd3-style.
import { STATUS_CODES } from 'node:http'
import { jsonLine, printable } from '../common/printable.js'
import { Errors } from '../protocol/error-codes.js'

export class RosterError extends Error {
  readonly code: string
  readonly statusCode: number
  /** Whether `message` was written for clients. When false, clients get a fixed text. */
  readonly expose: boolean
  /** Response headers that belong to this answer (e.g. `Upgrade` on a 426). */
  readonly headers: Readonly<Record<string, string>>

  constructor (
    code: string,
    statusCode: number,
    message: string,
    options?: ErrorOptions & { expose?: boolean, headers?: Record<string, string> }
  ) {
    super(message, options)
    this.name = 'RosterError'
    this.code = code
    this.statusCode = statusCode
    this.expose = options?.expose ?? statusCode < 500
    this.headers = options?.headers ?? {}
  }
}

/** No leader, or it did not answer in time. Thrown by the leader port; answered 503 + Retry-After. */
export class LeaderUnavailableError extends RosterError {
  static readonly code = Errors.leaderUnavailable.code
  constructor (message = 'no leader is available', options?: ErrorOptions) {
    // The message may name endpoints or timeouts; it goes to the log, never to the client.
    super(LeaderUnavailableError.code, Errors.leaderUnavailable.status, message, { ...options, expose: false })
    this.name = 'LeaderUnavailableError'
  }
}

/** The replica has not loaded its first snapshot, so it cannot answer anything truthfully yet. */
export class NotReadyError extends RosterError {
  static readonly code = Errors.notReady.code
  constructor () {
    super(NotReadyError.code, Errors.notReady.status, 'this gateway has not loaded the registry yet; retry shortly', { expose: true })
    this.name = 'NotReadyError'
  }
}

/** The feed is at its `--max-watchers` bound: the upgrade is refused before it happens. */
export class TooManyWatchersError extends RosterError {
  static readonly code = Errors.tooManyWatchers.code
  constructor (max: number) {
    super(TooManyWatchersError.code, Errors.tooManyWatchers.status, `this gateway serves its maximum of ${max} feed clients; retry later or use another gateway`, { expose: true })
    this.name = 'TooManyWatchersError'
  }
}

/** `?minRevision=N` was not reached within the bound. */
export class RevisionTimeoutError extends RosterError {
  static readonly code = Errors.revisionTimeout.code
  constructor (wanted: number, reached: number, waitedMs: number) {
    super(
      RevisionTimeoutError.code,
      Errors.revisionTimeout.status,
      `minRevision ${wanted} not reached within ${waitedMs} ms; this gateway has reached revision ${reached}`,
      { expose: true }
    )
    this.name = 'RevisionTimeoutError'
  }
}

export class ProviderNotFoundError extends RosterError {
  static readonly code = Errors.providerNotFound.code
  constructor (service: string, id: string, actualService?: string) {
    super(
      ProviderNotFoundError.code,
      Errors.providerNotFound.status,
      actualService === undefined
        ? `provider '${id}' is not registered under service '${service}'`
        : `provider '${id}' is not registered under service '${service}' (it is registered under '${actualService}')`
    )
    this.name = 'ProviderNotFoundError'
  }
}

/** A registration that breaks a rule JSON Schema cannot express (protocol/model.ts
 *  registrationProblem): neither a heartbeat nor a check, both, a heartbeat port outside
 *  1–65535, a check timing out after its next run; or a check interval below this gateway's
 *  --min-check-interval-ms. The message names the field, as a schema error's does. */
export class InvalidRegistrationError extends RosterError {
  static readonly code = Errors.invalidRegistration.code
  constructor (message: string) {
    super(InvalidRegistrationError.code, Errors.invalidRegistration.status, message)
    this.name = 'InvalidRegistrationError'
  }
}

/** The registration names a target Roster must not connect to. */
export class TargetNotAllowedError extends RosterError {
  static readonly code = Errors.targetNotAllowed.code
  constructor (message: string) {
    super(TargetNotAllowedError.code, Errors.targetNotAllowed.status, message)
    this.name = 'TargetNotAllowedError'
  }
}

/** The target's name does not resolve (400), or the resolver did not answer in time (503). */
export class TargetUnresolvedError extends RosterError {
  static readonly code = Errors.targetUnresolved.code
  constructor (message: string, statusCode: (typeof Errors.targetUnresolved.status)[number]) {
    super(TargetUnresolvedError.code, statusCode, message, { expose: true })
    this.name = 'TargetUnresolvedError'
  }
}

/** `--write-rate` reached (write-rate.ts); @fastify/rate-limit sets Retry-After. */
export class RateLimitedError extends RosterError {
  static readonly code = Errors.rateLimited.code
  constructor (perSecond: number, retryAfterS: number) {
    super(RateLimitedError.code, Errors.rateLimited.status, `write rate limit exceeded: at most ${perSecond} writes per second per client (--write-rate); retry in ${retryAfterS} s`)
    this.name = 'RateLimitedError'
  }
}

/** A plain HTTP GET on the WebSocket feed. */
export class UpgradeRequiredError extends RosterError {
  static readonly code = Errors.upgradeRequired.code
  constructor (path: string) {
    super(UpgradeRequiredError.code, Errors.upgradeRequired.status, `${path} is a WebSocket feed: connect with a WebSocket client`, {
      headers: { Upgrade: 'websocket', Connection: 'Upgrade' }
    })
    this.name = 'UpgradeRequiredError'
  }
}

/** What a client sent, quoted in a message: escaped (printable, jsonLine) and cut to this many characters,
 *  so that a hostile path or header can neither garble a terminal nor bloat the answer. */
const QUOTED_MAX_CHARS = 120

function bounded (text: string): string {
  const chars = [...text]
  return chars.length > QUOTED_MAX_CHARS ? `${chars.slice(0, QUOTED_MAX_CHARS).join('')}…` : text
}

/** No route for this method and path (Fastify's own 404 has no code and no hint). The path is
 *  quoted without its query string, which is where a secret put in a URL by mistake would be. */
export class RouteNotFoundError extends RosterError {
  static readonly code = Errors.notFound.code
  constructor (method: string, url: string) {
    const path = url.split('?', 1)[0] ?? ''
    super(RouteNotFoundError.code, Errors.notFound.status, `no route for ${printable(bounded(method))} ${printable(bounded(path))}; the API is described at /openapi.json`)
    this.name = 'RouteNotFoundError'
  }
}

/** A body that is not JSON (`curl -d` sends application/x-www-form-urlencoded): Fastify's own 415
 *  says only "Unsupported Media Type: …". Its code is kept, so clients that match it still do. */
export class UnsupportedMediaTypeError extends RosterError {
  static readonly code = 'FST_ERR_CTP_INVALID_MEDIA_TYPE'
  constructor (contentType: string | undefined) {
    super(UnsupportedMediaTypeError.code, 415, 'the body must be JSON, sent with Content-Type: application/json; ' +
      (contentType === undefined || contentType === '' ? 'this request had no Content-Type' : `this request's was ${jsonLine(bounded(contentType))}`))
    this.name = 'UnsupportedMediaTypeError'
  }
}

/** RFC 6750 §3: a 401 names the scheme; `error="invalid_token"` when a token was presented. */
const BEARER_CHALLENGE = 'Bearer realm="roster"'

/** No token, or one that is unknown, revoked or expired. The message never quotes the token. */
export class UnauthorizedError extends RosterError {
  static readonly code = Errors.unauthorized.code
  constructor (message: string, presented: boolean) {
    super(UnauthorizedError.code, Errors.unauthorized.status, message, {
      headers: { 'WWW-Authenticate': presented ? `${BEARER_CHALLENGE}, error="invalid_token"` : BEARER_CHALLENGE }
    })
    this.name = 'UnauthorizedError'
  }
}

/** A valid token without the scope this request needs; the message names that scope. */
export class ForbiddenError extends RosterError {
  static readonly code = Errors.forbidden.code
  constructor (needed: string) {
    super(ForbiddenError.code, Errors.forbidden.status, `this token may not do this: needs ${needed}`)
    this.name = 'ForbiddenError'
  }
}

/** Auth is on and this gateway has no token list from a leader yet: an unknown secret may be
 *  valid, so the answer is "retry" (503 + Retry-After) rather than 401. */
export class TokensNotLoadedError extends RosterError {
  static readonly code = Errors.tokensNotLoaded.code
  constructor () {
    super(TokensNotLoadedError.code, Errors.tokensNotLoaded.status, 'this gateway has not received the token list from a leader yet; retry shortly', { expose: true })
    this.name = 'TokensNotLoadedError'
  }
}

/** A token's `expiresAt` that is not in the future: JSON Schema cannot compare with now. */
export class InvalidTokenRequestError extends RosterError {
  static readonly code = Errors.invalidTokenRequest.code
  constructor (message: string) {
    super(InvalidTokenRequestError.code, Errors.invalidTokenRequest.status, message)
    this.name = 'InvalidTokenRequestError'
  }
}

/** The leader refused a write (409 conflict, 404 unknown, …): its status and code pass through. */
export class LeaderRejectedError extends RosterError {
  constructor (statusCode: number, code: string, message: string) {
    super(code, statusCode, message)
    this.name = 'LeaderRejectedError'
  }
}

export interface ErrorBody { statusCode: number, code: string, error: string, message: string }

const PUBLIC_MESSAGES: Record<string, string> = {
  [LeaderUnavailableError.code]: 'no leader is available to accept writes; retry shortly'
}
const PUBLIC_BY_STATUS: Record<number, string> = {
  503: 'temporarily unavailable; retry shortly'
}

/** What a client sees for an error: pass-through below 500, a fixed text from 500 up unless the
 *  error was written for clients. */
export function errorBody (thrown: unknown): ErrorBody {
  const err = (typeof thrown === 'object' && thrown !== null ? thrown : {}) as { statusCode?: unknown, code?: unknown, message?: unknown }
  const statusCode = typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode <= 599
    ? err.statusCode
    : 500
  const error = STATUS_CODES[statusCode] ?? 'Error'
  if (statusCode < 500) {
    // Fastify's own text does not say what the limit is.
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return { statusCode, code: err.code, error, message: 'body is larger than the 64 KiB limit' }
    }
    return {
      statusCode,
      code: typeof err.code === 'string' ? err.code : Errors.badRequest.code,
      error,
      message: typeof err.message === 'string' ? err.message : error
    }
  }
  if (thrown instanceof RosterError) {
    return { statusCode, code: thrown.code, error, message: thrown.expose ? thrown.message : (PUBLIC_MESSAGES[thrown.code] ?? PUBLIC_BY_STATUS[statusCode] ?? error) }
  }
  return { statusCode, code: Errors.internal.code, error, message: error }
}
