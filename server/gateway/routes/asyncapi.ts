// GET /asyncapi.json: the change feed's AsyncAPI document (asyncapi.ts), the same one
// `npm run asyncapi` commits to openapi/asyncapi.json. Hidden from the OpenAPI document.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { buildAsyncApiDocument } from '../asyncapi.js'

export const asyncapiRoutes: FastifyPluginAsyncTypebox = async (app) => {
  // Built and serialized once: it depends on no flag and no state. A string sent as
  // application/json goes out as it is, without a response schema's serializer.
  const body = JSON.stringify(buildAsyncApiDocument())
  // Open with --auth on, like /openapi.json: the feed's description is public, like the README.
  app.get('/asyncapi.json', {
    config: { access: 'open' },
    schema: {
      hide: true,
      summary: 'The AsyncAPI 3 document of the change feed'
    }
  }, async (_req, reply) => reply.type('application/json; charset=utf-8').send(body))
}
