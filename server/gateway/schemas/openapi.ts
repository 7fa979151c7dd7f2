// The OpenAPI document's frame (info, servers, tags, the bearer scheme), the named components
// every route refers to, and the one transform the exported document gets. @fastify/swagger
// builds the paths from the route schemas; `npm run openapi` commits the result, which
// `npx @redocly/cli lint` (recommended rules) passes with no error and no warning
// (test/gateway/openapi-lint.test.ts) and openapi-typescript turns into a client
// (test/e2e/openapi-client.test.ts).
import type { SwaggerOptions } from '@fastify/swagger'
import type { TSchema } from '@sinclair/typebox'
import { Token } from '../../protocol/token-model.js'
import { ErrorResponse, registryComponents } from './common.js'
import { servicesComponents } from './services.js'
import { tokensComponents } from './tokens.js'

/** Every named schema, each registered once with `addSchema` (app.ts) so that Ajv, the
 *  serializer and the document share it; its `$id` is its name under components/schemas. */
export const components: readonly TSchema[] = [...registryComponents, ...servicesComponents, Token, ...tokensComponents, ErrorResponse] as TSchema[]

const byId = new Map(components.map((s) => [s.$id as string, s]))

/** The named component `id` (a `$ref` as the routes write it), or undefined. */
export function component (id: string): TSchema | undefined {
  return byId.get(id)
}

const API_DESCRIPTION = [
  'Roster is a service-discovery registry: providers register over this REST API and are watched',
  'through ZeroMQ heartbeats. Every read says the registry revision it reflects (body `revision`,',
  'header `X-Roster-Revision`); `?minRevision=N` reads your own writes through any gateway.',
  '',
  'The change feed is a WebSocket at `GET /v1/watch?service=…&since=…`, which OpenAPI cannot',
  'describe: its messages (`snapshot`, `event`), resume and close codes are in the AsyncAPI document at `/asyncapi.json`.',
  '',
  'With `--auth on`, every operation but `/v1/health` needs `Authorization: Bearer <secret>` (a token',
  'from `POST /v1/tokens`); the feed also accepts the WebSocket subprotocols `bearer.<secret>, roster.v1`.'
].join('\n')

interface Document {
  components?: { schemas?: Record<string, { oneOf?: Array<{ $ref?: string }>, discriminator?: { propertyName: string, mapping?: Record<string, string> } }> }
}

/**
 * Adds the `mapping` of every discriminated `oneOf` of references, from the `const` each named
 * member gives its tag: Ajv refuses a mapping (it finds the branch itself), while generators need
 * it, since without one OpenAPI maps a tag value to the component of the same name (`http`).
 */
export function withDiscriminatorMappings<T extends Document> (doc: T): T {
  for (const schema of Object.values(doc.components?.schemas ?? {})) {
    const { discriminator, oneOf } = schema
    if (discriminator === undefined || oneOf === undefined) continue
    const mapping: Record<string, string> = {}
    for (const member of oneOf) {
      const target = member.$ref ?? ''
      const name = target.slice(target.lastIndexOf('/') + 1)
      const tag = (byId.get(name)?.properties as Record<string, { const?: unknown }> | undefined)?.[discriminator.propertyName]?.const
      if (typeof tag !== 'string') throw new Error(`discriminated member ${target} has no const ${discriminator.propertyName}`)
      mapping[tag] = target
    }
    schema.discriminator = { ...discriminator, mapping }
  }
  return doc
}

export const swaggerOptions: SwaggerOptions = {
  openapi: {
    openapi: '3.1.0',
    info: {
      title: 'Roster',
      version: '1.0.0',
      description: API_DESCRIPTION,
      license: { name: 'MIT', identifier: 'MIT' }
    },
    // `roster up` with its defaults; a client sets its own base URL (any gateway of a cluster).
    servers: [{ url: 'http://127.0.0.1:7070', description: '`roster up` on this machine, with the default --host and --port' }],
    tags: [
      { name: 'services', description: 'register, deregister and look up providers' },
      { name: 'health', description: 'this gateway and its link to the leader' },
      { name: 'tokens', description: 'API tokens and their scopes (admin only)' },
      { name: 'watch', description: 'the change feed is a WebSocket at /v1/watch, described by the AsyncAPI document at /asyncapi.json (WebSocket routes are not part of this document)' }
    ],
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'a token secret (roster_…), with `--auth on`; see /v1/tokens' }
      }
    }
  },
  // Keeps the components' names (`Provider`, `Error`, …) instead of def-0, def-1…
  refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
  transformObject: (documentObject) => {
    if (!('openapiObject' in documentObject)) throw new Error('the gateway documents OpenAPI 3, not Swagger 2')
    return withDiscriminatorMappings(documentObject.openapiObject as Document) as typeof documentObject.openapiObject
  }
}
