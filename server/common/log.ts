// The one logger factory: pino, the logger Fastify itself uses, so every role logs the same
// JSON lines. Entry points choose the level; modules receive a child logger and never create one.
import { pino, type Logger } from 'pino'

export type Log = Logger

export function createLog (opts: { level?: string, name?: string } = {}): Log {
  return pino({ level: opts.level ?? 'info', name: opts.name })
}

/** A logger that drops everything, for tests and tools that print their own output. */
export const silentLog: Log = pino({ level: 'silent' })
