// The registry's REST resources (README.md › Every endpoint): reads answer from the replica and say which
// revision they reflect; writes go to the leader and return the revision they produced, after
// waiting (bounded) for this gateway's replica to catch up so that its next read sees them.
// Handlers never touch the leader's sockets or the database: only the two ports they are given.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply, onRequestHookHandler } from 'fastify'
import { Errors } from '../../protocol/error-codes.js'
import { registrationProblem, type Provider } from '../../protocol/model.js'
import type { WriteOp, WriteResult } from '../../protocol/messages.js'
import { readableBy } from '../auth.js'
import { InvalidRegistrationError, LeaderRejectedError, ProviderNotFoundError } from '../errors.js'
import type { ReadGate } from '../read-gate.js'
import type { Replica } from '../replica.js'
import type { LeaderPort } from '../ports.js'
import type { TargetGuard } from '../target-guard.js'
import {
  badRequestResponse,
  bodyErrors,
  errorResponse,
  forbiddenResponse,
  providerNotFoundResponse,
  ProviderSpecRef,
  rateLimitedResponse,
  REVISION_HEADER,
  revisionTimeoutResponse,
  unauthorizedResponse,
  unavailableResponse
} from '../schemas/common.js'
import {
  DeregisteredResponse,
  MaintenanceRequestRef,
  ProviderListQuery,
  ProviderListResponse,
  ProviderParams,
  ProviderResponse,
  providerResultResponse,
  ReadQuery,
  ServiceListResponse,
  ServiceParams,
  type ProviderList
} from '../schemas/services.js'

/** 2 s: the leader publishes right after its commit, so the replica normally has the write
 *  within milliseconds; past 2 s the write is still durable and is acknowledged anyway, and a
 *  client that must read it through this gateway can pass `minRevision`. */
export const WRITE_VISIBLE_WAIT_MS = 2000

/** 1 s: an http or tcp check opens a connection per run, so 200 checks at the schema's 50 ms
 *  floor made 4,000 connections a second to whatever host they named. At 1 s a provider is still
 *  seen down within about a second, like a silent heartbeat at the default interval. The flag
 *  may lower it to the schema's own floor (CHECK_INTERVAL_MIN_MS, 50 ms), never below. */
export const MIN_CHECK_INTERVAL_DEFAULT_MS = 1000

export interface ServicesRoutesOptions {
  replica: Replica
  leader: LeaderPort
  readGate: ReadGate
  writeVisibleWaitMs?: number
  /** Refuses registrations whose heartbeat or check target Roster must not connect to. */
  targetGuard?: TargetGuard
  /** http and tcp checks run at most this often (`--min-check-interval-ms`). */
  minCheckIntervalMs?: number
  /** The write rate limit's hook (write-rate.ts), on every write route; absent: no limit. */
  writeLimit?: onRequestHookHandler
}

/** Serialized provider lists kept (one per service read, the latest revision only). */
const MAX_CACHED_LISTS = 1024
const JSON_UTF8 = 'application/json; charset=utf-8'

const TAGS = ['services']
const security = [{ bearer: [] }]
// The error answers, by kind of operation (with --auth on: 401 and 403 naming the scope).
const readErrors = {
  400: badRequestResponse,
  401: unauthorizedResponse,
  403: forbiddenResponse('read of this service (read, read:<glob>, write:<glob> or admin)'),
  503: unavailableResponse,
  504: revisionTimeoutResponse
}
const writeErrors = {
  ...bodyErrors,
  401: unauthorizedResponse,
  403: forbiddenResponse('write of this service (write:<glob> or admin)'),
  503: unavailableResponse
}

