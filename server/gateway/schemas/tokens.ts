// Request and response schemas of the token API (admin only). The shapes of a token come from
// server/protocol/token-model.ts; a secret appears in exactly one schema, the 201 answer.
import { Type, type Static } from '@sinclair/typebox'
import { Scopes, TokenId, TokenName, type Token } from '../../protocol/token-model.js'

export const TokenRef = Type.Unsafe<Token>(Type.Ref('Token'))

export const CreateTokenBody = Type.Object(
  {
    name: TokenName,
    scopes: Type.Unsafe<string[]>({ ...Scopes, uniqueItems: true }),
    expiresAt: Type.Optional(Type.String({ format: 'date-time', description: 'when the token stops working; in the future; absent: never' }))
  },
  { additionalProperties: false }
)
export type CreateTokenBody = Static<typeof CreateTokenBody>

export const CreatedToken = Type.Object(
  {
    token: TokenRef,
    secret: Type.String({ description: 'the bearer secret: shown this once, never again (only its hash is stored)' })
  },
  { additionalProperties: false, description: 'created' }
)
export type CreatedToken = Static<typeof CreatedToken>

export const TokenList = Type.Object(
  { tokens: Type.Array(TokenRef) },
  { additionalProperties: false, description: 'every token, oldest first, without secrets' }
)
export type TokenList = Static<typeof TokenList>

export const TokenParams = Type.Object({ id: TokenId })
export type TokenParams = Static<typeof TokenParams>
