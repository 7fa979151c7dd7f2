// Schemas shared by the gateway's routes: references to the registry's named components, the
// error body, the revision every read reports, and `minRevision`. Shapes of the registry itself
// come from server/protocol/model.ts and are referenced here, never redefined.
import { Type, type Static, type TSchema } from '@sinclair/typebox'
import { Check, Provider, ProviderSpec } from '../../protocol/model.js'

export const REVISION_HEADER = 'X-Roster-Revision'

/** The check as the gateway validates and documents it: the protocol's union of the three kinds
 *  (`anyOf`, which TypeBox's frame checker understands) as a `oneOf` discriminated by `type`.
 *  Ajv then validates only the branch that `type` names, so a bad field is reported as that
 *  field ("body/check/intervalMs must be <= 60000") instead of one complaint per kind, and the
 *  OpenAPI document gives generators the discriminator. */
const DiscriminatedCheck = {
  $id: 'Check',
  type: 'object',
  description: Check.description,
  oneOf: Check.anyOf,
  discriminator: { propertyName: 'type' }
} as const

/** `schema` with its `check` property replaced by a reference to the discriminated Check. */
function withCheckRef<T extends { properties: Record<string, TSchema> }> (schema: T): T {
  return { ...schema, properties: { ...schema.properties, check: { $ref: 'Check' } } }
}

/** The registry's shared schemas, registered once with `addSchema` so that Ajv, the serializer
 *  and the OpenAPI document all see one named component. ProviderSpec has no `$id` in the
 *  protocol module, so the gateway names it here. */
export const sharedSchemas = [
  DiscriminatedCheck,
  withCheckRef(Provider),
  { ...withCheckRef(ProviderSpec), $id: 'ProviderSpec' }
] as const

// Type.Unsafe over a Ref keeps both the `$ref` in the document and the static type (with
// @fastify/swagger's refResolver in app.ts); passing the schema object itself would inline it.
export const ProviderRef = Type.Unsafe<Provider>(Type.Ref('Provider'))
export const ProviderSpecRef = Type.Unsafe<ProviderSpec>(Type.Ref('ProviderSpec'))

export const ErrorResponse = Type.Object(
  {
    statusCode: Type.Integer(),
    code: Type.String({ description: 'stable, e.g. FST_ERR_VALIDATION or ROSTER_ERR_PROVIDER_NOT_FOUND' }),
    error: Type.String(),
    message: Type.String({ description: 'for a validation error, names the field and the rule it broke' })
  },
  { $id: 'Error', additionalProperties: false }
)
export type ErrorResponse = Static<typeof ErrorResponse>

/** An error response with its own description (OpenAPI requires one per status). */
export function errorResponse (description: string) {
  return Type.Unsafe<ErrorResponse>(Type.Ref('Error', { description }))
}

export const Revision = Type.Integer({ minimum: 0, description: 'the registry revision this answer reflects' })

/** Declares the revision header on a read's success response (documentation only). */
export const revisionHeader = {
  [REVISION_HEADER]: { type: 'integer', description: 'the registry revision this answer reflects' }
} as const

/** The largest revision a query may name: query strings are coerced with Number(), so without a
 *  maximum `Infinity` passed as an integer (Ajv's integer check does not exclude it). Revisions
 *  stay far below it (server/store/db.ts, parseInt8). */
export const MAX_QUERY_REVISION = Number.MAX_SAFE_INTEGER

export const MinRevision = Type.Integer({
  minimum: 0,
  maximum: MAX_QUERY_REVISION,
  description: 'wait (bounded) until this gateway has reached this revision, to read your own writes; 504 if it does not'
})

export const unavailableResponse = errorResponse('no leader (writes) or no snapshot yet (reads); carries Retry-After')
export const badRequestResponse = errorResponse('invalid input; the message names the field')
