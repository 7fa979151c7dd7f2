// GET /v1/health: whether this gateway answers, whether it can reach a leader, and the revision
// its replica reflects. It stays 200 without a leader (reads still work) and without a snapshot,
// so an orchestrator does not restart a gateway for a fault it cannot fix.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { LeaderPort } from '../ports.js'
import type { Replica } from '../replica.js'
import { REVISION_HEADER } from '../schemas/common.js'
import { HealthResponse } from '../schemas/services.js'

export interface HealthRoutesOptions { replica: Replica, leader: LeaderPort }

export const healthRoutes: FastifyPluginAsyncTypebox<HealthRoutesOptions> = async (app, { replica, leader }) => {
  // Open with --auth on too: load balancers and orchestrators probe it without a token, and it
  // says nothing about the registry beyond its revision.
  app.get('/v1/health', {
    config: { access: 'open' },
    // `security: []` says so in the document. It answers nothing but 200 (no 4xx: a probe that
    // gets one would restart a healthy gateway), the one operation .redocly.lint-ignore.yaml exempts.
    schema: { operationId: 'getHealth', tags: ['health'], summary: 'Gateway health', security: [], response: { 200: HealthResponse } }
  }, async (_req, reply) => {
    const revision = replica.revision
    reply.header(REVISION_HEADER, revision)
    return { status: 'ok' as const, leader: leader.connected ? 'connected' as const : 'unavailable' as const, revision }
  })
}
