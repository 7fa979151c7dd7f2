// Request and response schemas of the REST routes (README.md › Every endpoint), built from the protocol's
// model so that validation, serialization and the OpenAPI document share one definition. Every
// body is a named component (its `$id`), so that generated clients get one named type per body.
// Querystrings reject unknown parameters: a misspelt filter (`?tags=blue`) must fail loudly
// rather than silently return every provider.
import { Type, type Static } from '@sinclair/typebox'
import {
  MAX_TAGS, ProviderId, REASON_MAX_LENGTH, ServiceName, StorableText, StringEnum, TAG_MAX_LENGTH, type ProviderProtocol, type ProviderState
} from '../../protocol/model.js'
import { MinRevision, ProviderRef, ref, Revision, revisionHeader } from './common.js'

export const ServiceParams = Type.Object({ service: ServiceName })
export type ServiceParams = Static<typeof ServiceParams>

export const ProviderParams = Type.Object({ service: ServiceName, id: ProviderId })
export type ProviderParams = Static<typeof ProviderParams>

export const ReadQuery = Type.Object({ minRevision: Type.Optional(MinRevision) }, { additionalProperties: false })
export type ReadQuery = Static<typeof ReadQuery>

export const ProviderListQuery = Type.Object(
  {
    state: Type.Optional(ref<ProviderState>('ProviderState')),
    protocol: Type.Optional(ref<ProviderProtocol>('ProviderProtocol')),
    tag: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: TAG_MAX_LENGTH }), {
        maxItems: MAX_TAGS,
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
  { $id: 'ServiceSummary', additionalProperties: false, description: 'a service and how many of its providers are up' }
)
export type ServiceSummary = Static<typeof ServiceSummary>

export const ServiceList = Type.Object(
  { revision: Revision, services: Type.Array(ref<ServiceSummary>('ServiceSummary')) },
  { $id: 'ServiceList', additionalProperties: false, description: 'every service with at least one provider' }
)
export type ServiceList = Static<typeof ServiceList>

export const ProviderList = Type.Object(
  { revision: Revision, providers: Type.Array(ProviderRef) },
  { $id: 'ProviderList', additionalProperties: false, description: 'the matching providers, sorted by id' }
)
export type ProviderList = Static<typeof ProviderList>

/** The answer to a registration (201 and 200), a maintenance change and a ttl renewal. */
export const ProviderResult = Type.Object(
  { provider: ProviderRef, revision: Type.Integer({ minimum: 1, description: 'the revision this write produced (or, for a write that changed nothing, the provider\'s)' }) },
  { $id: 'ProviderResult', additionalProperties: false, description: 'the provider after a write, and the revision to pass as minRevision to read it anywhere' }
)
export type ProviderResult = Static<typeof ProviderResult>

export const MaintenanceRequest = Type.Object(
  {
    enabled: Type.Boolean({ description: 'true: hold the provider out of rotation (state maintenance); false: release it (pending until its watcher reports)' }),
    reason: Type.Optional(StorableText({ maxLength: REASON_MAX_LENGTH, description: "the operator's note, shown as the provider's reason while in maintenance" }))
  },
  { $id: 'MaintenanceRequest', additionalProperties: false, description: 'put a provider in maintenance, or take it out' }
)
export type MaintenanceRequest = Static<typeof MaintenanceRequest>

export const Deregistered = Type.Object(
  { revision: Type.Integer({ minimum: 1, description: 'the revision this write produced' }) },
  { $id: 'Deregistered', additionalProperties: false, description: 'the provider is gone' }
)
export type Deregistered = Static<typeof Deregistered>

export const Health = Type.Object(
  {
    status: Type.Literal('ok'),
    leader: StringEnum(['connected', 'unavailable'], {
      description: 'whether writes can reach a leader; reads keep working without one'
    }),
    revision: Revision
  },
  { $id: 'Health', additionalProperties: false, description: 'this gateway answers' }
)
export type Health = Static<typeof Health>

/** The named bodies of these routes, registered with `addSchema` (schemas/openapi.ts). */
export const servicesComponents = [ServiceSummary, ServiceList, ProviderList, ProviderResult, MaintenanceRequest, Deregistered, Health]

/** Responses: a reference to the component, with the answer's description and headers. */
export const ServiceListResponse = ref<ServiceList>('ServiceList', { description: ServiceList.description, headers: revisionHeader })
export const ProviderListResponse = ref<ProviderList>('ProviderList', { description: ProviderList.description, headers: revisionHeader })
export const ProviderResponse = ref<Static<typeof ProviderRef>>('Provider', {
  description: "the provider; its own `revision` is its last change's, the header gives the registry's",
  headers: revisionHeader
})
export const HealthResponse = ref<Health>('Health', { description: Health.description, headers: revisionHeader })
export function providerResultResponse (description: string) {
  return ref<ProviderResult>('ProviderResult', { description })
}
export const MaintenanceRequestRef = ref<MaintenanceRequest>('MaintenanceRequest')
export const DeregisteredResponse = ref<Deregistered>('Deregistered', { description: 'deregistered' })
