// Roster's error catalogue: every ROSTER_ERR_* code any role emits, with the HTTP status a client
// gets it with and what it means. Whatever emits a code (the gateway's errors, the leader's
// verdicts that travel in RESULT messages, the store's and the start-up's errors) takes the code
// and the status from here, and README.md's "Errors" table is checked against this list
// (test/docs/errors.test.ts). A code is stable once published: never rename or reuse one.
// Codes starting FST_ERR_ are Fastify's own and are not listed here.
import { MAX_TOKENS } from './token-model.js'

export interface ErrorEntry {
  readonly code: `ROSTER_ERR_${string}`
  /** The HTTP status the gateway answers with; null for a code no HTTP client sees (a failed
   *  start, a dropped frame, a leader's internal fault), which appears in logs and exit messages. */
  readonly status: number | readonly number[] | null
  /** One line, in a client's words: a row of README.md's table. */
  readonly meaning: string
}

export const Errors = {
  badRequest: {
    code: 'ROSTER_ERR_BAD_REQUEST',
    status: 400,
    meaning: 'a request refused for a reason without a code of its own; the message says why'
  },
  clusterKeys: {
    code: 'ROSTER_ERR_CLUSTER_KEYS',
    status: null,
    meaning: 'the --cluster-keys file is missing, unreadable, readable by others or not a Roster key file; the role does not start (`roster keys` exits 2)'
  },
  dataDirLocked: {
    code: 'ROSTER_ERR_DATA_DIR_LOCKED',
    status: null,
    meaning: 'another process has this --data-dir open; the command does not start'
  },
  embeddedPostgres: {
    code: 'ROSTER_ERR_EMBEDDED_POSTGRES',
    status: null,
    meaning: 'the embedded Postgres could not be set up, started or stopped; the message says why'
  },
  fenced: {
    code: 'ROSTER_ERR_FENCED',
    status: null,
    meaning: 'a leader tried to write after another took over with a newer epoch; nothing was written and it steps down'
  },
  forbidden: {
    code: 'ROSTER_ERR_FORBIDDEN',
    status: 403,
    meaning: 'the token lacks the scope this request needs; the message names the scope'
  },
  internal: {
    code: 'ROSTER_ERR_INTERNAL',
    status: 500,
    meaning: 'an unexpected fault in the gateway; the details are in its log, never in the answer'
  },
  invalidRegistration: {
    code: 'ROSTER_ERR_INVALID_REGISTRATION',
    status: 400,
    meaning: 'a registration breaks a rule a schema cannot say (neither or both of heartbeat and check, a heartbeat port outside 1–65535, a check timeout not below its interval, a check interval below --min-check-interval-ms); the message names the field'
  },
  invalidTokenRequest: {
    code: 'ROSTER_ERR_INVALID_TOKEN_REQUEST',
    status: 400,
    meaning: "a new token's expiresAt is not in the future"
  },
  leaderUnavailable: {
    code: 'ROSTER_ERR_LEADER_UNAVAILABLE',
    status: 503,
    meaning: 'no leader is reachable, or it did not answer in time; retry after Retry-After'
  },
  noTtlCheck: {
    code: 'ROSTER_ERR_NO_TTL_CHECK',
    status: 409,
    meaning: 'a ttl renewal for a provider registered without a ttl check'
  },
  notFound: {
    code: 'ROSTER_ERR_NOT_FOUND',
    status: 404,
    meaning: 'no endpoint for this method and path'
  },
  notReady: {
    code: 'ROSTER_ERR_NOT_READY',
    status: 503,
    meaning: 'this gateway has not loaded the registry yet; retry shortly'
  },
  protocolBadFrame: {
    code: 'ROSTER_ERR_PROTOCOL_BAD_FRAME',
    status: null,
    meaning: 'a ZeroMQ message that breaks the protocol (server/protocol/README.md); it is logged, counted and dropped'
  },
  providerConflict: {
    code: 'ROSTER_ERR_PROVIDER_CONFLICT',
    status: 409,
    meaning: 'the id is registered under another service (ids are unique in the whole registry)'
  },
  providerNotFound: {
    code: 'ROSTER_ERR_PROVIDER_NOT_FOUND',
    status: 404,
    meaning: 'no provider with this id under this service'
  },
  quotaService: {
    code: 'ROSTER_ERR_QUOTA_SERVICE',
    status: 429,
    meaning: 'a new provider beyond --max-providers-per-service; the message names the quota'
  },
  quotaTotal: {
    code: 'ROSTER_ERR_QUOTA_TOTAL',
    status: 429,
    meaning: 'a new provider beyond --max-providers; the message names the quota'
  },
  rateLimited: {
    code: 'ROSTER_ERR_RATE_LIMITED',
    status: 429,
    meaning: "this client's writes exceed --write-rate; retry after Retry-After"
  },
  revisionOrder: {
    code: 'ROSTER_ERR_REVISION_ORDER',
    status: null,
    meaning: "a leader's batch whose revisions do not follow the stored one (a bug); nothing was written"
  },
  revisionTimeout: {
    code: 'ROSTER_ERR_REVISION_TIMEOUT',
    status: 504,
    meaning: 'this gateway did not reach ?minRevision in time; the message says the revision it reached'
  },
  storeUnavailable: {
    code: 'ROSTER_ERR_STORE_UNAVAILABLE',
    status: 503,
    meaning: 'the leader could not commit to Postgres; retry shortly'
  },
  targetNotAllowed: {
    code: 'ROSTER_ERR_TARGET_NOT_ALLOWED',
    status: 400,
    meaning: "a heartbeat or check target outside --allow-targets, or one of Roster's own ports"
  },
  targetUnresolved: {
    code: 'ROSTER_ERR_TARGET_UNRESOLVED',
    status: [400, 503],
    meaning: "a target's host name does not resolve (400), or the resolver did not answer in time (503: retry)"
  },
  tokenConflict: {
    code: 'ROSTER_ERR_TOKEN_CONFLICT',
    status: 409,
    meaning: 'a token with this id or secret exists already (a random collision); retry'
  },
  tokenNotFound: {
    code: 'ROSTER_ERR_TOKEN_NOT_FOUND',
    status: 404,
    meaning: 'no token with this id'
  },
  tokenQuota: {
    code: 'ROSTER_ERR_TOKEN_QUOTA',
    status: 429,
    meaning: `${MAX_TOKENS.toLocaleString('en-US')} tokens exist already; revoke some first`
  },
  tokensNotLoaded: {
    code: 'ROSTER_ERR_TOKENS_NOT_LOADED',
    status: 503,
    meaning: 'with --auth on, this gateway has no token list from a leader yet; retry shortly'
  },
  tooManyWatchers: {
    code: 'ROSTER_ERR_TOO_MANY_WATCHERS',
    status: 503,
    meaning: 'this gateway serves its --max-watchers feed clients already; retry later or use another gateway'
  },
  unauthorized: {
    code: 'ROSTER_ERR_UNAUTHORIZED',
    status: 401,
    meaning: 'with --auth on, no bearer token, or an unknown, revoked or expired one'
  },
  unstorable: {
    code: 'ROSTER_ERR_UNSTORABLE',
    status: 400,
    meaning: "Postgres refused this write's data; it alone was not stored, the rest of its batch was"
  },
  upgradeRequired: {
    code: 'ROSTER_ERR_UPGRADE_REQUIRED',
    status: 426,
    meaning: 'a plain HTTP request on the WebSocket feed; connect with a WebSocket client'
  }
} as const satisfies Record<string, ErrorEntry>

export type ErrorCode = (typeof Errors)[keyof typeof Errors]['code']
