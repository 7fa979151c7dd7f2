// RosterClient: Roster's REST API and change feed as typed methods, over any number of gateways.
// It checks its arguments, builds each request, and keeps the highest registry revision it has
// seen, which every read sends as `minRevision` so that reads never go back in time across
// gateways; the attempts, failover and retries are transport.ts's, the feed is watch.ts's.
import { GatewayPool } from './gateway-pool.js'
import { Transport, type Answer, type CallOptions, type RetryInfo } from './transport.js'
import { RosterResponseError } from './errors.js'
import type {
  Deregistration, GatewayHealth, Health, ListFilters, MaintenanceRequest, Provider, ProviderList, ProviderSpec, ProviderResult, Registration, ServiceList
} from './types.js'
import { RosterWatch, type WatchOptions } from './watch.js'

export interface RosterClientOptions {
  /**
   * The gateways' base URLs, e.g. `['http://10.0.0.5:7070', 'http://10.0.0.6:7070']` (http or
   * https, optionally with a path prefix behind a proxy). Calls are spread over them in turn and
   * move on to the next when one fails.
   */
  urls: readonly string[]
  /** The secret of an API token, sent as `Authorization: Bearer <token>` on every request and on
   *  the feed's upgrade; needed when the gateways run with `--auth on`. */
  token?: string
  /** The deadline of one call, all its attempts and pauses included. Default 20 s. */
  timeoutMs?: number
  /** The bound of one attempt on one gateway. Default 8 s. */
  attemptTimeoutMs?: number
  /** Called before each retry (a failed attempt the client repeats, on another gateway or after a
   *  pause), and when a watch reconnects: for logs. It must not throw. */
  onRetry?: (info: RetryInfo) => void
}

/** Options of a read: those of any call, and a revision the answer must reflect at least. */
export interface ReadOptions extends CallOptions {
  /**
   * Wait until the gateway has reached this revision (e.g. one returned by a write of another
   * client). The client sends the higher of this and the highest revision it has seen itself.
   */
  minRevision?: number
}

/**
 * 20 s: the longest ordinary trouble a call must ride through is a gateway whose replica lags,
 * which answers 504 after waiting 5 s for `minRevision` (server/gateway/read-gate.ts), followed by
 * a leader failover, during which writes answer 503 for up to 2 s; 20 s covers both with room
 * for a frozen gateway's attempt timeout. A caller in a hurry passes its own `timeoutMs`.
 */
export const DEFAULT_TIMEOUT_MS = 20_000
/**
 * 8 s: longer than a healthy gateway ever takes (5 s for a `minRevision` wait, 2 s for a write
 * to become visible, plus a commit), so only a gateway that stopped answering runs into it.
 */
export const DEFAULT_ATTEMPT_TIMEOUT_MS = 8000

const REVISION_HEADER = 'x-roster-revision'
const FILTERS = new Set(['state', 'protocol', 'tag'])

/**
 * A client of Roster's gateways. Every method resolves with the gateway's answer, typed from
 * the server's schemas, or rejects with:
 *
 * - `RosterHttpError` when a gateway answered with a 4xx (`statusCode`, `code`, `message`, the
 *   message naming the field of a 400): thrown at once, never retried;
 * - `RosterUnavailableError` when no gateway completed the call before its deadline (refused,
 *   reset, timed out, 502/503/504 everywhere);
 * - `TypeError` for a bad argument, before anything is sent;
 * - the signal's reason when the call's `signal` aborts.
 *
 * Writes are retried on another gateway when the one in use fails mid-request. That is safe:
 * a registration, maintenance and renewal are idempotent, and `deregister` resolves a 404 that
 * follows such a failure as done.
 *
 * ```ts
 * const roster = new RosterClient({ urls: ['http://127.0.0.1:7070', 'http://127.0.0.1:7080'] })
 * const { revision } = await roster.register('orders', 'orders-1', { host: '10.0.0.5', port: 8080, protocol: 'http', heartbeat: 'tcp://10.0.0.5:9100' })
 * const { providers } = await roster.list('orders', { state: 'up' })
 * ```
 */
