// The AsyncAPI 3 document of the change feed (`GET /v1/watch`), served at /asyncapi.json and
// committed as openapi/asyncapi.json (`npm run asyncapi`). It is assembled from what the feed
// itself uses: the route's query schema and refused-upgrade answers (routes/watch.ts), the
// message schemas that type the hub's frames (schemas/watch.ts), the registry's shared schemas
// (Provider, Check: the same components as the OpenAPI document), the subprotocols (auth.ts) and
// the close codes (watch-hub.ts). It restates none of their rules; it only says them in AsyncAPI.
import type { TSchema } from '@sinclair/typebox'
import { BEARER_SUBPROTOCOL_PREFIX, FEED_SUBPROTOCOL } from './auth.js'
import { watchUpgradeResponses } from './routes/watch.js'
import { ErrorResponse, registryComponents } from './schemas/common.js'
import { WatchEvent, WatchQuery, WatchSnapshot } from './schemas/watch.js'
import { DEFAULT_WATCH_LIMITS, WATCH_CLOSE_MEANINGS, WATCH_MAX_INBOUND_BYTES, WatchCloseCode } from './watch-hub.js'

/** A JSON value as it appears in the document. */
type Json = null | boolean | number | string | Json[] | { [key: string]: Json }

/** One close code as the document lists it (the channel's `x-close-codes`). */
export interface CloseCodeDoc { code: number, name: string, reason: string | null, when: string, client: string }

const COMPONENT_REF = '#/components/schemas/'

/** Close codes the hub sends, with what each means to a client (watch-hub.ts). */
const hubCloseCodes: CloseCodeDoc[] = (Object.keys(WatchCloseCode) as Array<keyof typeof WatchCloseCode>).map((name) => ({
  code: WatchCloseCode[name],
  name,
  ...WATCH_CLOSE_MEANINGS[name]
}))

/** Close codes a client can see that the hub does not choose: `ws` sends the first three when a
 *  client breaks the protocol (it validates every frame it reads, and app.ts caps what it reads
 *  at WATCH_MAX_INBOUND_BYTES); 1006 is never sent, it is what a client reports when the
 *  connection ended without a close frame. */
const transportCloseCodes: CloseCodeDoc[] = [
  {
    code: 1002,
    name: 'protocolError',
    reason: null,
    when: 'the client broke RFC 6455 (an unmasked frame, a reserved opcode or bit, a bad control frame)',
    client: 'fix the WebSocket client; reconnecting as before repeats it'
  },
  {
    code: 1007,
    name: 'invalidPayload',
    reason: null,
    when: 'the client sent a text frame that is not UTF-8',
    client: 'send nothing: a client has nothing to say on this feed; reconnecting as before repeats it'
  },
  {
    code: 1009,
    name: 'messageTooBig',
    reason: null,
    when: `the client sent a message larger than ${WATCH_MAX_INBOUND_BYTES} bytes; the feed reads and ignores what clients send`,
    client: 'send nothing: a client has nothing to say on this feed; reconnecting as before repeats it'
  },
  {
    code: 1006,
    name: 'abnormalClosure',
    reason: null,
    when: 'never sent: the connection ended without a close frame (the gateway died, the network broke, ' +
      `or the client did not answer a ping within ${DEFAULT_WATCH_LIMITS.pingIntervalMs / 1000}–${2 * DEFAULT_WATCH_LIMITS.pingIntervalMs / 1000} s and was dropped)`,
    client: 'reconnect, to any gateway, with since=<the last revision you processed>, with a growing delay while it fails'
  }
]

export const FEED_CLOSE_CODES: readonly CloseCodeDoc[] = [...hubCloseCodes, ...transportCloseCodes].sort((a, b) => a.code - b.code)

/** A TypeBox schema as plain JSON (its symbol keys dropped) with its `$id` removed and every
 *  bare `$ref: 'Name'` (how the gateway's schemas name each other) pointed at the component. */
function componentJson (schema: TSchema | object): { [key: string]: Json } {
  const rewrite = (value: Json): Json => {
    if (Array.isArray(value)) return value.map(rewrite)
    if (value === null || typeof value !== 'object') return value
    const out: { [key: string]: Json } = {}
    for (const [key, v] of Object.entries(value)) {
      if (key === '$ref' && typeof v === 'string' && !v.includes('#')) out[key] = COMPONENT_REF + v
      // AsyncAPI's schema object writes the discriminator as the property's name, where
      // OpenAPI (which the gateway's Check also serves) writes { propertyName }.
      else if (key === 'discriminator' && v !== null && typeof v === 'object' && !Array.isArray(v)) out[key] = v.propertyName as Json
      else out[key] = rewrite(v)
    }
    return out
  }
  const { $id: _id, ...rest } = JSON.parse(JSON.stringify(schema)) as { [key: string]: Json }
  return rewrite(rest) as { [key: string]: Json }
}

