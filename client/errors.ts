// The errors the client throws on purpose, one class per way a call can fail, so that a caller
// branches on `instanceof` or a stable `code` rather than on message text. Bad arguments are
// the standard TypeError, thrown before anything is sent. No error ever quotes the token.

/** Base of every error the client throws on purpose (not of a bad argument's TypeError). */
export class RosterClientError extends Error {
  /** Stable: `ROSTER_ERR_…` or `FST_ERR_…` from the server, `ROSTER_ERR_CLIENT_…` from the client. */
  readonly code: string

  constructor (code: string, message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'RosterClientError'
    this.code = code
  }
}

/**
 * A gateway answered with an error status. `statusCode`, `code` and `message` are the server's
 * (`{ statusCode, code, error, message }`); a 400's message names the field and the rule, e.g.
 * `body/port must be <= 65535`. Thrown at once for a 4xx, which no other gateway would answer
 * differently; a 502, 503 or 504 is retried on the next gateway instead, and ends up in a
 * RosterUnavailableError's `attempts` if no gateway does better.
 */
export class RosterHttpError extends RosterClientError {
  readonly statusCode: number
  /** The HTTP reason phrase, e.g. `Bad Request`. */
  readonly error: string
  /** The base URL of the gateway that answered. */
  readonly gateway: string
  /** From a `Retry-After` header (429, 503), in milliseconds. */
  readonly retryAfterMs: number | undefined

  constructor (init: { statusCode: number, code: string, error: string, message: string, gateway: string, retryAfterMs?: number }) {
    super(init.code, init.message)
    this.name = 'RosterHttpError'
    this.statusCode = init.statusCode
    this.error = init.error
    this.gateway = init.gateway
    this.retryAfterMs = init.retryAfterMs
  }
}

/** One failed attempt of a call: which gateway, and what went wrong there. */
export interface AttemptFailure {
  gateway: string
  /** `ECONNREFUSED`, `timeout`, `ECONNRESET`, … or the server's code for a 502/503/504. */
  code: string
  /** Present when the gateway answered (502, 503, 504). */
  statusCode?: number
  message: string
}

/**
 * No gateway completed the call before its deadline: every attempt was refused, reset, timed
 * out or answered 502/503/504 (no leader, a gateway not ready, a replica that did not reach
 * `minRevision`). `attempts` lists them in order; `cause` is the last one. A write that ends
 * here may or may not have been stored (an attempt may have reached the leader before its
 * gateway died): all of Roster's writes are safe to repeat.
 */
export class RosterUnavailableError extends RosterClientError {
  static readonly code = 'ROSTER_ERR_CLIENT_UNAVAILABLE'
  readonly attempts: readonly AttemptFailure[]

  constructor (message: string, attempts: readonly AttemptFailure[], options?: ErrorOptions) {
    super(RosterUnavailableError.code, message, options)
    this.name = 'RosterUnavailableError'
    this.attempts = attempts
  }
}

/** A gateway answered 2xx with something that is not Roster's JSON (a proxy's page, say). */
export class RosterResponseError extends RosterClientError {
  static readonly code = 'ROSTER_ERR_CLIENT_BAD_RESPONSE'
  readonly gateway: string

  constructor (gateway: string, message: string, options?: ErrorOptions) {
    super(RosterResponseError.code, message, options)
    this.name = 'RosterResponseError'
    this.gateway = gateway
  }
}
