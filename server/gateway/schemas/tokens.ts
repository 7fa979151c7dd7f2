// Request and response schemas of the token API (admin only). The shapes of a token come from
// server/protocol/token-model.ts; a secret appears in exactly one schema, the 201 answer.
import { Type, type Static } from '@sinclair/typebox'
import { Scopes, TokenId, TokenName, type Token } from '../../protocol/token-model.js'
import { ref } from './common.js'

export const TokenRef = ref<Token>('Token')

export const CreateTokenRequest = Type.Object(
  {
    name: TokenName,
    scopes: Type.Unsafe<string[]>({ ...Scopes, uniqueItems: true }),
    expiresAt: Type.Optional(Type.String({ format: 'date-time', description: 'when the token stops working; in the future; absent: never' }))
  },
  { $id: 'CreateTokenRequest', additionalProperties: false, description: 'a new token' }
)
export type CreateTokenRequest = Static<typeof CreateTokenRequest>

export const CreatedToken = Type.Object(
  {
    token: TokenRef,
    secret: Type.String({ description: 'the bearer secret: shown this once, never again (only its hash is stored)' })
  },
  { $id: 'CreatedToken', additionalProperties: false, description: 'the token created, and its secret' }
)
export type CreatedToken = Static<typeof CreatedToken>

export const TokenList = Type.Object(
  { tokens: Type.Array(TokenRef) },
  { $id: 'TokenList', additionalProperties: false, description: 'every token, oldest first, without secrets' }
)
export type TokenList = Static<typeof TokenList>

export const TokenParams = Type.Object({ id: TokenId })
export type TokenParams = Static<typeof TokenParams>

/** The named bodies of these routes, registered with `addSchema` (schemas/openapi.ts). */
export const tokensComponents = [CreateTokenRequest, CreatedToken, TokenList]

export const CreateTokenRequestRef = ref<CreateTokenRequest>('CreateTokenRequest')
export const CreatedTokenResponse = ref<CreatedToken>('CreatedToken', { description: 'created' })
export const TokenListResponse = ref<TokenList>('TokenList', { description: TokenList.description })