export class RosterClient {
  /** The gateways' base URLs, as given (without a trailing slash). */
  readonly urls: readonly string[]
  private readonly pool: GatewayPool
  private readonly transport: Transport
  private readonly token: string | undefined
  private readonly attemptTimeoutMs: number
  private readonly onRetry: ((info: RetryInfo) => void) | undefined
  private highest = 0

  constructor (options: RosterClientOptions) {
    if (typeof options !== 'object' || options === null) throw new TypeError('RosterClient: options must be an object with urls')
    const { urls, token, timeoutMs = DEFAULT_TIMEOUT_MS, attemptTimeoutMs = DEFAULT_ATTEMPT_TIMEOUT_MS, onRetry } = options
    if (!Array.isArray(urls) || urls.length === 0) throw new TypeError('RosterClient: options.urls must be a non-empty array of gateway URLs')
    this.urls = urls.map((url, i) => gatewayUrl(url, `options.urls[${i}]`))
    if (token !== undefined && (typeof token !== 'string' || !/^[\x21-\x7e]{1,1024}$/.test(token))) {
      // Never quote the token itself: it is a secret, and errors end up in logs.
      throw new TypeError('RosterClient: options.token must be 1–1024 printable ASCII characters without spaces (an API token secret)')
    }
    positiveInteger(timeoutMs, 'options.timeoutMs')
    positiveInteger(attemptTimeoutMs, 'options.attemptTimeoutMs')
    if (onRetry !== undefined && typeof onRetry !== 'function') throw new TypeError('RosterClient: options.onRetry must be a function')
    this.token = token
    this.attemptTimeoutMs = attemptTimeoutMs
    this.onRetry = onRetry
    this.pool = new GatewayPool(this.urls)
    this.transport = new Transport({ pool: this.pool, token, timeoutMs, attemptTimeoutMs, onRetry })
  }

  /** The highest registry revision this client has seen (from writes, reads and watches); every
   *  read asks its gateway for at least this one. 0 before the first answer. */
  get revision (): number {
    return this.highest
  }

