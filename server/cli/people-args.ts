// The people commands' arguments (`roster ls|get|watch|register|deregister|maintenance`): one
// table of flags per command, parsed with node:util parseArgs like every other `roster` command,
// checked, and turned into what to ask the client, or into a UsageError that names the flag or
// argument and the problem (exit 2). The same tables generate each command's --help. Pure: the
// environment comes in as an argument, nothing is printed or sent.
import { parseArgs, type ParseArgsConfig } from 'node:util'
import type { ListFilters, ProviderProtocol, ProviderSpec, ProviderState } from '../../client/index.js'
import { helpTable, type HelpRow } from './help.js'

export const DEFAULT_URL = 'http://127.0.0.1:7070'

/** A mistake in how the command was called: printed with the command's usage, exit 2. */
export class UsageError extends Error {}

interface FlagSpec {
  type: 'string' | 'boolean'
  multiple?: true
  /** The value's placeholder in the help (`--port PORT`); none for a boolean. */
  value?: string
  help: string
}

interface CommandSpec {
  /** The arguments after the command's name, as the usage line shows them. */
  args: string
  summary: string
  flags: Record<string, FlagSpec>
}

/** Every people command takes these. */
const COMMON: Record<string, FlagSpec> = {
  url: { type: 'string', value: 'URL[,URL…]', help: `the gateways, tried in turn (default ${DEFAULT_URL}) [ROSTER_URL]` },
  token: { type: 'string', value: 'SECRET', help: 'an API token, needed with --auth on [ROSTER_TOKEN]' },
  help: { type: 'boolean', help: 'show this help' }
}
const JSON_FLAG: FlagSpec = { type: 'boolean', help: "print the API's JSON instead of text" }

export const PEOPLE_COMMANDS = {
  ls: {
    args: '[SERVICE]',
    summary: 'list services (name, providers, up), or one service\'s providers',
    flags: {
      state: { type: 'string', value: 'STATE', help: 'only providers in this state: up, down, pending or maintenance' },
      protocol: { type: 'string', value: 'PROTOCOL', help: 'only providers of this protocol: http, rpc or pub' },
      tag: { type: 'string', multiple: true, value: 'TAG', help: 'only providers with this tag (repeatable: all must match)' },
      json: JSON_FLAG
    }
  },
  get: {
    args: 'SERVICE ID',
    summary: 'show one provider',
    flags: { json: JSON_FLAG }
  },
  watch: {
    args: '[SERVICE …]',
    summary: 'follow the change feed, one line per event, until Ctrl-C',
    flags: {
      since: { type: 'string', value: 'REVISION', help: 'resume after this revision instead of starting with a snapshot' },
      json: { type: 'boolean', help: 'print each feed message as one line of JSON (NDJSON)' }
    }
  },
  register: {
    args: 'SERVICE ID',
    summary: 'register a provider, or update it',
    flags: {
      host: { type: 'string', value: 'HOST', help: 'the provider\'s host name or IP address (required)' },
      port: { type: 'string', value: 'PORT', help: 'its port, 1–65535 (required)' },
      protocol: { type: 'string', value: 'PROTOCOL', help: 'http, rpc or pub (required)' },
      heartbeat: { type: 'string', value: 'tcp://HOST:PORT', help: 'its ZeroMQ heartbeat endpoint; or one of the checks:' },
      'check-http': { type: 'string', value: 'PATH', help: 'a worker GETs http://HOST:PORT/PATH; a 2xx is healthy' },
      'check-tcp': { type: 'boolean', help: 'a worker connects to HOST:PORT' },
      'check-ttl': { type: 'string', value: 'MS', help: 'the provider renews itself at least every MS milliseconds' },
      'interval-ms': { type: 'string', value: 'MS', help: 'the heartbeat interval, or how often an http/tcp check runs (default 1000)' },
      'timeout-ms': { type: 'string', value: 'MS', help: 'an http/tcp check fails after this (default half the interval)' },
      'deregister-after-ms': { type: 'string', value: 'MS', help: 'remove the provider once it has been down this long' },
      tag: { type: 'string', multiple: true, value: 'TAG', help: 'a tag (repeatable)' },
      meta: { type: 'string', multiple: true, value: 'KEY=VALUE', help: 'a meta entry (repeatable)' },
      json: JSON_FLAG
    }
  },
  deregister: {
    args: 'SERVICE ID',
    summary: 'remove a provider',
    flags: { json: JSON_FLAG }
  },
  maintenance: {
    args: 'SERVICE ID on|off',
    summary: 'hold a provider out of rotation (on), or release it (off)',
    flags: {
      reason: { type: 'string', value: 'TEXT', help: 'a note shown as the provider\'s reason (with on)' },
      json: JSON_FLAG
    }
  }
} satisfies Record<string, CommandSpec>

