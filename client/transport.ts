// One REST call as the client makes it: attempts over the gateways in the pool's order until one
// answers, within a deadline. It decides what is worth another gateway (no connection, a reset
// or a timeout, 502/503/504) and what is the answer (2xx, any other 4xx), and it is the only
// code that calls fetch. It must never retry a request a caller could not safely repeat: every
// write Roster has is idempotent (README, What each failure looks like to a client), and the one
// whose retry can answer differently, DELETE, is resolved here by its caller's rule.
import { backoffMs, type GatewayPool } from './gateway-pool.js'
import { type AttemptFailure, RosterHttpError, RosterResponseError, RosterUnavailableError } from './errors.js'

/** What the client reports before it retries, for logs and command-line `--verbose` output. */
export interface RetryInfo {
  /** The client method, e.g. `register`, or `watch` for a feed that reconnects. */
  operation: string
  /** What failed, and where. */
  failure: AttemptFailure
  /** How long the client waits before the next attempt: 0 when it moves on to the next gateway
   *  at once, a backoff after a round in which every gateway failed. */
  delayMs: number
}

export interface TransportOptions {
  pool: GatewayPool
  token: string | undefined
  timeoutMs: number
  attemptTimeoutMs: number
  onRetry: ((info: RetryInfo) => void) | undefined
}

export interface Request {
  operation: string
  method: 'GET' | 'PUT' | 'DELETE'
  /** Under the gateway's base URL, with its path parameters already encoded. */
  path: string
  query?: URLSearchParams
  body?: unknown
  /** A 404 answered to a retry after an attempt that may have reached the leader means an
   *  earlier attempt did the work: resolve with `{ gone: true }` rather than throw. */
  goneIsDone?: boolean
}

export interface CallOptions {
  /** Aborts the call, retries included; it rejects with the signal's reason. */
  signal?: AbortSignal
  /** This call's deadline, retries included, instead of the client's `timeoutMs`. */
  timeoutMs?: number
}

export type Answer =
  | { gone: false, status: number, body: unknown, headers: Headers, gateway: string }
  | { gone: true, gateway: string }

/** Failures after which the request certainly never reached a gateway: nothing to be unsure of. */
const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'UND_ERR_CONNECT_TIMEOUT'])
/** 502 and 504 come from a gateway's own wait (minRevision) or from a proxy in front of a dead
 *  gateway, 503 from a gateway without a leader or not yet loaded: another gateway may do better. */
const RETRYABLE_STATUS = new Set([502, 503, 504])
/** `attempts` kept for the error a failed call throws: the most recent ones. */
const MAX_REPORTED_ATTEMPTS = 50
/** Error bodies are Fastify's small JSON object; a proxy's page is cut to this for the message. */
const MAX_QUOTED_BODY = 200

export class Transport {
  private readonly opts: TransportOptions

  constructor (opts: TransportOptions) {
    this.opts = opts
  }

  async send (req: Request, call: CallOptions = {}): Promise<Answer> {
    const { pool, onRetry } = this.opts
    const timeoutMs = call.timeoutMs ?? this.opts.timeoutMs
    const deadline = Date.now() + timeoutMs
    const attempts: AttemptFailure[] = []
    let mayHaveApplied = false
    let round = 0
    let retryAfterMs: number | undefined
    let order = pool.order()
    for (let i = 0; ;) {
      call.signal?.throwIfAborted()
      const gateway = order[i] as string
      const outcome = await this.attempt(gateway, req, Math.min(this.opts.attemptTimeoutMs, Math.max(1, deadline - Date.now())), call.signal)
      if (outcome.kind === 'answer') {
        pool.succeeded(gateway)
        return { gone: false, ...outcome.answer }
      }
      if (outcome.kind === 'error') {
        // A 404 to a repeated DELETE: the earlier attempt that may have reached the leader did remove it.
        if (outcome.error.statusCode === 404 && req.goneIsDone === true && mayHaveApplied) return { gone: true, gateway }
        pool.succeeded(gateway) // it answered: the gateway is fine, the request is not
        throw outcome.error
      }
      pool.failed(gateway)
      attempts.push(outcome.failure)
      if (attempts.length > MAX_REPORTED_ATTEMPTS) attempts.shift()
      mayHaveApplied ||= outcome.mayHaveApplied
      if (outcome.retryAfterMs !== undefined) retryAfterMs = Math.min(retryAfterMs ?? Infinity, outcome.retryAfterMs)

      let delayMs = 0
      if (++i >= order.length) {
        delayMs = backoffMs(round++, retryAfterMs)
        retryAfterMs = undefined
        order = pool.order()
        i = 0
      }
      if (Date.now() + delayMs >= deadline) {
        const last = attempts.at(-1) as AttemptFailure
        throw new RosterUnavailableError(
          `no gateway completed ${req.method} ${req.path} within ${timeoutMs} ms (${attempts.length} attempts; the last, ${last.gateway}: ${last.code}: ${last.message})`,
          attempts,
          { cause: outcome.cause }
        )
      }
      onRetry?.({ operation: req.operation, failure: outcome.failure, delayMs })
      if (delayMs > 0) await sleep(delayMs, call.signal)
    }
  }

