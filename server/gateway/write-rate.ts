// The optional write rate limit (`--write-rate N`): at most N writes (registrations,
// maintenance, ttl renewals, deregistrations) per second per client, counted by
// @fastify/rate-limit in this gateway's memory. It is a hook on the write routes only: reads are
// served from the replica and cost the leader nothing. Each gateway counts on its own, so a
// client spread over G gateways gets up to G × N.
import rateLimit from '@fastify/rate-limit'
import type { FastifyInstance, FastifyRequest, onRequestHookHandler } from 'fastify'
import { RateLimitedError } from './errors.js'

/** Counting window: N per second, as the flag says. */
const WRITE_RATE_WINDOW_MS = 1000
/** Clients remembered at once (an LRU): past this many distinct keys within a window the
 *  oldest are forgotten, which bounds the memory a spray of addresses can take. */
const WRITE_RATE_MAX_CLIENTS = 10_000

/** Whose budget a write counts against: with auth on, the token's id, so that clients behind
 *  one proxy are told apart and one token cannot escape its budget by changing address; with
 *  auth off (request.token is null), the client's address. */
export function writeRateKey (request: FastifyRequest): string {
  return request.token?.id ?? request.ip
}

/** Registers the limiter and returns the hook to put on each write route; one store, so every
 *  write route draws on the same budget. */
export async function writeRateLimit (app: FastifyInstance, perSecond: number): Promise<onRequestHookHandler> {
  await app.register(rateLimit, { global: false, cache: WRITE_RATE_MAX_CLIENTS })
  return app.rateLimit({
    max: perSecond,
    timeWindow: WRITE_RATE_WINDOW_MS,
    keyGenerator: writeRateKey,
    errorResponseBuilder: (_req, ctx) => new RateLimitedError(perSecond, Math.max(1, Math.ceil(ctx.ttl / 1000)))
  }) as unknown as onRequestHookHandler
}