/** The components the messages need: theirs, then every shared schema they reach by `$ref`. */
function schemaComponents (roots: Record<string, TSchema | object>): Record<string, Json> {
  const byId = new Map<string, object>(([...registryComponents, ErrorResponse] as Array<{ $id?: string }>).flatMap((s) => (s.$id === undefined ? [] : [[s.$id, s] as const])))
  const out: Record<string, Json> = {}
  const add = (name: string, schema: object): void => {
    if (name in out) return
    const json = componentJson(schema)
    out[name] = json
    for (const ref of JSON.stringify(json).matchAll(/"\$ref":"#\/components\/schemas\/([^"]+)"/g)) {
      const id = ref[1] as string
      const shared = byId.get(id)
      if (shared === undefined) throw new Error(`asyncapi: the schema ${name} refers to ${id}, which is not a shared schema`)
      add(id, shared)
    }
  }
  for (const [name, schema] of Object.entries(roots)) add(name, schema)
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => a.localeCompare(b)))
}

const EXAMPLE_PROVIDER = {
  id: 'orders-1',
  service: 'orders',
  host: '127.0.0.1',
  port: 8080,
  protocol: 'http',
  heartbeatIntervalMs: 1000,
  tags: ['blue'],
  meta: { version: '1.4.2' },
  state: 'up',
  stateSince: '2026-11-27T12:14:22.118Z',
  lastSeen: '2026-11-27T12:14:22.117Z',
  revision: 2,
  heartbeat: 'tcp://127.0.0.1:9100'
}

