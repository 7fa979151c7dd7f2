// Authentication and authorization at the gateway's edge (`--auth on`). Every request but the
// open ones (health, the OpenAPI and AsyncAPI documents) must carry `Authorization: Bearer <secret>` (or, on
// the WebSocket feed, the subprotocol `bearer.<secret>`, for browsers that cannot set headers):
// onRequest hashes the secret and looks it up in the token table (401 before any body is read),
// preHandler checks the route's scope against the validated service name (403 naming the scope).
// Each accepted write is logged with its token and client address. No secret is ever logged,
// stored or echoed: errors say what was wrong, never what was sent.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { canRead, canWrite, isAdmin } from '../protocol/scopes.js'
import { ForbiddenError, TokensNotLoadedError, UnauthorizedError } from './errors.js'
import type { AuthToken, TokenTable } from './token-table.js'

/** What a route needs: `open` (anyone), `authenticated` (any valid token; the route filters
 *  what it shows), `read`/`write` (of the route's `service` parameter), or `admin`. */
export type Access = 'open' | 'authenticated' | 'read' | 'write' | 'admin'

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated token; null when auth is off or on an open route. */
    token: AuthToken | null
  }
  interface FastifyContextConfig {
    /** Default `authenticated`. */
    access?: Access
  }
}

/** The feed's subprotocol, selected when a client offers it (with `bearer.<secret>` or not). */
export const FEED_SUBPROTOCOL = 'roster.v1'
export const BEARER_SUBPROTOCOL_PREFIX = 'bearer.'
/** A secret is 50 characters (roster_ + 43); anything much longer is not one of ours, and is
 *  not worth hashing. */
const MAX_SECRET_LENGTH = 256
const MAX_MEMO_ENTRIES = 10_000
const BEARER_RE = /^Bearer +([\x21-\x7e]+) *$/i

export interface AuthOptions {
  enabled: boolean
  tokens: TokenTable
}

/** Installs the hooks on the root instance, before the routes are registered. */
export function installAuth (app: FastifyInstance, { enabled, tokens }: AuthOptions): void {
  app.decorateRequest('token', null)

  if (enabled) {
    app.addHook('onRequest', async (req) => {
      if (accessOf(req) === 'open') return
      req.token = authenticate(req, tokens)
    })
    app.addHook('preHandler', async (req) => {
      const access = accessOf(req)
      const token = req.token
      if (access === 'open' || access === 'authenticated' || token === null) return
      if (access === 'admin') {
        if (!isAdmin(token.scopes)) throw new ForbiddenError('admin')
        return
      }
      const service = (req.params as { service?: unknown }).service
      if (typeof service !== 'string') throw new Error(`route ${req.routeOptions.url ?? ''} needs ${access} but has no service parameter`)
      if (!(access === 'read' ? canRead(token.scopes, service) : canWrite(token.scopes, service))) {
        throw new ForbiddenError(`${access}:${service}`)
      }
    })
  }

  // Once per accepted write, auth on or off: who did it and from where.
  app.addHook('onResponse', async (req, reply) => {
    if (req.method === 'GET' || req.method === 'HEAD' || req.method === 'OPTIONS' || reply.statusCode >= 400) return
    req.log.info({
      tokenId: req.token?.id ?? null,
      tokenName: req.token?.name ?? null,
      client: req.ip,
      method: req.method,
      url: logSafeUrl(req.url),
      statusCode: reply.statusCode
    }, 'write accepted')
  })
}

function accessOf (req: FastifyRequest): Access {
  return req.routeOptions.config?.access ?? 'authenticated'
}

function authenticate (req: FastifyRequest, tokens: TokenTable): AuthToken {
  const secret = presentedSecret(req)
  if (secret === null) throw new UnauthorizedError('a bearer token is required: send Authorization: Bearer <secret>', false)
  if (secret.length > MAX_SECRET_LENGTH) throw new UnauthorizedError('unknown or revoked token', true)
  const found = tokens.authenticate(secret, Date.now())
  if (found.ok) return found.token
  if (found.reason === 'not-loaded') throw new TokensNotLoadedError()
  if (found.reason === 'expired') throw new UnauthorizedError('this token has expired', true)
  throw new UnauthorizedError('unknown or revoked token', true)
}

/** The secret from the Authorization header, or on a WebSocket upgrade from the subprotocol
 *  `bearer.<secret>`; never from the URL. Null when there is none. */
function presentedSecret (req: FastifyRequest): string | null {
  const header = req.headers.authorization
  if (header !== undefined) {
    const m = BEARER_RE.exec(header)
    if (m === null) throw new UnauthorizedError('the Authorization header must be: Bearer <secret>', true)
    return m[1] as string
  }
  const protocols = req.headers['sec-websocket-protocol']
  if (typeof protocols === 'string' && req.headers.upgrade?.toLowerCase() === 'websocket') {
    for (const p of protocols.split(',')) {
      const offered = p.trim()
      if (offered.startsWith(BEARER_SUBPROTOCOL_PREFIX)) return offered.slice(BEARER_SUBPROTOCOL_PREFIX.length)
    }
  }
  return null
}

/** Which services a request may read: every one when auth is off (the request has no token). */
export function readableBy (token: AuthToken | null): ((service: string) => boolean) | null {
  if (token === null) return null
  if (token.scopes.some((s) => s === 'admin' || s === 'read' || s === 'read:*' || s === 'write:*')) return null
  // Memoised: the feed asks once per change per client, for a handful of service names; the
  // bound keeps a registry with very many services from growing it without limit.
  const memo = new Map<string, boolean>()
  return (service) => {
    let ok = memo.get(service)
    if (ok === undefined) {
      ok = canRead(token.scopes, service)
      if (memo.size >= MAX_MEMO_ENTRIES) memo.clear()
      memo.set(service, ok)
    }
    return ok
  }
}

/** Query parameters whose values are never logged, whatever route they are sent to. */
const SECRET_PARAM_RE = /([?&][^=&]*(?:token|secret|auth|key|password|bearer)[^=&]*=)[^&#]*/gi
/** A secret in our format anywhere in a URL (a path segment, an unnamed parameter). */
const SECRET_VALUE_RE = /roster_[A-Za-z0-9_-]{16,}/g

/** A URL as logged: secrets are never read from URLs, but a client that puts one there by
 *  mistake must not see it copied into every log line of the request. */
export function logSafeUrl (url: string): string {
  return url.replace(SECRET_PARAM_RE, '$1[redacted]').replace(SECRET_VALUE_RE, '[redacted]')
}

/** Fastify's own `req` log serializer (lib/logger-pino.js) with the URL made log-safe. */
export function logSafeRequest (req: FastifyRequest): Record<string, unknown> {
  return {
    method: req.method,
    url: logSafeUrl(req.url),
    version: req.headers?.['accept-version'],
    host: req.host,
    remoteAddress: req.ip,
    remotePort: req.socket?.remotePort
  }
}
