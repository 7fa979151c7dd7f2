// GET /v1/watch: validates the query before the upgrade (a bad query, a missing token, a service
// the token may not read, or a replica with no snapshot is an ordinary HTTP error), then hands the socket to the watch hub synchronously,
// since a listener attached after an await would miss frames; @fastify/websocket delivers frames as soon as the handler returns. It owns no
// state: the hub does.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { readableBy } from '../auth.js'
import { canRead } from '../../protocol/scopes.js'
import { ForbiddenError, NotReadyError, TooManyWatchersError, UpgradeRequiredError } from '../errors.js'
import type { Replica } from '../replica.js'
import { errorResponse } from '../schemas/common.js'
import { WatchQuery } from '../schemas/watch.js'
import type { WatchHub } from '../watch-hub.js'

export interface WatchRoutesOptions { replica: Replica, hub: WatchHub }

/** The HTTP answers to an upgrade that is refused before it happens, each saying what the
 *  client does next. The route declares them and the AsyncAPI document publishes them
 *  (asyncapi.ts). The errors' bodies are the REST API's `Error`. */
export const watchUpgradeResponses = {
  400: errorResponse('a bad query (`service` or `since`); the message names the parameter: fix the query, retrying will not help'),
  401: errorResponse('with --auth on: no token, or an unknown, revoked or expired one; send a valid one in `Authorization: Bearer …` or the subprotocol `bearer.<secret>`'),
  403: errorResponse('with --auth on: a `service` the token may not read; the message names the scope needed (`needs read:<service>`)'),
  426: errorResponse('a plain HTTP request: connect with a WebSocket client'),
  503: errorResponse('no snapshot yet, no token list yet (--auth on), or --max-watchers clients already: retry after Retry-After (1 s), or use another gateway')
}

export const watchRoutes: FastifyPluginAsyncTypebox<WatchRoutesOptions> = async (app, { replica, hub }) => {
  // The handler/wsHandler form (rather than `websocket: true`) lets a plain GET get a 426 that
  // says what the URL is, instead of the plugin's empty 404. Hidden by hand, since only
  // `websocket: true` hides a route: OpenAPI cannot describe the feed (/asyncapi.json does).
  app.route({
    method: 'GET',
    url: '/v1/watch',
    // Any valid token; which services it may see is checked below and filtered by the hub.
    config: { access: 'authenticated' },
    schema: {
      hide: true,
      tags: ['watch'],
      summary: 'The change feed (WebSocket)',
      querystring: WatchQuery,
      response: watchUpgradeResponses
    },
    // Runs before the upgrade: a client gets a plain 503 + Retry-After, as REST reads do.
    preHandler: async (req) => {
      const token = req.token
      if (token !== null) {
        for (const service of req.query.service ?? []) {
          if (!canRead(token.scopes, service)) throw new ForbiddenError(`read:${service}`)
        }
      }
      if (!replica.ready) throw new NotReadyError()
      if (hub.full) throw new TooManyWatchersError(hub.maxClients)
    },
    handler: async () => {
      throw new UpgradeRequiredError('/v1/watch')
    },
    wsHandler: (socket, req) => {
      hub.accept(socket, { services: req.query.service ?? null, since: req.query.since ?? null, readable: readableBy(req.token) })
    }
  })
}