export type PeopleCommandName = keyof typeof PEOPLE_COMMANDS

export function isPeopleCommand (name: string): name is PeopleCommandName {
  return Object.hasOwn(PEOPLE_COMMANDS, name)
}

/** What to do, once the arguments are checked. */
export type PeopleAction =
  | { kind: 'services' }
  | { kind: 'list', service: string, filters: ListFilters }
  | { kind: 'get', service: string, id: string }
  | { kind: 'watch', services: string[], since: number | undefined }
  | { kind: 'register', service: string, id: string, spec: ProviderSpec }
  | { kind: 'deregister', service: string, id: string }
  | { kind: 'maintenance', service: string, id: string, enabled: boolean, reason: string | undefined }

export interface PeopleInvocation {
  action: PeopleAction
  urls: string[]
  token: string | undefined
  json: boolean
}

export function usageLine (name: PeopleCommandName): string {
  return `Usage: roster ${name} ${PEOPLE_COMMANDS[name].args} [flags]`
}

/** `roster <name> --help`. */
export function peopleHelp (name: PeopleCommandName): string {
  const spec: CommandSpec = PEOPLE_COMMANDS[name]
  const rows: HelpRow[] = Object.entries({ ...spec.flags, ...COMMON })
    .map(([flag, f]) => [`--${flag}${f.value === undefined ? '' : ` ${f.value}`}`, f.help])
  return [usageLine(name), '', `${spec.summary[0]?.toUpperCase() ?? ''}${spec.summary.slice(1)}.`, '', 'Flags (environment twin in brackets):', ...helpTable(rows)].join('\n')
}

/** The rows of the top-level help for these commands. */
export function peopleCommandRows (): HelpRow[] {
  return Object.entries(PEOPLE_COMMANDS).map(([name, spec]) => [`${name} ${spec.args}`, spec.summary])
}

const STATES: readonly ProviderState[] = ['up', 'down', 'pending', 'maintenance']
const PROTOCOLS: readonly ProviderProtocol[] = ['http', 'rpc', 'pub']

