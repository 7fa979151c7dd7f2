// Request and response schemas of the REST routes (README.md › Every endpoint), built from the protocol's
// model so that validation, serialization and the OpenAPI document share one definition.
// Querystrings reject unknown parameters: a misspelt filter (`?tags=blue`) must fail loudly
// rather than silently return every provider.
import { Type, type Static } from '@sinclair/typebox'
import { ProviderId, ProviderProtocol, ProviderState, REASON_MAX_LENGTH, ServiceName, StorableText } from '../../protocol/model.js'
import { MinRevision, ProviderRef, Revision, revisionHeader } from './common.js'

export const ServiceParams = Type.Object({ service: ServiceName })
export type ServiceParams = Static<typeof ServiceParams>

export const ProviderParams = Type.Object({ service: ServiceName, id: ProviderId })
export type ProviderParams = Static<typeof ProviderParams>

export const ReadQuery = Type.Object({ minRevision: Type.Optional(MinRevision) }, { additionalProperties: false })
export type ReadQuery = Static<typeof ReadQuery>

export const ProviderListQuery = Type.Object(
  {
    state: Type.Optional(ProviderState),
    protocol: Type.Optional(ProviderProtocol),
    tag: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 64 }), {
        maxItems: 32,
        description: 'repeatable; a provider must carry every given tag'
      })
    ),
    minRevision: Type.Optional(MinRevision)
  },
  { additionalProperties: false }
)
export type ProviderListQuery = Static<typeof ProviderListQuery>

export const ServiceSummary = Type.Object(
  {
    name: ServiceName,
    providers: Type.Integer({ minimum: 0, description: 'registered providers' }),
    up: Type.Integer({ minimum: 0, description: 'providers whose state is up' })
  },
  { additionalProperties: false }
)

export const ServiceList = Type.Object(
  { revision: Revision, services: Type.Array(ServiceSummary) },
  { additionalProperties: false, description: 'every service with at least one provider', headers: revisionHeader }
)
export type ServiceList = Static<typeof ServiceList>

export const ProviderList = Type.Object(
  { revision: Revision, providers: Type.Array(ProviderRef) },
  { additionalProperties: false, description: 'the matching providers, sorted by id', headers: revisionHeader }
)
export type ProviderList = Static<typeof ProviderList>

export const OneProvider = Type.Unsafe<Static<typeof ProviderRef>>(
  Type.Ref('Provider', {
    description: "the provider; its own `revision` is its last change's, the header gives the registry's",
    headers: revisionHeader
  })
)

/** The answer to a registration; 201 and 200 share it and differ only in their description. */
export function registered (description: string) {
  return Type.Object(
    { provider: ProviderRef, revision: Type.Integer({ minimum: 1, description: 'the revision this write produced' }) },
    { additionalProperties: false, description }
  )
}
export type Registered = Static<ReturnType<typeof registered>>

export const MaintenanceBody = Type.Object(
  {
    enabled: Type.Boolean({ description: 'true: hold the provider out of rotation (state maintenance); false: release it (pending until its watcher reports)' }),
    reason: Type.Optional(StorableText({ maxLength: REASON_MAX_LENGTH, description: "the operator's note, shown as the provider's reason while in maintenance" }))
  },
  { additionalProperties: false }
)
export type MaintenanceBody = Static<typeof MaintenanceBody>

export const Deregistered = Type.Object(
  { revision: Type.Integer({ minimum: 1, description: 'the revision this write produced' }) },
  { additionalProperties: false, description: 'deregistered' }
)
export type Deregistered = Static<typeof Deregistered>

export const Health = Type.Object(
  {
    status: Type.Literal('ok'),
    leader: Type.Union([Type.Literal('connected'), Type.Literal('unavailable')], {
      description: 'whether writes can reach a leader; reads keep working without one'
    }),
    revision: Revision
  },
  { additionalProperties: false, description: 'this gateway answers', headers: revisionHeader }
)
export type Health = Static<typeof Health>