  private async attempt (gateway: string, req: Request, timeoutMs: number, signal: AbortSignal | undefined): Promise<AttemptOutcome> {
    const url = `${gateway}${req.path}${req.query !== undefined && req.query.size > 0 ? `?${req.query.toString()}` : ''}`
    const headers: Record<string, string> = { accept: 'application/json' }
    if (this.opts.token !== undefined) headers.authorization = `Bearer ${this.opts.token}`
    if (req.body !== undefined) headers['content-type'] = 'application/json'
    const timeout = AbortSignal.timeout(timeoutMs)
    let status: number
    let responseHeaders: Headers
    let text: string
    try {
      const res = await fetch(url, {
        method: req.method,
        headers,
        body: req.body === undefined ? undefined : JSON.stringify(req.body),
        signal: signal === undefined ? timeout : AbortSignal.any([signal, timeout]),
        redirect: 'error'
      })
      status = res.status
      responseHeaders = res.headers
      text = await res.text()
    } catch (err) {
      if (signal?.aborted === true) throw signal.reason
      return networkFailure(gateway, err, timeoutMs)
    }
    const parsed = parseJson(text)
    if (status >= 200 && status < 300) {
      if (parsed === undefined) {
        throw new RosterResponseError(gateway, `${gateway} answered ${req.method} ${req.path} with ${status} and a body that is not JSON: ${quote(text)}`)
      }
      return { kind: 'answer', answer: { status, body: parsed.value, headers: responseHeaders, gateway } }
    }
    const error = httpError(gateway, status, responseHeaders, parsed?.value, text)
    if (!RETRYABLE_STATUS.has(status)) return { kind: 'error', error }
    return {
      kind: 'failure',
      // A 503 can mean the leader did not answer in time, after the write reached it.
      mayHaveApplied: true,
      failure: { gateway, code: error.code, statusCode: status, message: error.message },
      retryAfterMs: error.retryAfterMs,
      cause: error
    }
  }
}

type AttemptOutcome =
  | { kind: 'answer', answer: { status: number, body: unknown, headers: Headers, gateway: string } }
  | { kind: 'error', error: RosterHttpError }
  | { kind: 'failure', failure: AttemptFailure, mayHaveApplied: boolean, retryAfterMs?: number | undefined, cause: unknown }

/** fetch rejects with TypeError('fetch failed') whose cause carries the socket's code (an
 *  AggregateError's first error for a name with several addresses), or with the timeout's
 *  DOMException. */
function networkFailure (gateway: string, err: unknown, timeoutMs: number): AttemptOutcome {
  if (err instanceof DOMException && (err.name === 'TimeoutError' || err.name === 'AbortError')) {
    return {
      kind: 'failure',
      mayHaveApplied: true,
      failure: { gateway, code: 'timeout', message: `no answer within ${timeoutMs} ms` },
      cause: err
    }
  }
  const cause = (err as { cause?: { code?: unknown, message?: unknown, errors?: Array<{ code?: unknown }> } } | undefined)?.cause
  const code = typeof cause?.code === 'string' ? cause.code : typeof cause?.errors?.[0]?.code === 'string' ? cause.errors[0].code : 'ENETWORK'
  const message = typeof cause?.message === 'string' && cause.message !== '' ? cause.message : String((err as Error | undefined)?.message ?? err)
  return { kind: 'failure', mayHaveApplied: !NOT_SENT.has(code), failure: { gateway, code, message }, cause: err }
}

function parseJson (text: string): { value: unknown } | undefined {
  if (text === '') return undefined
  try {
    return { value: JSON.parse(text) as unknown }
  } catch {
    return undefined
  }
}

/** The server's `{ statusCode, code, error, message }`, or what can be said of another body. */
export function httpError (gateway: string, status: number, headers: Headers, body: unknown, text: string): RosterHttpError {
  const fields = (typeof body === 'object' && body !== null ? body : {}) as { code?: unknown, error?: unknown, message?: unknown }
  const retryAfter = Number(headers.get('retry-after') ?? Number.NaN)
  return new RosterHttpError({
    statusCode: status,
    code: typeof fields.code === 'string' ? fields.code : `HTTP_${status}`,
    error: typeof fields.error === 'string' ? fields.error : `HTTP ${status}`,
    message: typeof fields.message === 'string' ? fields.message : `${gateway} answered ${status}${text === '' ? '' : `: ${quote(text)}`}`,
    gateway,
    ...(Number.isFinite(retryAfter) && retryAfter >= 0 ? { retryAfterMs: retryAfter * 1000 } : {})
  })
}

function quote (text: string): string {
  return JSON.stringify(text.length > MAX_QUOTED_BODY ? `${text.slice(0, MAX_QUOTED_BODY)}…` : text)
}

/** Resolves after `ms`, or rejects with the signal's reason as soon as it aborts. */
export async function sleep (ms: number, signal?: AbortSignal): Promise<void> {
  signal?.throwIfAborted()
  await new Promise<void>((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer)
      reject(signal?.reason)
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}
