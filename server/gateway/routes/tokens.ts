// The token API (admin scope): create, list, revoke. The gateway that takes a creation makes the
// id and the secret, sends only the secret's hash to the leader, and shows the secret once, in
// its 201 answer. Each answer comes after the leader committed the change and this gateway's
// token table holds it, so the new token works (or the revoked one stops) here at once.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { TokenResult } from '../../protocol/messages.js'
import { publicToken, type TokenRecord } from '../../protocol/token-model.js'
import { hashSecret, newSecret, newTokenId } from '../../common/token-secret.js'
import type { LeaderPort } from '../ports.js'
import { InvalidTokenRequestError, LeaderRejectedError, TokensNotLoadedError } from '../errors.js'
import {
  bodyErrors, errorResponse, forbiddenResponse, unauthorizedResponse, unavailableResponse
} from '../schemas/common.js'
import { CreatedTokenResponse, CreateTokenRequestRef, TokenListResponse, TokenParams } from '../schemas/tokens.js'
import type { TokenTable } from '../token-table.js'

/** 2 s, as for a registration (routes/services.ts): the leader announces the change in a BEAT
 *  right after its commit, so the table normally has it within milliseconds. */
const TOKEN_VISIBLE_WAIT_MS = 2000

export interface TokensRoutesOptions { leader: LeaderPort, tokens: TokenTable }

const TAGS = ['tokens']
const security = [{ bearer: [] }]
const authErrors = { 401: unauthorizedResponse, 403: forbiddenResponse('the admin scope') }

export const tokensRoutes: FastifyPluginAsyncTypebox<TokensRoutesOptions> = async (app, { leader, tokens }) => {
  async function settled ({ epoch, result }: { epoch: number, result: TokenResult }): Promise<void> {
    if (!result.ok) throw new LeaderRejectedError(result.statusCode, result.code, result.message)
    if (!(await tokens.waitFor(epoch, result.generation, TOKEN_VISIBLE_WAIT_MS))) {
      app.log.warn({ epoch, generation: result.generation }, 'token change acknowledged before this gateway saw it')
    }
  }

  app.post('/v1/tokens', {
    config: { access: 'admin' },
    schema: {
      tags: TAGS,
      operationId: 'createToken',
      summary: 'Create a token',
      description: 'The answer carries the secret, the only time it is shown: only its hash is stored. ' +
        'Scopes: `read` (every service), `read:<glob>`, `write:<glob>` (register, maintenance, ttl renewal, deregister, ' +
        'and reads, of the matching services), `admin` (everything, tokens included). A glob is service-name characters ' +
        'and `*` for any run of them.',
      security,
      body: CreateTokenRequestRef,
      response: {
        201: CreatedTokenResponse,
        ...bodyErrors,
        ...authErrors,
        409: errorResponse('a token with this id or secret exists already (a random collision): retry'),
        429: errorResponse('the token quota (1,000) is reached'),
        503: unavailableResponse
      }
    }
  }, async (req, reply) => {
    const { name, scopes, expiresAt } = req.body
    const now = Date.now()
    if (expiresAt !== undefined && Date.parse(expiresAt) <= now) throw new InvalidTokenRequestError('body/expiresAt must be in the future')
    const secret = newSecret()
    const token: TokenRecord = {
      id: newTokenId(),
      name,
      scopes,
      secretHash: hashSecret(secret),
      createdAt: new Date(now).toISOString(),
      expiresAt: expiresAt === undefined ? null : new Date(expiresAt).toISOString()
    }
    await settled(await leader.tokenWrite({ type: 'create', token }))
    reply.code(201)
    return { token: publicToken(token), secret }
  })

  app.get('/v1/tokens', {
    config: { access: 'admin' },
    schema: {
      tags: TAGS,
      operationId: 'listTokens',
      summary: 'List the tokens',
      description: 'Never their secrets. Expired tokens are listed until revoked.',
      security,
      response: { 200: TokenListResponse, ...authErrors, 503: unavailableResponse }
    }
  }, async () => {
    if (!tokens.loaded) throw new TokensNotLoadedError()
    return { tokens: tokens.list() }
  })

  app.delete('/v1/tokens/:id', {
    config: { access: 'admin' },
    schema: {
      tags: TAGS,
      operationId: 'revokeToken',
      summary: 'Revoke a token',
      description: 'It stops working on every gateway within a second (on this one before the answer).',
      security,
      params: TokenParams,
      response: {
        204: { type: 'null', description: 'revoked' },
        ...bodyErrors,
        ...authErrors,
        404: errorResponse('no token with this id'),
        503: unavailableResponse
      }
    }
  }, async (req, reply) => {
    await settled(await leader.tokenWrite({ type: 'revoke', id: req.params.id }))
    return reply.code(204).send()
  })
}