  /**
   * Registers a provider, or updates it (`PUT /v1/services/{service}/providers/{id}`). Idempotent:
   * the same spec again changes nothing and answers with the revision it already had.
   * @throws RosterHttpError 400 (a bad field, named in the message), 409 (the id is registered under another service), 429 (quota, rate limit)
   */
  async register (service: string, id: string, spec: ProviderSpec, options?: CallOptions): Promise<Registration> {
    if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) throw new TypeError('register: spec must be an object (the provider\'s host, port, protocol, …)')
    const answer = await this.write('register', 'PUT', providerPath(service, id), spec, options)
    const body = answer.body as ProviderResult
    this.note(body.revision)
    return { provider: body.provider, revision: body.revision, created: answer.status === 201 }
  }

  /**
   * Deregisters a provider (`DELETE /v1/services/{service}/providers/{id}`). When the gateway in
   * use fails mid-request, the call is retried on another; if that retry answers 404, an earlier
   * attempt (or another client meanwhile) has removed it, and the call resolves with
   * `revision: null` rather than failing. A 404 with no such earlier attempt is thrown.
   * @throws RosterHttpError 404 (no such provider under this service)
   */
  async deregister (service: string, id: string, options?: CallOptions): Promise<Deregistration> {
    const answer = await this.transport.send({ operation: 'deregister', method: 'DELETE', path: providerPath(service, id), goneIsDone: true }, options)
    if (answer.gone) return { revision: null }
    const revision = (answer.body as { revision: number }).revision
    this.note(revision)
    return { revision }
  }

  /**
   * One provider (`GET /v1/services/{service}/providers/{id}`).
   * @throws RosterHttpError 404 (no such provider under this service)
   */
  async get (service: string, id: string, options?: ReadOptions): Promise<Provider> {
    const answer = await this.read('get', providerPath(service, id), new URLSearchParams(), options)
    this.note(Number(answer.headers.get(REVISION_HEADER)))
    return answer.body as Provider
  }

  /**
   * A service's providers, sorted by id (`GET /v1/services/{service}/providers`), filtered by
   * `state`, `protocol` and `tag` (one or several, all of which a provider must carry). An
   * unknown service is an empty list.
   * @throws RosterHttpError 400 (a bad filter value, named in the message)
   */
  async list (service: string, filters: ListFilters = {}, options?: ReadOptions): Promise<ProviderList> {
    if (typeof filters !== 'object' || filters === null) throw new TypeError('list: filters must be an object ({ state, protocol, tag })')
    const query = new URLSearchParams()
    for (const [key, value] of Object.entries(filters)) {
      if (!FILTERS.has(key)) throw new TypeError(`list: filters.${key} is not a filter (state, protocol, tag)`)
      if (value === undefined) continue
      for (const v of Array.isArray(value) ? value : [value]) query.append(key, String(v))
    }
    const answer = await this.read('list', `${servicePath(service)}/providers`, query, options)
    const body = answer.body as ProviderList
    this.note(body.revision)
    return body
  }

  /** Every service with at least one provider, with its provider and up counts (`GET /v1/services`);
   *  with `--auth on`, only those the token may read. */
  async services (options?: ReadOptions): Promise<ServiceList> {
    const answer = await this.read('services', '/v1/services', new URLSearchParams(), options)
    const body = answer.body as ServiceList
    this.note(body.revision)
    return body
  }

  /**
   * Holds a provider out of rotation (`{ enabled: true, reason? }`: state `maintenance`) or
   * releases it (`{ enabled: false }`: `pending` until its watcher reports)
   * (`PUT /v1/services/{service}/providers/{id}/maintenance`). Idempotent.
   * @throws RosterHttpError 400, 404
   */
  async maintenance (service: string, id: string, body: MaintenanceRequest, options?: CallOptions): Promise<ProviderResult> {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new TypeError('maintenance: body must be an object ({ enabled, reason? })')
    const answer = await this.write('maintenance', 'PUT', `${providerPath(service, id)}/maintenance`, body, options)
    const result = answer.body as ProviderResult
    this.note(result.revision)
    return result
  }

  /**
   * Renews a provider's ttl check (`PUT /v1/services/{service}/providers/{id}/heartbeat`): it is
   * `up` until `ttlMs` passes without another renewal. Repeating a renewal is harmless.
   * @throws RosterHttpError 404, 409 (the provider has no ttl check)
   */
  async renew (service: string, id: string, options?: CallOptions): Promise<ProviderResult> {
    const answer = await this.write('renew', 'PUT', `${providerPath(service, id)}/heartbeat`, undefined, options)
    const result = answer.body as ProviderResult
    this.note(result.revision)
    return result
  }

  /** The health of the first gateway that answers (`GET /v1/health`), and which one it was:
   *  `leader: "unavailable"` means writes cannot be made now, while reads still work. */
  async health (options?: CallOptions): Promise<GatewayHealth> {
    const answer = await this.transport.send({ operation: 'health', method: 'GET', path: '/v1/health' }, options)
    if (answer.gone) throw new Error('unreachable: health is not a DELETE')
    const body = answer.body as Health
    this.note(body.revision)
    return { ...body, gateway: answer.gateway }
  }

  /**
   * The change feed (`GET /v1/watch`) as an async iterator of the server's messages: a snapshot
   * first (unless `since` is given and the events after it are still available), then an event
   * for every change, in revision order. It survives its gateways: when a connection ends it
   * resumes on the next gateway with `since` = the last revision it took, and drops anything it
   * had already, so each change is delivered once. A snapshot after the first message has
   * `reset: true` and replaces everything before it.
   *
   * ```ts
   * for await (const message of roster.watch({ services: ['orders'] })) {
   *   if (message.type === 'snapshot') console.log('now', message.providers.length, 'providers')
   *   else console.log(message.revision, message.event, message.provider.id)
   * }
   * ```
   */
  watch (options: WatchOptions = {}): RosterWatch {
    return new RosterWatch({
      pool: this.pool,
      token: this.token,
      attemptTimeoutMs: this.attemptTimeoutMs,
      onRetry: this.onRetry,
      noteRevision: (revision) => this.note(revision)
    }, options)
  }

  private note (revision: number): void {
    if (Number.isSafeInteger(revision) && revision > this.highest) this.highest = revision
  }

  private async write (operation: string, method: 'PUT', path: string, body: unknown, options: CallOptions | undefined): Promise<Answer & { gone: false }> {
    const answer = await this.transport.send({ operation, method, path, body }, options)
    if (answer.gone) throw new Error('unreachable: only a DELETE resolves as gone')
    return answer
  }

  private async read (operation: string, path: string, query: URLSearchParams, options: ReadOptions = {}): Promise<Answer & { gone: false }> {
    const { minRevision } = options
    if (minRevision !== undefined && (!Number.isSafeInteger(minRevision) || minRevision < 0)) {
      throw new TypeError(`${operation}: minRevision must be a revision (an integer >= 0), got ${String(minRevision)}`)
    }
    const floor = Math.max(this.highest, minRevision ?? 0)
    if (floor > 0) query.set('minRevision', String(floor))
    const answer = await this.transport.send({ operation, method: 'GET', path, query }, options)
    if (answer.gone) throw new Error('unreachable: only a DELETE resolves as gone')
    if (typeof answer.body !== 'object' || answer.body === null) {
      throw new RosterResponseError(answer.gateway, `${answer.gateway} answered GET ${path} with JSON that is not an object`)
    }
    return answer
  }
}