/** Parses `argv` (the words after the command's name); 'help' when --help was asked for. */
export function parsePeople (name: PeopleCommandName, argv: string[], env: NodeJS.ProcessEnv): PeopleInvocation | 'help' {
  const spec: CommandSpec = PEOPLE_COMMANDS[name]
  const options: ParseArgsConfig['options'] = {}
  for (const [flag, f] of Object.entries({ ...spec.flags, ...COMMON })) {
    options[flag] = { type: f.type, ...(f.multiple === true ? { multiple: true } : {}), ...(flag === 'help' ? { short: 'h' } : {}) }
  }
  let parsed
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true })
  } catch (err) {
    // parseArgs names the flag: "Unknown option '--frob'", "Option '--host <value>' argument missing".
    throw new UsageError((err as Error).message)
  }
  const values = parsed.values as Record<string, string | boolean | string[] | undefined>
  if (values.help === true) return 'help'
  const str = (flag: string): string | undefined => values[flag] as string | undefined
  const list = (flag: string): string[] => (values[flag] as string[] | undefined) ?? []
  const positionals = parsed.positionals

  const urls = (str('url') ?? nonEmpty(env.ROSTER_URL) ?? DEFAULT_URL).split(',').map((u) => u.trim()).filter((u) => u !== '')
  if (urls.length === 0) throw new UsageError('--url (ROSTER_URL) must name at least one gateway URL')
  for (const url of urls) {
    if (!isHttpUrl(url)) throw new UsageError(`--url (ROSTER_URL) must be a comma-separated list of http(s)://HOST:PORT URLs, got ${JSON.stringify(url)}`)
  }
  const token = str('token') ?? nonEmpty(env.ROSTER_TOKEN)
  // Never quote the token: it is a secret.
  if (token !== undefined && !/^[\x21-\x7e]{1,1024}$/.test(token)) throw new UsageError('--token (ROSTER_TOKEN) must be 1–1024 printable ASCII characters without spaces')
  const json = values.json === true

  const action = ((): PeopleAction => {
    switch (name) {
      case 'ls': {
        const [service] = arity(positionals, 0, 1, 'at most one SERVICE')
        const state = str('state')
        const protocol = str('protocol')
        const tags = list('tag')
        if (service === undefined) {
          for (const flag of ['state', 'protocol', 'tag']) {
            if (values[flag] !== undefined) throw new UsageError(`--${flag} filters a service's providers: give the SERVICE (roster ls SERVICE --${flag} …)`)
          }
          return { kind: 'services' }
        }
        if (state !== undefined && !(STATES as string[]).includes(state)) throw new UsageError(`--state must be one of ${STATES.join(', ')}, got ${JSON.stringify(state)}`)
        if (protocol !== undefined && !(PROTOCOLS as string[]).includes(protocol)) throw new UsageError(`--protocol must be one of ${PROTOCOLS.join(', ')}, got ${JSON.stringify(protocol)}`)
        const filters: ListFilters = {
          ...(state === undefined ? {} : { state: state as ProviderState }),
          ...(protocol === undefined ? {} : { protocol: protocol as ProviderProtocol }),
          ...(tags.length === 0 ? {} : { tag: tags })
        }
        return { kind: 'list', service, filters }
      }
      case 'get':
      case 'deregister': {
        const [service, id] = arity(positionals, 2, 2, 'SERVICE and ID') as [string, string]
        return { kind: name, service, id }
      }
      case 'watch': {
        const since = str('since')
        return { kind: 'watch', services: positionals, since: since === undefined ? undefined : integer('--since', since, 0, Number.MAX_SAFE_INTEGER) }
      }
      case 'register': {
        const [service, id] = arity(positionals, 2, 2, 'SERVICE and ID') as [string, string]
        return { kind: 'register', service, id, spec: registrationSpec(values) }
      }
      case 'maintenance': {
        const [service, id, mode] = arity(positionals, 3, 3, 'SERVICE, ID and on or off') as [string, string, string]
        if (mode !== 'on' && mode !== 'off') throw new UsageError(`the third argument must be on or off, got ${JSON.stringify(mode)}`)
        const reason = str('reason')
        if (mode === 'off' && reason !== undefined) throw new UsageError('--reason goes with on (a released provider has no maintenance note)')
        return { kind: 'maintenance', service, id, enabled: mode === 'on', reason }
      }
    }
  })()
  return { action, urls, token, json }
}

/** The body of a registration from register's flags. The gateway checks every value again and
 *  answers 400 naming the field; here only what a flag's own syntax decides is checked. */
