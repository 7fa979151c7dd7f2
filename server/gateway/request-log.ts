// Which of Fastify's own per-request log lines the gateway writes, and at which level. Fastify
// writes two lines per request at info ('incoming request', 'request completed'); at a few
// thousand requests a second that is the whole log, so here they are debug lines, written only
// with `--log-level debug`. What is worth a line at info stays there: a request that failed
// with an error (Fastify's 'request errored' at error, and app.ts's error handler, which logs
// 5xx at error) and the audit line of each accepted write (auth.ts).
import { LogController, type FastifyReply, type FastifyRequest } from 'fastify'

export class RequestLogAtDebug extends LogController {
  override incomingRequest (request: FastifyRequest): void {
    request.log.debug({ req: request }, 'incoming request')
  }

  override requestCompleted (error: Error | null | undefined, _request: FastifyRequest, reply: FastifyReply): void {
    if (error !== null && error !== undefined) reply.log.error({ res: reply, err: error, responseTime: reply.elapsedTime }, 'request errored')
    else reply.log.debug({ res: reply, responseTime: reply.elapsedTime }, 'request completed')
  }

  override routeNotFound (request: FastifyRequest): void {
    request.log.debug(`Route ${request.raw.method ?? ''}:${request.raw.url ?? ''} not found`)
  }
}
