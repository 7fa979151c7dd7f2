// buildGateway: the gateway's Fastify application, assembled from its two ports (the replica it
// reads, the leader it writes through) with OpenAPI, the WebSocket feed, the REST routes and the
// one error handler at the edge. It returns an unstarted instance: it never listens, reads the
// environment or installs signal handlers; the entry point does.
import swagger from '@fastify/swagger'
import websocket from '@fastify/websocket'
import AjvCompiler from '@fastify/ajv-compiler'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { AddressInfo } from 'node:net'
import type { AllowedTargets } from '../protocol/targets.js'
import { errorBody, RosterError, RouteNotFoundError, UnsupportedMediaTypeError } from './errors.js'
import { createReadGate, MIN_REVISION_WAIT_MS } from './read-gate.js'
import type { Replica } from './replica.js'
import { healthRoutes } from './routes/health.js'
import { openapiRoutes } from './routes/openapi.js'
import { asyncapiRoutes } from './routes/asyncapi.js'
import { MIN_CHECK_INTERVAL_DEFAULT_MS, servicesRoutes, WRITE_VISIBLE_WAIT_MS } from './routes/services.js'
import { watchRoutes } from './routes/watch.js'
import { components, swaggerOptions } from './schemas/openapi.js'
import { createTargetGuard } from './target-guard.js'
import { finiteNumbersOnly, formatValidationErrors, type Validate } from './validation.js'
import { createWatchHub, WATCH_MAX_INBOUND_BYTES, type WatchLimits } from './watch-hub.js'
import { writeRateLimit } from './write-rate.js'
import { FEED_SUBPROTOCOL, installAuth, logSafeRequest } from './auth.js'
import { createTokenTable, type TokenTable } from './token-table.js'
import { tokensRoutes } from './routes/tokens.js'
import { uiRoutes } from './routes/ui.js'
import { defaultHttpLimits, type HttpLimits } from './http-limits.js'
import { RequestLogAtDebug } from './request-log.js'
import { installMetrics, type GatewayMetricsOptions } from './metrics.js'
import type { LeaderPort } from './ports.js'

export interface GatewayDeps {
  replica: Replica
  leader: LeaderPort
  /** The token list the leader client keeps current; an empty one when not given (auth off). */
  tokens?: TokenTable
}

export interface GatewayOptions {
  /** Fastify's logger option (false, true, or pino options). Default false. */
  logger?: FastifyServerOptions['logger']
  /** An existing pino logger instead (Fastify 5 takes an instance only through this option). */
  loggerInstance?: FastifyServerOptions['loggerInstance']
  /** Bound on `?minRevision` waits, ms. Default 5000 (read-gate.ts). */
  minRevisionWaitMs?: number
  /** Bound on a write's wait for the replica to show it, ms. Default 2000 (routes/services.ts). */
  writeVisibleWaitMs?: number
  /** `--auth on`: every request but health and the OpenAPI and AsyncAPI documents needs a bearer token
   *  (auth.ts). Default false. */
  auth?: boolean
  /** The watch feed's per-client bounds (watch-hub.ts). */
  watch?: Partial<WatchLimits>
  /** Where registrations may make workers connect (target-guard.ts): `--allow-targets` (null or
   *  absent: anywhere) and the leader candidates, whose ports are never a valid target. */
  targets?: { allow?: AllowedTargets | null, leaderCandidates?: readonly string[], ownHost?: string }
  /** The shortest http/tcp check interval accepted (`--min-check-interval-ms`). Default 1000. */
  minCheckIntervalMs?: number
  /** Writes per second per client (`--write-rate`); absent: no limit. */
  writeRatePerSecond?: number
  /** Connection cap and timeouts (http-limits.ts); defaults from defaultHttpLimits(). */
  http?: Partial<HttpLimits>
  /** Serve HTTPS and WSS with this PEM certificate (chain) and private key. */
  tls?: { cert: string | Buffer, key: string | Buffer }
  /** GET /metrics: what it adds to the gateway's own metrics (metrics.ts). */
  metrics?: GatewayMetricsOptions
}

