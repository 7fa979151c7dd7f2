// The one logger factory: pino, the logger Fastify itself uses, so every role logs the same
// records. Entry points choose the level and the format; modules receive a child logger and
// never create one. `json` writes pino's JSON lines, for machines (the default when stdout is
// not a terminal); `pretty` writes log-format.ts's lines, for people (the default on a terminal).
//
// Pretty lines, and the text `printLines` writes (the banner of `roster up`), go to file
// descriptor 1 synchronously, a whole line in one write: `roster up` logs from two threads into
// one terminal, and written this way their lines arrive whole and in the order they were
// logged. JSON keeps pino's asynchronous writer, which costs the roles less under load.
import { destination, pino, type DestinationStream, type Logger } from 'pino'
import { prettyLogLine, type LogFormat } from './log-format.js'

export type Log = Logger
export type { LogFormat }

export interface LogOptions {
  level?: string
  name?: string
  /** Default json. */
  format?: LogFormat
  /** Pretty only: colour the level (a terminal, and NO_COLOR unset). Default false. */
  colour?: boolean
}

/** One synchronous writer to stdout per thread, shared by every pretty logger and printLines. */
let stdout: DestinationStream | undefined
function syncStdout (): DestinationStream {
  // sonic-boom in sync mode: it retries a short or EAGAIN write (a busy terminal) until the
  // whole line is out.
  stdout ??= destination({ fd: 1, sync: true })
  return stdout
}

export function createLog (opts: LogOptions = {}): Log {
  const options = { level: opts.level ?? 'info', name: opts.name }
  if (opts.format !== 'pretty') return pino(options)
  const colour = opts.colour === true
  const out = syncStdout()
  return pino(options, {
    write (line: string): void {
      out.write(prettyLogLine(JSON.parse(line) as Record<string, unknown>, { colour }))
    }
  })
}

/** Writes `lines` to stdout in the same stream as pretty log lines, after every line already logged. */
export function printLines (lines: readonly string[]): void {
  syncStdout().write(lines.map((l) => `${l}\n`).join(''))
}

/** Whether stdout is a terminal and how to log there: the defaults of --log-format and of colour. */
export function terminalDefaults (env: NodeJS.ProcessEnv, isTTY: boolean): { format: LogFormat, colour: boolean } {
  return { format: isTTY ? 'pretty' : 'json', colour: isTTY && (env.NO_COLOR ?? '') === '' }
}

/** A logger that drops everything, for tests and tools that print their own output. */
export const silentLog: Log = pino({ level: 'silent' })
