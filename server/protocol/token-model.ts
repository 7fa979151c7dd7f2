// API tokens as the roles exchange them: the stored record (with the SHA-256 of its secret,
// never the secret) and the public view the REST API shows. One TypeBox schema per shape, used
// by the protocol frames, the REST validation and the OpenAPI document alike.
import { Type, type Static } from '@sinclair/typebox'
import { SCOPE_DESCRIPTION, SCOPE_PATTERN } from './scopes.js'

export const TokenId = Type.String({
  minLength: 1,
  maxLength: 64,
  pattern: '^[A-Za-z0-9_-]+$',
  description: "the token's id (not its secret), 1–64 of A-Z a-z 0-9 - _"
})

export const TokenName = Type.String({
  minLength: 1,
  maxLength: 64,
  pattern: '^[A-Za-z0-9][A-Za-z0-9._:@-]*$',
  description: '1–64 of A-Z a-z 0-9 - . _ : @, starting with a letter or digit'
})

export const Scope = Type.String({ maxLength: 134, pattern: SCOPE_PATTERN, description: SCOPE_DESCRIPTION })

/** 32 scopes: a token for a handful of services needs a few; more is a token per team. */
export const MAX_SCOPES = 32
export const Scopes = Type.Array(Scope, { minItems: 1, maxItems: MAX_SCOPES })

/** The hex SHA-256 of a secret. */
export const SecretHash = Type.String({ pattern: '^[0-9a-f]{64}$' })

const Instant = Type.String({ format: 'date-time' })

/** A token as the leader stores it and sends it to gateways. */
export const TokenRecord = Type.Object(
  {
    id: TokenId,
    name: TokenName,
    scopes: Scopes,
    secretHash: SecretHash,
    createdAt: Instant,
    expiresAt: Type.Union([Instant, Type.Null()])
  },
  { additionalProperties: false }
)
export type TokenRecord = Static<typeof TokenRecord>

/** A token as clients see it: never its secret, nor the secret's hash. */
export const Token = Type.Object(
  {
    id: TokenId,
    name: TokenName,
    scopes: Scopes,
    createdAt: Type.String({ format: 'date-time' }),
    expiresAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], { description: 'null: never expires' })
  },
  { $id: 'Token', additionalProperties: false }
)
export type Token = Static<typeof Token>

export function publicToken (t: TokenRecord): Token {
  return { id: t.id, name: t.name, scopes: t.scopes, createdAt: t.createdAt, expiresAt: t.expiresAt }
}

/** At most this many tokens are stored: the whole list travels to every gateway in one frame
 *  (about 300 bytes a token, so 300 KB), and a gateway keeps it in memory. A registry's clients
 *  need one token per application or team, far fewer. */
export const MAX_TOKENS = 1000
