// GET /openapi.json: the document @fastify/swagger builds from the route schemas, the same one
// `npm run openapi` commits to openapi/openapi.json. Hidden from the document it serves.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'

export const openapiRoutes: FastifyPluginAsyncTypebox = async (app) => {
  // Open with --auth on too: the API's description is public, like the README.
  app.get('/openapi.json', {
    config: { access: 'open' },
    schema: {
      hide: true,
      summary: 'The OpenAPI 3.1 document',
      response: { 200: Type.Object({ openapi: Type.String() }, { additionalProperties: true }) }
    }
  }, async () => app.swagger() as { openapi: string })
}