export const servicesRoutes: FastifyPluginAsyncTypebox<ServicesRoutesOptions> = async (app, opts) => {
  const { replica, leader, readGate } = opts
  const writeVisibleWaitMs = opts.writeVisibleWaitMs ?? WRITE_VISIBLE_WAIT_MS
  const minCheckIntervalMs = opts.minCheckIntervalMs ?? MIN_CHECK_INTERVAL_DEFAULT_MS
  /** Hooks shared by every write route: the write rate limit, when there is one. */
  const writeHooks = opts.writeLimit === undefined ? {} : { onRequest: opts.writeLimit }

  /** Turns the leader's verdict into an answer, or throws it as the leader's own error. */
  async function settled (result: WriteResult): Promise<number> {
    if (!result.ok) throw new LeaderRejectedError(result.statusCode, result.code, result.message)
    if (!(await replica.waitForRevision(result.revision, writeVisibleWaitMs))) {
      app.log.warn({ revision: result.revision, reached: replica.revision }, 'write acknowledged before this replica saw it')
    }
    return result.revision
  }

  // The unfiltered list of a service, serialized once per replica version (each revision, and each
  // lastSeen refresh, twice a second while providers beat): reads far outnumber
  // changes, and serializing a hundred providers (and measuring and encoding the string) was
  // most of a read's cost. Made by the route's own response serializer, so the bytes are exactly
  // what Fastify would have sent. Services with no provider are not kept (clients choose the
  // names), and past MAX_CACHED_LISTS entries the cache starts over, so it stays bounded.
  const lists = new Map<string, { version: number, body: Buffer }>()
  function unfilteredList (service: string, revision: number, reply: FastifyReply): Buffer {
    const cached = lists.get(service)
    const version = replica.version
    if (cached !== undefined && cached.version === version) return cached.body
    const providers = replica.providers(service)
    const serialize = reply.getSerializationFunction('200')
    if (serialize === undefined) throw new Error('the provider list route has no 200 serializer')
    const body = Buffer.from(serialize({ revision, providers }))
    if (providers.length === 0) {
      lists.delete(service)
    } else {
      if (lists.size >= MAX_CACHED_LISTS && cached === undefined) lists.clear()
      lists.set(service, { version, body })
    }
    return body
  }

  app.get('/v1/services', {
    config: { access: 'authenticated' },
    schema: {
      tags: TAGS,
      operationId: 'listServices',
      summary: 'List services',
      description: 'Every service that has at least one provider, with its provider and up counts; with --auth on, only the services the token may read.',
      security,
      querystring: ReadQuery,
      // No 403: a token sees the services it may read, possibly none.
      response: { 200: ServiceListResponse, 400: readErrors[400], 401: readErrors[401], 503: readErrors[503], 504: readErrors[504] }
    }
  }, async (req, reply) => {
    await readGate(req.query.minRevision)
    const revision = replica.revision
    reply.header(REVISION_HEADER, revision)
    const readable = readableBy(req.token)
    const services = replica.services()
    return { revision, services: readable === null ? services : services.filter((s) => readable(s.name)) }
  })

  app.get('/v1/services/:service/providers', {
    config: { access: 'read' },
    schema: {
      security,
      tags: TAGS,
      operationId: 'listProviders',
      summary: "List a service's providers",
      description: 'Filters combine: `state`, `protocol`, and `tag` (repeatable; a provider must carry all of them). An unknown service is an empty list.',
      params: ServiceParams,
      querystring: ProviderListQuery,
      response: { 200: ProviderListResponse, ...readErrors }
    }
  }, async (req, reply) => {
    const { state, protocol, tag, minRevision } = req.query
    await readGate(minRevision)
    const revision = replica.revision
    reply.header(REVISION_HEADER, revision)
    if (state === undefined && protocol === undefined && tag === undefined) {
      // Fastify sends a Buffer as it is, unserialized; the type provider knows only the schema's type.
      return await reply.type(JSON_UTF8).send(unfilteredList(req.params.service, revision, reply) as unknown as ProviderList)
    }
    const tags = tag ?? []
    const matches = (p: Provider): boolean =>
      (state === undefined || p.state === state) &&
      (protocol === undefined || p.protocol === protocol) &&
      tags.every((t) => p.tags.includes(t))
    return { revision, providers: replica.providers(req.params.service).filter(matches) }
  })

  app.get('/v1/services/:service/providers/:id', {
    config: { access: 'read' },
    schema: {
      security,
      tags: TAGS,
      operationId: 'getProvider',
      summary: 'Get one provider',
      params: ProviderParams,
      querystring: ReadQuery,
      response: { 200: ProviderResponse, ...readErrors, 404: providerNotFoundResponse }
    }
  }, async (req, reply) => {
    const { service, id } = req.params
    await readGate(req.query.minRevision)
    const revision = replica.revision
    const provider = replica.provider(id)
    if (provider === undefined) throw new ProviderNotFoundError(service, id)
    if (provider.service !== service) throw new ProviderNotFoundError(service, id, provider.service)
    reply.header(REVISION_HEADER, revision)
    return provider
  })

  /** Sends a write that answers with the provider, and returns `{ provider, revision }`. */
  async function writeProvider (op: WriteOp): Promise<{ statusCode: number, provider: Provider, revision: number }> {
    const result = await leader.write(op)
    const revision = await settled(result)
    const provider = (result.ok ? result.provider : undefined) ?? replica.provider(op.id)
    // The leader's answer normally carries the provider; without it and with a lagging replica
    // there is nothing truthful to return, which is a server fault rather than the client's.
    if (provider === undefined) throw new Error(`write ${revision} acknowledged without its provider`)
    return { statusCode: result.statusCode, provider, revision }
  }

  app.put('/v1/services/:service/providers/:id', {
    config: { access: 'write' },
    schema: {
      security,
      tags: TAGS,
      operationId: 'registerProvider',
      summary: 'Register or update a provider',
      description: 'Idempotent. The id is unique across the registry: the same id under another service is a 409. ' +
        'A provider has either a `heartbeat` endpoint or a `check` (http, tcp or ttl). ' +
        'The answer comes after the leader committed the write and this gateway can read it.',
      params: ProviderParams,
      body: ProviderSpecRef,
      response: {
        200: providerResultResponse('updated, or unchanged (the same registration again)'),
        201: providerResultResponse('registered'),
        ...writeErrors,
        409: errorResponse('the id is registered under another service'),
        429: rateLimitedResponse(`a new provider beyond a quota: ${Errors.quotaService.code} or ${Errors.quotaTotal.code}, the message names the quota and its value`)
      }
    },
    ...writeHooks
  }, async (req, reply) => {
    const { service, id } = req.params
    const problem = registrationProblem(req.body)
    if (problem !== null) throw new InvalidRegistrationError(problem)
    const check = req.body.check
    if (check !== undefined && check.type !== 'ttl' && check.intervalMs < minCheckIntervalMs) {
      throw new InvalidRegistrationError(`body/check/intervalMs must be >= ${minCheckIntervalMs} (this gateway's --min-check-interval-ms), got ${check.intervalMs}`)
    }
    await opts.targetGuard?.(req.body)
    const { statusCode, provider, revision } = await writeProvider({ type: 'register', service, id, spec: req.body })
    reply.code(statusCode === 201 ? 201 : 200)
    return { provider, revision }
  })

  app.put('/v1/services/:service/providers/:id/maintenance', {
    config: { access: 'write' },
    schema: {
      security,
      tags: TAGS,
      operationId: 'setProviderMaintenance',
      summary: 'Put a provider in maintenance, or take it out',
      description: 'Enabled: the provider is `maintenance` (event `maintenance`, its `reason` the note given) and out of ' +
        '`state=up` reads until an operator ends it; it survives restarts and re-registrations, and is still watched. ' +
        'Disabled: it is `pending` (event `updated`) until its watcher reports, at once for a provider that kept beating. ' +
        'Idempotent: asking for the mode the provider is already in changes nothing.',
      params: ProviderParams,
      body: MaintenanceRequestRef,
      response: {
        200: providerResultResponse('the provider in its new (or unchanged) mode'),
        ...writeErrors,
        404: providerNotFoundResponse,
        429: rateLimitedResponse()
      }
    },
    ...writeHooks
  }, async (req) => {
    const { service, id } = req.params
    const { enabled, reason } = req.body
    const { provider, revision } = await writeProvider({ type: 'maintenance', service, id, enabled, ...(reason === undefined ? {} : { reason }) })
    return { provider, revision }
  })

  app.put('/v1/services/:service/providers/:id/heartbeat', {
    config: { access: 'write' },
    schema: {
      security,
      tags: TAGS,
      operationId: 'renewProviderTtl',
      summary: 'Renew a ttl check',
      description: 'For a provider registered with `"check": { "type": "ttl", "ttlMs": N }`: it is `up` from its first ' +
        'renewal and `down` (reason `ttl-expired`) when none came for ttlMs. No body is needed. Renewals are held in ' +
        "the leader's memory, not stored: only the state changes they cause are.",
      params: ProviderParams,
      response: {
        200: providerResultResponse('renewed; the provider as it is now (up, unless held in maintenance or as flapping)'),
        ...writeErrors,
        404: providerNotFoundResponse,
        409: errorResponse('the provider has no ttl check'),
        429: rateLimitedResponse()
      }
    },
    ...writeHooks
  }, async (req) => {
    const { service, id } = req.params
    const { provider, revision } = await writeProvider({ type: 'renew', service, id })
    return { provider, revision }
  })

  app.delete('/v1/services/:service/providers/:id', {
    config: { access: 'write' },
    schema: {
      security,
      tags: TAGS,
      operationId: 'deregisterProvider',
      summary: 'Deregister a provider',
      params: ProviderParams,
      response: {
        200: DeregisteredResponse,
        ...writeErrors,
        404: providerNotFoundResponse,
        429: rateLimitedResponse()
      }
    },
    ...writeHooks
  }, async (req) => {
    const { service, id } = req.params
    const revision = await settled(await leader.write({ type: 'deregister', service, id }))
    return { revision }
  })
}
