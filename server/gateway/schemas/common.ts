// Schemas shared by the gateway's routes: the registry's named components (built from
// server/protocol/model.ts, never redefined), references to them, the error body and the error
// answers, the response headers, the revision every read reports, and `minRevision`.
import { Type, type Static, type TSchema } from '@sinclair/typebox'
import {
  Check, HttpCheck, Provider, ProviderProtocol, ProviderSpec, ProviderState, TcpCheck, TtlCheck
} from '../../protocol/model.js'
import { Errors } from '../../protocol/error-codes.js'

export const REVISION_HEADER = 'X-Roster-Revision'

/** A reference to the named component `id`, typed as `T`. Type.Unsafe over a Ref keeps both the
 *  `$ref` in the document and the static type (with @fastify/swagger's refResolver in
 *  schemas/openapi.ts); passing the schema object itself would inline it. `options` are a
 *  response's description and headers, which @fastify/swagger takes from beside the `$ref`. */
export function ref<T> (id: string, options: Record<string, unknown> = {}) {
  return Type.Unsafe<T>(Type.Ref(id, options))
}

/** `schema` under the component name `id`. */
function named<T extends TSchema> (schema: T, id: string): T {
  return { ...schema, $id: id }
}

/** `schema` with the given properties replaced by references to named components (which carry
 *  the descriptions: @fastify/swagger drops a `$ref`'s siblings). */
function withRefs<T extends { properties: Record<string, TSchema> }> (schema: T, refs: Record<string, string>): T {
  const properties = { ...schema.properties }
  for (const [key, id] of Object.entries(refs)) properties[key] = Type.Ref(id)
  return { ...schema, properties }
}

/** The check as the gateway validates and documents it: the protocol's union of the three kinds
 *  (`anyOf`, which TypeBox's frame checker understands) as a `oneOf` of the named kinds,
 *  discriminated by `type`. Ajv then validates only the branch that `type` names, so a bad field
 *  is reported as that field ("body/check/intervalMs must be <= 60000") instead of one
 *  complaint per kind, and generators get a tagged union of named types. The document's
 *  discriminator `mapping` is derived from the kinds when it is exported (schemas/openapi.ts):
 *  Ajv refuses a mapping. */
const DiscriminatedCheck = {
  $id: 'Check',
  type: 'object',
  description: Check.description,
  oneOf: [Type.Ref('HttpCheck'), Type.Ref('TcpCheck'), Type.Ref('TtlCheck')],
  discriminator: { propertyName: 'type' }
} as const

const enumRefs = { protocol: 'ProviderProtocol' }

/** The registry's components, registered once with `addSchema` so that Ajv, the serializer and
 *  the OpenAPI document all see one named schema. */
export const registryComponents = [
  named(ProviderProtocol, 'ProviderProtocol'),
  named(ProviderState, 'ProviderState'),
  named(HttpCheck, 'HttpCheck'),
  named(TcpCheck, 'TcpCheck'),
  named(TtlCheck, 'TtlCheck'),
  DiscriminatedCheck,
  withRefs(Provider, { ...enumRefs, state: 'ProviderState', check: 'Check' }),
  named(withRefs(ProviderSpec, { ...enumRefs, check: 'Check' }), 'ProviderSpec')
]

export const ProviderRef = ref<Provider>('Provider')
export const ProviderSpecRef = ref<ProviderSpec>('ProviderSpec')

export const ErrorResponse = Type.Object(
  {
    statusCode: Type.Integer({ description: 'the HTTP status, repeated' }),
    code: Type.String({ description: `stable, e.g. FST_ERR_VALIDATION or ${Errors.providerNotFound.code}` }),
    error: Type.String({ description: 'the status text, e.g. Bad Request' }),
    message: Type.String({ description: 'for a validation error, names the field and the rule it broke' })
  },
  { $id: 'Error', additionalProperties: false, description: 'every error answer' }
)
export type ErrorResponse = Static<typeof ErrorResponse>

// Response headers, as @fastify/swagger documents them: a `headers` map beside a response schema.
export const revisionHeader = {
  [REVISION_HEADER]: { type: 'integer', minimum: 0, description: 'the registry revision this answer reflects' }
} as const
const retryAfterHeader = {
  'Retry-After': { type: 'integer', minimum: 1, description: 'seconds to wait before retrying' }
} as const
const bearerChallengeHeader = {
  'WWW-Authenticate': { type: 'string', description: 'Bearer realm="roster", with error="invalid_token" when a token was sent' }
} as const

/** An error answer with its own description (OpenAPI requires one per status). */
export function errorResponse (description: string, headers?: Record<string, unknown>) {
  return ref<ErrorResponse>('Error', headers === undefined ? { description } : { description, headers })
}

// The error answers more than one operation gives, each once.
export const badRequestResponse = errorResponse('invalid input; the message names the field')
export const unauthorizedResponse = errorResponse('no token, or an unknown, revoked or expired one (with --auth on)', bearerChallengeHeader)
/** 403 for a token without `scope`. */
export function forbiddenResponse (scope: string) {
  return errorResponse(`the token lacks ${scope}; the message names the scope needed`)
}
export const providerNotFoundResponse = errorResponse('no such provider under this service')
export const tooLargeResponse = errorResponse('the body is larger than 64 KiB')
export const unsupportedMediaTypeResponse = errorResponse('a body that is not application/json (or text/plain)')
export const unavailableResponse = errorResponse('no leader (writes) or no snapshot yet (reads): retry', retryAfterHeader)
export const revisionTimeoutResponse = errorResponse('minRevision was not reached in time; the message says the revision reached')
/** 429 from the write rate limit; `also` names other causes of a 429 on the same operation. */
export function rateLimitedResponse (also?: string) {
  const rate = `the write rate limit (--write-rate) was reached: ${Errors.rateLimited.code}, with Retry-After`
  return errorResponse(also === undefined ? rate : `${also}; or ${rate}`, retryAfterHeader)
}

/** The error answers of a request with a body (or none, which is also accepted): unparseable
 *  JSON is a 400, too big a 413, another content type a 415. */
export const bodyErrors = { 400: badRequestResponse, 413: tooLargeResponse, 415: unsupportedMediaTypeResponse }

export const Revision = Type.Integer({ minimum: 0, description: 'the registry revision this answer reflects' })

/** The largest revision a query may name: query strings are coerced with Number(), so without a
 *  maximum `Infinity` passed as an integer (Ajv's integer check does not exclude it). Revisions
 *  stay far below it (server/store/db.ts, parseInt8). */
export const MAX_QUERY_REVISION = Number.MAX_SAFE_INTEGER

export const MinRevision = Type.Integer({
  minimum: 0,
  maximum: MAX_QUERY_REVISION,
  description: 'wait (bounded) until this gateway has reached this revision, to read your own writes; 504 if it does not'
})