/** A gateway's base URL, checked: http or https, no query, fragment or credentials. */
function gatewayUrl (value: unknown, name: string): string {
  if (typeof value !== 'string') throw new TypeError(`RosterClient: ${name} must be a URL string, got ${typeof value}`)
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw new TypeError(`RosterClient: ${name} must be an absolute http(s) URL such as http://127.0.0.1:7070, got ${preview(value)}`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new TypeError(`RosterClient: ${name} must use http or https (the feed's ws/wss is derived from it), got ${preview(url.protocol)}`)
  }
  if (url.username !== '' || url.password !== '') throw new TypeError(`RosterClient: ${name} must not carry credentials; pass options.token`)
  if (url.search !== '' || url.hash !== '') throw new TypeError(`RosterClient: ${name} must not have a query or a fragment`)
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`
}

/**
 * One path segment. Encoded, so `/`, `?` or `#` in a name cannot address another route (the
 * gateway then answers 400 naming the parameter); `.` and `..` are refused here because URL
 * parsing removes them (also as `%2e`), which would send the request to another path.
 */
function segment (value: unknown, name: string): string {
  if (typeof value !== 'string' || value === '') throw new TypeError(`${name} must be a non-empty string, got ${typeof value === 'string' ? 'an empty string' : typeof value}`)
  if (value === '.' || value === '..') throw new TypeError(`${name} must not be '.' or '..', which a URL path cannot carry`)
  try {
    return encodeURIComponent(value)
  } catch {
    // URIError: an unpaired surrogate has no UTF-8 form to send.
    throw new TypeError(`${name} must be well-formed Unicode (it contains an unpaired surrogate)`)
  }
}

function servicePath (service: unknown): string {
  return `/v1/services/${segment(service, 'service')}`
}

function providerPath (service: unknown, id: unknown): string {
  return `${servicePath(service)}/providers/${segment(id, 'id')}`
}

function positiveInteger (value: unknown, name: string): void {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new TypeError(`RosterClient: ${name} must be a positive integer (milliseconds), got ${String(value)}`)
  }
}

function preview (value: string): string {
  return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value)
}
