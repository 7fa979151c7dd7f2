// The human-readable form of a log record (`--log-format pretty`, the default on a terminal): one
// line of local time, level, role, message and key=value fields, and an error's stack indented
// under it. Pure: log.ts feeds it the records pino serialises. Field values may carry what
// clients sent (a request path, a provider's tags, a check's detail), so every piece of text goes
// through `printable`: a log line never moves the cursor or retitles the operator's terminal.
import { jsonLine, printable } from './printable.js'

export const LOG_FORMATS = ['json', 'pretty'] as const
/** The levels --log-level accepts (pino's, less trace, which Roster never logs at). */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'silent'] as const
export type LogFormat = typeof LOG_FORMATS[number]

/** pino's numeric levels and their names, padded to one width so that messages line up. */
const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO ', 40: 'WARN ', 50: 'ERROR', 60: 'FATAL' }
/** Red for what needs attention, yellow for a warning, grey for detail; info stays plain. */
const LEVEL_COLOURS: Record<number, string> = { 10: '90', 20: '90', 40: '33', 50: '31', 60: '31' }
/** In every record and of no use to someone reading a terminal: pino's bookkeeping. */
const OMITTED = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'name', 'role', 'component', 'err'])
/** A value printed without quotes: no space, quote, `=` or backslash, so `key=value` stays unambiguous. */
const BARE = /^[^\s"=\\]+$/

/** `time` as the local HH:MM:SS.mmm. */
function clock (time: number): string {
  const d = new Date(time)
  const two = (n: number): string => String(n).padStart(2, '0')
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, '0')}`
}

function value (v: unknown): string {
  if (typeof v === 'string') return v !== '' && BARE.test(v) ? printable(v) : jsonLine(v)
  if (typeof v === 'number' || typeof v === 'boolean' || v === null) return String(v)
  return jsonLine(v)
}

/**
 * One record as pino writes it (`{ level, time, msg, …fields }`) as text ending in a newline:
 * `12:14:21.526 INFO  leader: active leader epoch=1 revision=0`. An `err` shows its message as a
 * field and its stack (beyond the first line, which repeats the message) on the lines below.
 */
export function prettyLogLine (record: Record<string, unknown>, opts: { colour: boolean }): string {
  const level = typeof record.level === 'number' ? record.level : 30
  let label = LEVELS[level] ?? String(level).padEnd(5)
  const colour = LEVEL_COLOURS[level]
  if (opts.colour && colour !== undefined) label = `\u001b[${colour}m${label}\u001b[0m`
  const who = [record.name, record.role, record.component].filter((w): w is string => typeof w === 'string').map(printable).join('/')
  const parts = [clock(typeof record.time === 'number' ? record.time : Date.now()), label]
  const msg = typeof record.msg === 'string' ? printable(record.msg) : ''
  parts.push(who === '' ? msg : `${who}: ${msg}`)
  const err = record.err as { message?: unknown, code?: unknown, stack?: unknown } | undefined
  if (typeof err === 'object' && err !== null) {
    parts.push(`err=${value(typeof err.message === 'string' ? err.message : String(err.message))}`)
    if (typeof err.code === 'string') parts.push(`code=${value(err.code)}`)
  }
  for (const [k, v] of Object.entries(record)) {
    if (OMITTED.has(k) || v === undefined) continue
    parts.push(`${printable(k)}=${value(v)}`)
  }
  let text = parts.filter((p) => p !== '').join(' ')
  if (typeof err === 'object' && err !== null && typeof err.stack === 'string') {
    for (const line of err.stack.split('\n').slice(1)) text += `\n    ${printable(line.trim())}`
  }
  return `${text}\n`
}