function registrationSpec (values: Record<string, string | boolean | string[] | undefined>): ProviderSpec {
  const str = (flag: string): string | undefined => values[flag] as string | undefined
  const required = (flag: string): string => {
    const v = str(flag)
    if (v === undefined) throw new UsageError(`--${flag} is required`)
    return v
  }
  const host = required('host')
  const port = integer('--port', required('port'), 1, 65535)
  const protocol = required('protocol')
  if (!(PROTOCOLS as string[]).includes(protocol)) throw new UsageError(`--protocol must be one of ${PROTOCOLS.join(', ')}, got ${JSON.stringify(protocol)}`)
  const sources = ['heartbeat', 'check-http', 'check-tcp', 'check-ttl'].filter((f) => values[f] !== undefined)
  if (sources.length !== 1) {
    throw new UsageError(sources.length === 0
      ? 'give one of --heartbeat tcp://HOST:PORT, --check-http PATH, --check-tcp or --check-ttl MS (how Roster knows the provider is alive)'
      : `give only one of ${sources.map((s) => `--${s}`).join(', ')} (a provider's presence comes from one source)`)
  }
  const source = sources[0] as string
  const intervalText = str('interval-ms')
  const timeoutText = str('timeout-ms')
  const intervalMs = intervalText === undefined ? undefined : integer('--interval-ms', intervalText, 1, Number.MAX_SAFE_INTEGER)
  if (source === 'check-ttl' && intervalMs !== undefined) throw new UsageError('--interval-ms does not apply to --check-ttl (its MS is the ttl)')
  if (timeoutText !== undefined && source !== 'check-http' && source !== 'check-tcp') throw new UsageError('--timeout-ms applies only to --check-http and --check-tcp')
  const spec: ProviderSpec = { host, port, protocol: protocol as ProviderProtocol }
  if (source === 'heartbeat') {
    spec.heartbeat = str('heartbeat')
    if (intervalMs !== undefined) spec.heartbeatIntervalMs = intervalMs
  } else if (source === 'check-ttl') {
    spec.check = { type: 'ttl', ttlMs: integer('--check-ttl', str('check-ttl') as string, 1, Number.MAX_SAFE_INTEGER) }
  } else {
    const interval = intervalMs ?? 1000
    const timeoutMs = timeoutText === undefined ? Math.max(1, Math.floor(interval / 2)) : integer('--timeout-ms', timeoutText, 1, Number.MAX_SAFE_INTEGER)
    spec.check = source === 'check-tcp'
      ? { type: 'tcp', intervalMs: interval, timeoutMs }
      : { type: 'http', path: str('check-http') as string, intervalMs: interval, timeoutMs }
  }
  const deregisterAfter = str('deregister-after-ms')
  if (deregisterAfter !== undefined) spec.deregisterAfterMs = integer('--deregister-after-ms', deregisterAfter, 1, Number.MAX_SAFE_INTEGER)
  const tags = (values.tag as string[] | undefined) ?? []
  if (tags.length > 0) spec.tags = tags
  const meta = (values.meta as string[] | undefined) ?? []
  if (meta.length > 0) {
    spec.meta = {}
    for (const entry of meta) {
      const eq = entry.indexOf('=')
      if (eq <= 0) throw new UsageError(`--meta must be KEY=VALUE with a non-empty KEY, got ${JSON.stringify(entry)}`)
      const key = entry.slice(0, eq)
      if (Object.hasOwn(spec.meta, key)) throw new UsageError(`--meta ${JSON.stringify(key)} is given twice`)
      spec.meta[key] = entry.slice(eq + 1)
    }
  }
  return spec
}

function arity (positionals: string[], min: number, max: number, what: string): Array<string | undefined> {
  if (positionals.length < min) throw new UsageError(`missing arguments: expected ${what}`)
  if (positionals.length > max) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[max])}: expected ${what}`)
  return positionals
}

function integer (flag: string, text: string, min: number, max: number): number {
  const n = /^[0-9]+$/.test(text) ? Number(text) : NaN
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `${min}–${max}`
    throw new UsageError(`${flag} must be an integer ${range}, got ${JSON.stringify(text)}`)
  }
  return n
}

function isHttpUrl (text: string): boolean {
  try {
    const url = new URL(text)
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.host !== ''
  } catch {
    return false
  }
}

function nonEmpty (value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value
}