/** Refused connections are logged at most this often, with their count: a flood at the cap
 *  must not turn into a flood of log lines. */
const DROP_LOG_INTERVAL_MS = 10_000

/** 64 KiB: the largest valid registration (32 tags of 64 characters, 32 meta entries of
 *  64 + 512) is under 24 KiB of JSON, so anything bigger is a mistake or an attack. */
export const BODY_LIMIT_BYTES = 64 * 1024

const buildAjv = AjvCompiler()

export async function buildGateway (deps: GatewayDeps, opts: GatewayOptions = {}): Promise<FastifyInstance> {
  const { replica, leader } = deps
  const limits: HttpLimits = { ...defaultHttpLimits(), ...opts.http }
  // Node's own server options: headersTimeout is only enforced by the periodic check, whose
  // interval is set here; https.createServer takes the same ones next to the certificate.
  const serverOptions = { headersTimeout: limits.headersTimeoutMs, connectionsCheckingInterval: limits.connectionsCheckingIntervalMs }
  const tokens = deps.tokens ?? createTokenTable()
  // The request serializer that keeps a secret sent in a URL by mistake out of the logs.
  const serializers = { req: logSafeRequest }
  const logger = opts.logger === true ? { serializers } : typeof opts.logger === 'object' ? { ...opts.logger, serializers: { ...opts.logger.serializers, ...serializers } } : opts.logger
  const app = Fastify({
    ...(opts.loggerInstance === undefined
      ? { logger: logger ?? false }
      : { loggerInstance: opts.loggerInstance.child({}, { serializers }) as FastifyServerOptions['loggerInstance'] }),
    ...(opts.tls === undefined ? { http: serverOptions } : { https: { ...serverOptions, cert: opts.tls.cert, key: opts.tls.key } }),
    logController: new RequestLogAtDebug(),
    connectionTimeout: limits.connectionTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    bodyLimit: BODY_LIMIT_BYTES,
    // find-my-way's default (100) answers 414 to a valid 101–128-character provider id; 512
    // lets every over-long id reach the schema, which answers 400 naming params/id.
    routerOptions: { maxParamLength: 512 },
    ajv: {
      customOptions: {
        // Unknown fields are errors, not silently dropped; no defaults (the leader applies a
        // registration's, protocol/model.ts); 'array' lets `?tag=a` and `?tag=a&tag=b` both reach an array schema.
        removeAdditional: false,
        useDefaults: false,
        coerceTypes: 'array',
        // Puts the failing schema on each error, so a bad pattern can quote its description.
        verbose: true,
        // The check is a oneOf discriminated by its `type` (schemas/common.ts).
        discriminator: true
      }
    },
    // Query strings and paths are text, so they are coerced; a JSON body already has types, and
    // coercing it would turn `"port": true` into port 1. Bodies get a non-coercing validator.
    schemaController: {
      compilersFactory: {
        buildValidator (externalSchemas, ajvOptions) {
          const options = ajvOptions as { customOptions?: object }
          const coercing = buildAjv(externalSchemas, options)
          const strict = buildAjv(externalSchemas, { ...options, customOptions: { ...options.customOptions, coerceTypes: false } })
          return (route) => (route.httpPart === 'body' ? strict(route) : finiteNumbersOnly(coercing(route) as Validate) as ReturnType<typeof coercing>)
        }
      }
    },
    schemaErrorFormatter: formatValidationErrors
  }) as unknown as FastifyInstance
  limitConnections(app, limits.maxConnections)

  for (const schema of components) app.addSchema(schema)

  // Before any route: routes registered earlier are missing from the document (@fastify/swagger collects routes as they are added).
  await app.register(swagger, swaggerOptions)

  const hub = createWatchHub({ replica, leader, log: app.log.child({ component: 'watch-hub' }), limits: opts.watch })
  await app.register(websocket, {
    options: {
      maxPayload: WATCH_MAX_INBOUND_BYTES,
      // Only ever select roster.v1: ws would otherwise echo the first protocol offered, which
      // may be `bearer.<secret>`. A client that offers neither gets no subprotocol, as before.
      handleProtocols: (protocols) => (protocols.has(FEED_SUBPROTOCOL) ? FEED_SUBPROTOCOL : false)
    },
    // The default closes clients without a code; they must see 1001 to know to reconnect elsewhere.
    preClose: async () => {
      await hub.close()
      app.websocketServer.close()
    },
    // A client vanishing mid-stream is routine, not an error worth a stack at error level.
    errorHandler: (err, socket, req) => {
      req.log.info({ err }, 'watch socket error')
      socket.terminate()
    }
  })

  app.setNotFoundHandler((req) => { throw new RouteNotFoundError(req.method, req.url) })
  app.setErrorHandler((thrown, req, reply) => {
    const err = (thrown as { code?: unknown }).code === UnsupportedMediaTypeError.code ? new UnsupportedMediaTypeError(req.headers['content-type']) : thrown
    const body = errorBody(err)
    if (body.statusCode >= 500) req.log.error({ err }, 'request failed')
    // A 4xx is the client's mistake, answered in the body: a per-request line, so debug (request-log.ts).
    else req.log.debug({ code: body.code, statusCode: body.statusCode, reason: body.message }, 'request rejected')
    if (err instanceof RosterError) void reply.headers(err.headers)
    // 1 s: a standby leader takes over within about 2 s (leader-link: silence noticed after
    // 1–1.25 s), so clients retrying each second get through on the first or second retry.
    if (body.statusCode === 503) void reply.header('Retry-After', '1')
    return reply.status(body.statusCode).send(body)
  })

  installAuth(app, { enabled: opts.auth ?? false, tokens })
  installMetrics(app, { replica, hub, leaderStats: leader.stats, options: opts.metrics ?? {} })

  const readGate = createReadGate(replica, opts.minRevisionWaitMs ?? MIN_REVISION_WAIT_MS)
  // Kept once known: server.address() is a getsockname() system call, and the guard asks on
  // every registration (a listening server's port never changes).
  let ownPort: number | null = null
  const targetGuard = createTargetGuard({
    allow: opts.targets?.allow ?? null,
    leaderCandidates: opts.targets?.leaderCandidates ?? [],
    ownHost: opts.targets?.ownHost,
    ownPort: () => {
      if (ownPort !== null) return ownPort
      const address = app.server.address() as AddressInfo | string | null
      if (typeof address === 'object' && address !== null) ownPort = address.port
      return ownPort
    }
  })
  const writeLimit = opts.writeRatePerSecond === undefined ? undefined : await writeRateLimit(app, opts.writeRatePerSecond)
  await app.register(healthRoutes, { replica, leader })
  await app.register(servicesRoutes, {
    replica,
    leader,
    readGate,
    writeVisibleWaitMs: opts.writeVisibleWaitMs ?? WRITE_VISIBLE_WAIT_MS,
    targetGuard,
    minCheckIntervalMs: opts.minCheckIntervalMs ?? MIN_CHECK_INTERVAL_DEFAULT_MS,
    writeLimit
  })
  await app.register(watchRoutes, { replica, hub })
  await app.register(tokensRoutes, { leader, tokens })
  await app.register(openapiRoutes)
  await app.register(asyncapiRoutes)
  await app.register(uiRoutes)
  return app
}

/** Beyond `max` open connections Node closes each new one as soon as it is accepted, so that
 *  its descriptor is free again at once; the refusals are counted and logged now and then. */
function limitConnections (app: FastifyInstance, max: number): void {
  app.server.maxConnections = max
  let dropped = 0
  let lastLogAt = -Infinity
  app.server.on('drop', () => {
    dropped++
    const now = Date.now()
    if (now - lastLogAt < DROP_LOG_INTERVAL_MS) return
    app.log.warn({ maxConnections: max, refused: dropped }, 'connection cap reached; refusing new connections')
    lastLogAt = now
    dropped = 0
  })
}
