// GET /v1/watch: validates the query before the upgrade (a bad query, a missing token, a service
// the token may not read, or a replica with no snapshot is an ordinary HTTP error), then hands the socket to the watch hub synchronously,
// since a listener attached after an await would miss frames; @fastify/websocket delivers frames as soon as the handler returns. It owns no
// state: the hub does.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { readableBy } from '../auth.js'
import { canRead } from '../../protocol/scopes.js'
import { ForbiddenError, NotReadyError, TooManyWatchersError, UpgradeRequiredError } from '../errors.js'
import type { Replica } from '../replica.js'
import { badRequestResponse, errorResponse, unavailableResponse } from '../schemas/common.js'
import { WatchQuery } from '../schemas/watch.js'
import type { WatchHub } from '../watch-hub.js'

export interface WatchRoutesOptions { replica: Replica, hub: WatchHub }

export const watchRoutes: FastifyPluginAsyncTypebox<WatchRoutesOptions> = async (app, { replica, hub }) => {
  // The handler/wsHandler form (rather than `websocket: true`) lets a plain GET get a 426 that
  // says what the URL is, instead of the plugin's empty 404. Hidden by hand, since only
  // `websocket: true` hides a route: OpenAPI cannot describe the feed (README does).
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
      response: {
        400: badRequestResponse,
        401: errorResponse('no token, or an unknown, revoked or expired one (with --auth on)'),
        403: errorResponse('a `service` the token may not read; the message names the scope needed'),
        426: errorResponse('a plain HTTP request: connect with a WebSocket client'),
        503: unavailableResponse
      }
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
