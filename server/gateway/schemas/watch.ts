// The /v1/watch feed's query and its server messages (README.md › The change feed). The feed is a WebSocket,
// which OpenAPI cannot describe (the route is hidden), so these schemas are its executable
// documentation and what tests and clients can validate frames against.
import { Type, type Static } from '@sinclair/typebox'
import { EventKind, ServiceName } from '../../protocol/model.js'
import { MAX_QUERY_REVISION, ProviderRef } from './common.js'

export const WatchQuery = Type.Object(
  {
    service: Type.Optional(Type.Array(ServiceName, { maxItems: 64, description: 'repeatable; all services when absent' })),
    since: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_QUERY_REVISION, description: 'resume after this revision' }))
  },
  { additionalProperties: false }
)
export type WatchQuery = Static<typeof WatchQuery>

export const WatchSnapshot = Type.Object({
  type: Type.Literal('snapshot'),
  /** Present (true) when this snapshot replaces what the client had: its `since` was too old,
   *  or the gateway's replica was reset. */
  reset: Type.Optional(Type.Literal(true)),
  revision: Type.Integer({ minimum: 0 }),
  providers: Type.Array(ProviderRef)
})
export type WatchSnapshot = Static<typeof WatchSnapshot>

export const WatchEvent = Type.Object({
  type: Type.Literal('event'),
  revision: Type.Integer({ minimum: 1 }),
  event: EventKind,
  provider: ProviderRef
})
export type WatchEvent = Static<typeof WatchEvent>

export type WatchMessage = WatchSnapshot | WatchEvent