const CHANNEL_DESCRIPTION = [
  'One JSON object per text frame, in revision order, with no gaps for the chosen services:',
  '',
  '- first a `snapshot` of every provider of the chosen services (all of them when `service` is absent),',
  '  unless `since` is given and the changes after it are still available;',
  '- then an `event` for every change after it.',
  '- A `snapshot` with `"reset": true` replaces what the client had: its `since` was older than the retained',
  '  history, ahead of what the gateway could reach in time, or its replay would have been longer than a',
  '  snapshot of the same services; a gateway whose replica was reset sends it to every client.',
  '',
  'Keep the revision of the last message you processed. Whenever the connection ends, reconnect (to any',
  'gateway) with `since=<that revision>`: you get every change you missed, exactly once.',
  '',
  `Clients send nothing: frames they send are read and ignored (at most ${WATCH_MAX_INBOUND_BYTES} bytes each).`,
  `The gateway pings every ${DEFAULT_WATCH_LIMITS.pingIntervalMs / 1000} s and drops a client that did not answer the previous ping.`,
  '',
  '**Before the upgrade**, a refused request is a plain HTTP answer with the REST API\'s `Error` body (`x-upgrade-responses`):',
  '',
  ...Object.entries(watchUpgradeResponses).map(([status, schema]) => `- \`${status}\`: ${(schema as { description?: string }).description ?? ''}`),
  '',
  '**Close codes** (`x-close-codes`), and what a client does on each:',
  '',
  ...FEED_CLOSE_CODES.map((c) => `- \`${c.code}\`${c.reason === null ? '' : ` (reason \`${c.reason}\`)`}: ${c.when}. What to do: ${c.client}.`),
  '',
  'A bad query or token is refused before the upgrade (above), so the feed never closes with 1008.'
].join('\n')

/** Builds the document. Pure: the same document for every gateway, whatever its flags. */
export function buildAsyncApiDocument (): Record<string, Json> {
  const payloadRef = (name: string): Json => ({ $ref: COMPONENT_REF + name })
  return {
    asyncapi: '3.1.0',
    info: {
      title: 'Roster change feed',
      version: '1.0.0',
      description: 'The WebSocket change feed of Roster, a service-discovery registry: every change to the registry\'s ' +
        'providers, pushed in revision order and resumable from any revision. The REST API is described by ' +
        '/openapi.json; the `Provider` and `Error` schemas here are the same as there.',
      license: { name: 'MIT' }
    },
    defaultContentType: 'application/json',
    servers: {
      local: {
        host: '127.0.0.1:7070',
        protocol: 'ws',
        description: '`roster up` and `roster gateway` by default: loopback only, auth off unless --auth on'
      },
      network: {
        host: '{gateway}',
        protocol: 'wss',
        description: 'a gateway serving TLS on a network address, where --auth on is required',
        variables: { gateway: { default: 'gateway.internal:7070', description: 'the gateway\'s host and port' } }
      }
    },
    channels: {
      watch: {
        address: '/v1/watch',
        title: 'The change feed',
        description: CHANNEL_DESCRIPTION,
        messages: {
          snapshot: { $ref: '#/components/messages/snapshot' },
          event: { $ref: '#/components/messages/event' }
        },
        bindings: {
          ws: {
            method: 'GET',
            query: componentJson(WatchQuery),
            headers: {
              type: 'object',
              properties: {
                Authorization: {
                  type: 'string',
                  pattern: '^Bearer +[!-~]+ *$',
                  description: 'with --auth on: `Bearer <secret>`, a token that may read the chosen services (or any, when `service` is absent: the feed then carries only the services it may read)'
                },
                'Sec-WebSocket-Protocol': {
                  type: 'string',
                  description: `offer \`${FEED_SUBPROTOCOL}\`, which the gateway selects; from a browser, which cannot set Authorization, ` +
                    `add the token as \`${BEARER_SUBPROTOCOL_PREFIX}<secret>\` (\`new WebSocket(url, ['${BEARER_SUBPROTOCOL_PREFIX}' + secret, '${FEED_SUBPROTOCOL}'])\`). ` +
                    'A token is never read from the URL.'
                }
              }
            },
            bindingVersion: '0.1.0'
          }
        },
        'x-subprotocols': {
          selected: FEED_SUBPROTOCOL,
          bearerPrefix: BEARER_SUBPROTOCOL_PREFIX
        },
        'x-close-codes': Object.fromEntries(FEED_CLOSE_CODES.map((c) => [String(c.code), {
          name: c.name,
          ...(c.reason === null ? {} : { reason: c.reason }),
          when: c.when,
          client: c.client
        }])),
        'x-upgrade-responses': Object.fromEntries(Object.entries(watchUpgradeResponses).map(([status, schema]) => [status, {
          description: (schema as { description?: string }).description ?? '',
          payload: payloadRef('Error')
        }]))
      }
    },
    operations: {
      sendChanges: {
        action: 'send',
        channel: { $ref: '#/channels/watch' },
        title: 'Stream the registry\'s changes',
        summary: 'A snapshot (or the missed events after `since`), then every change, in revision order.',
        messages: [
          { $ref: '#/channels/watch/messages/snapshot' },
          { $ref: '#/channels/watch/messages/event' }
        ],
        security: [
          { $ref: '#/components/securitySchemes/bearer' },
          { $ref: '#/components/securitySchemes/bearerSubprotocol' }
        ]
      }
    },
    components: {
      schemas: schemaComponents({ WatchSnapshot, WatchEvent, Error: ErrorResponse }),
      messages: {
        snapshot: {
          name: 'snapshot',
          title: 'Snapshot',
          summary: 'Every provider of the chosen services at `revision`; with `reset: true`, it replaces what the client had.',
          contentType: 'application/json',
          payload: payloadRef('WatchSnapshot'),
          examples: [
            { name: 'first', summary: 'the first message of a feed without since', payload: { type: 'snapshot', revision: 2, providers: [EXAMPLE_PROVIDER] } },
            { name: 'reset', summary: 'since was too old: replace what you had', payload: { type: 'snapshot', reset: true, revision: 2, providers: [EXAMPLE_PROVIDER] } }
          ]
        },
        event: {
          name: 'event',
          title: 'Event',
          summary: 'One change to one provider, at `revision`; `provider` is the provider after the change.',
          description: '`registered` (new), `updated` (a new registration, or released from maintenance: pending again), ' +
            '`up`, `down` (its `reason` says why, `detectedAfterMs` how stale the last good news was), ' +
            '`maintenance` (its `reason` is the operator\'s note), `deregistered` (the provider as it was; reason ' +
            '`down-too-long` when removed by its deregisterAfterMs).',
          contentType: 'application/json',
          payload: payloadRef('WatchEvent'),
          examples: [
            {
              name: 'down',
              summary: 'its heartbeat connection dropped',
              payload: {
                type: 'event',
                revision: 3,
                event: 'down',
                provider: { ...EXAMPLE_PROVIDER, state: 'down', stateSince: '2026-11-27T12:15:02.311Z', lastSeen: '2026-11-27T12:15:02.305Z', reason: 'disconnected', detectedAfterMs: 6, revision: 3 }
              }
            }
          ]
        }
      },
      securitySchemes: {
        bearer: {
          type: 'http',
          scheme: 'bearer',
          description: 'with --auth on: `Authorization: Bearer <secret>`, a token with `read`, `read:<glob>`, `write:<glob>` or `admin`'
        },
        bearerSubprotocol: {
          type: 'httpApiKey',
          in: 'header',
          name: 'Sec-WebSocket-Protocol',
          description: `with --auth on, for browsers: the subprotocol \`${BEARER_SUBPROTOCOL_PREFIX}<secret>\` beside \`${FEED_SUBPROTOCOL}\``
        }
      }
    }
  }
}
