// The roles' configuration (`roster up|leader|worker|gateway`), defined once: for every flag its
// TypeBox schema (type, bounds, allowed values, default), environment twins, help line and roles.
// The flags parseArgs accepts, `roster <role> --help`, the parsing of argv and environment into
// one typed, checked Config, and README.md › Configuration (test/docs/config-table.test.ts) all
// come from SETTINGS or are checked against it. Pure: the environment comes in as an argument.
import { parseArgs } from 'node:util'
import { KindGuard, Type, type Static, type TInteger, type TLiteral, type TSchema, type TUnion } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { CONNECTION_TIMEOUT_MS, HEADERS_TIMEOUT_MS, KEEP_ALIVE_TIMEOUT_MS, REQUEST_TIMEOUT_MS } from '../gateway/http-limits.js'
import { LOG_FORMATS, LOG_LEVELS } from '../common/log-format.js'
import { leaderBindProblem } from '../protocol/cluster-keys.js'
import { parseTcpEndpoint } from '../protocol/endpoints.js'
import { CHECK_INTERVAL_MAX_MS, CHECK_INTERVAL_MIN_MS } from '../protocol/model.js'
import { parseAllowTargets } from '../protocol/targets.js'
import type { HelpRow } from './help.js'

export const ALL_ROLES = ['up', 'leader', 'worker', 'gateway'] as const
export type Role = typeof ALL_ROLES[number]

/** One flag. Its schema's `default` is what an unset flag means; a schema without one is
 *  Type.Optional, and `help` says what unset means. A Type.Boolean flag is given bare
 *  (`--insecure-no-auth`), and its environment twin is true when set to 1 or true. */
interface Setting {
  schema: TSchema
  /** The environment twins, in order of precedence; an empty one counts as unset. */
  env: readonly string[]
  help: string
  roles: readonly Role[]
  /** A check the schema cannot express, throwing an Error that names the flag. */
  check?: (text: string) => void
}

function port (def?: number): TInteger {
  return Type.Integer({ minimum: 0, maximum: 65535, ...(def === undefined ? {} : { default: def }) })
}
/** One of `words`, as a union of literals (its `expectation` lists them). */
function literals<W extends string> (words: readonly W[], options?: { default: W }): TUnion<Array<TLiteral<W>>> {
  return Type.Union(words.map((w) => Type.Literal(w)), options)
}
/** `a, b or c`. */
function oneOf (words: readonly string[]): string {
  return `${words.slice(0, -1).join(', ')} or ${String(words.at(-1))}`
}
function positive (def?: number): TInteger {
  return Type.Integer({ minimum: 1, ...(def === undefined ? {} : { default: def }) })
}

export const SETTINGS = {
  port: { schema: port(7070), env: ['ROSTER_PORT', 'PORT'], help: 'gateway HTTP port', roles: ['up', 'gateway'] },
  host: { schema: Type.String({ default: '127.0.0.1' }), env: ['ROSTER_HOST', 'HOST'], help: 'gateway HTTP host', roles: ['up', 'gateway'] },
  'database-url': { schema: Type.Optional(Type.String()), env: ['ROSTER_DATABASE_URL', 'DATABASE_URL'], help: 'server Postgres (postgres://…); unset: embedded Postgres in --data-dir', roles: ['up', 'leader'] },
  'data-dir': { schema: Type.String({ default: './.roster' }), env: ['ROSTER_DATA_DIR'], help: 'embedded database directory', roles: ['up', 'leader'] },
  bind: {
    schema: Type.String({ default: 'tcp://127.0.0.1:7071' }), env: ['ROSTER_BIND'], help: 'leader ROUTER endpoint; events are published on PORT+1', roles: ['up', 'leader'],
    check: (text) => { parseTcpEndpoint(text, '--bind') }
  },
  leader: {
    schema: Type.String({ default: 'tcp://127.0.0.1:7071' }), env: ['ROSTER_LEADER'], help: 'leader candidates, comma-separated tcp://HOST:PORT', roles: ['worker', 'gateway'],
    check: (text) => { for (const c of text.split(',')) parseTcpEndpoint(c.trim(), '--leader') }
  },
  watchers: { schema: positive(1), env: ['ROSTER_WATCHERS'], help: 'workers that watch each provider; with 2 or more, down needs all of them to agree', roles: ['up', 'leader'] },
  'flap-max-changes': { schema: positive(5), env: ['ROSTER_FLAP_MAX_CHANGES'], help: 'presence changes tolerated within the flap window before a provider is held down as flapping', roles: ['up', 'leader'] },
  'flap-window-ms': { schema: positive(60000), env: ['ROSTER_FLAP_WINDOW_MS'], help: 'the flap window', roles: ['up', 'leader'] },
  'flap-hold-ms': { schema: positive(30000), env: ['ROSTER_FLAP_HOLD_MS'], help: 'stable time that ends a flapping hold', roles: ['up', 'leader'] },
  'allow-targets': {
    schema: Type.String({ default: 'any' }), env: ['ROSTER_ALLOW_TARGETS'], help: 'CIDR ranges (comma-separated) that heartbeat endpoints and check targets must resolve into', roles: ['up', 'gateway', 'worker'],
    check: (text) => { parseAllowTargets(text) }
  },
  'max-providers-per-service': { schema: positive(100000), env: ['ROSTER_MAX_PROVIDERS_PER_SERVICE'], help: 'providers one service may hold; a new one beyond is 429', roles: ['up', 'leader'] },
  'max-providers': { schema: positive(500000), env: ['ROSTER_MAX_PROVIDERS'], help: 'providers the registry may hold; a new one beyond is 429', roles: ['up', 'leader'] },
  'write-rate': { schema: Type.Optional(positive()), env: ['ROSTER_WRITE_RATE'], help: 'writes per second per client (per token with auth on), beyond: 429 with Retry-After; unset: off', roles: ['up', 'gateway'] },
  'min-check-interval-ms': {
    schema: Type.Integer({ minimum: CHECK_INTERVAL_MIN_MS, maximum: CHECK_INTERVAL_MAX_MS, default: 1000 }), env: ['ROSTER_MIN_CHECK_INTERVAL_MS'],
    help: `shortest http/tcp check intervalMs accepted (at least ${CHECK_INTERVAL_MIN_MS})`, roles: ['up', 'gateway']
  },
  auth: {
    schema: Type.Union([Type.Literal('on'), Type.Literal('off')], { default: 'off' }), env: ['ROSTER_AUTH'],
    help: 'on: every request needs a bearer token (ROSTER_BOOTSTRAP_TOKEN installs the first, admin one); off (the default) only while --host is loopback, unless --insecure-no-auth',
    roles: ['up', 'gateway']
  },
  'cluster-keys': { schema: Type.Optional(Type.String()), env: ['ROSTER_CLUSTER_KEYS'], help: 'CurveZMQ key file (make one with `roster keys generate FILE`): roles authenticate each other and encrypt; unset: plain ZeroMQ', roles: ['up', 'leader', 'worker', 'gateway'] },
  'insecure-no-auth': { schema: Type.Boolean({ default: false }), env: ['ROSTER_INSECURE_NO_AUTH'], help: 'allow a gateway without auth, or a leader without cluster keys, on a non-loopback address', roles: ['up', 'leader', 'gateway'] },
  'max-connections': { schema: Type.Optional(positive()), env: ['ROSTER_MAX_CONNECTIONS'], help: 'open HTTP and WebSocket connections; default: the open-files limit less 256 (10000 where it cannot be read)', roles: ['up', 'gateway'] },
  'http-connection-timeout-ms': { schema: positive(CONNECTION_TIMEOUT_MS), env: ['ROSTER_HTTP_CONNECTION_TIMEOUT_MS'], help: 'an HTTP connection silent this long (mid-request, or before its first byte) is closed', roles: ['up', 'gateway'] },
  'http-keep-alive-timeout-ms': { schema: positive(KEEP_ALIVE_TIMEOUT_MS), env: ['ROSTER_HTTP_KEEP_ALIVE_TIMEOUT_MS'], help: 'an idle keep-alive connection is closed after this (keep it above your load balancer\'s idle timeout)', roles: ['up', 'gateway'] },
  'http-headers-timeout-ms': { schema: positive(HEADERS_TIMEOUT_MS), env: ['ROSTER_HTTP_HEADERS_TIMEOUT_MS'], help: 'the request line and headers must arrive within this (slowloris)', roles: ['up', 'gateway'] },
  'http-request-timeout-ms': { schema: positive(REQUEST_TIMEOUT_MS), env: ['ROSTER_HTTP_REQUEST_TIMEOUT_MS'], help: 'a whole request, body included, must arrive within this', roles: ['up', 'gateway'] },
  'max-watchers': { schema: positive(50000), env: ['ROSTER_MAX_WATCHERS'], help: 'WebSocket feed clients; beyond it an upgrade gets 503 ROSTER_ERR_TOO_MANY_WATCHERS', roles: ['up', 'gateway'] },
  'watch-buffer-bytes': { schema: positive(256 * 1024 * 1024), env: ['ROSTER_WATCH_BUFFER_BYTES'], help: 'unsent feed bytes for all clients together; beyond it the slowest client is closed with 4008', roles: ['up', 'gateway'] },
  'tls-cert': { schema: Type.Optional(Type.String()), env: ['ROSTER_TLS_CERT'], help: 'PEM certificate (chain) file: serve HTTPS and WSS (with --tls-key)', roles: ['up', 'gateway'] },
  'tls-key': { schema: Type.Optional(Type.String()), env: ['ROSTER_TLS_KEY'], help: 'PEM private key file for --tls-cert', roles: ['up', 'gateway'] },
  'metrics-port': { schema: Type.Optional(port()), env: ['ROSTER_METRICS_PORT'], help: 'serve Prometheus metrics at http://--metrics-host:PORT/metrics (roster up and roster gateway serve them at the gateway\'s /metrics); unset: not served', roles: ['leader', 'worker'] },
  'metrics-host': { schema: Type.String({ default: '127.0.0.1' }), env: ['ROSTER_METRICS_HOST'], help: 'address for --metrics-port; the listener has no auth, so keep it loopback or reachable only by Prometheus', roles: ['leader', 'worker'] },
  'log-level': {
    schema: literals(LOG_LEVELS, { default: 'info' }), env: ['ROSTER_LOG_LEVEL'],
    help: oneOf(LOG_LEVELS), roles: ['up', 'leader', 'worker', 'gateway']
  },
  'log-format': {
    schema: Type.Optional(literals(LOG_FORMATS)), env: ['ROSTER_LOG_FORMAT'],
    help: 'json (one JSON object a line) or pretty (time, level, message, key=value); default: pretty on a terminal, json otherwise', roles: ['up', 'leader', 'worker', 'gateway']
  }
} as const satisfies Record<string, Setting>

type Name = keyof typeof SETTINGS
const ENTRIES = Object.entries(SETTINGS) as Array<[Name, Setting]>

/** Every flag's schema as the properties of one object: Static of it is the Config type, and
 *  Value.Default fills in the defaults. */
const CONFIG = Type.Object(Object.fromEntries(ENTRIES.map(([name, s]) => [name, s.schema])) as { [N in Name]: typeof SETTINGS[N]['schema'] })

/** A role's configuration, checked: a flag with a default is always set; one without is
 *  undefined when neither it nor an environment twin is given. */
export type Config = Static<typeof CONFIG>

/** Read from the environment only (a flag would show in process lists): cli.ts checks it and
 *  removes it from the environment before anything else runs. */
export const ENVIRONMENT_ONLY: Record<string, { roles: readonly Role[] }> = {
  ROSTER_BOOTSTRAP_TOKEN: { roles: ['up', 'leader'] }
}

/** `role`'s flags for its --help: each with its default and environment twins. */
export function flagHelpRows (role: Role): HelpRow[] {
  return ENTRIES.filter(([, s]) => s.roles.includes(role)).map(([name, s]) => {
    const def = s.schema.default === undefined || KindGuard.IsBoolean(s.schema) ? '' : ` (default ${String(s.schema.default)})`
    return [`--${name}`, `${s.help}${def} [${s.env.join(', ')}]`] as const
  })
}

/**
 * `role`'s configuration from its argv and the environment: a flag wins over its environment
 * twins, which win over the default. Throws an Error that names the flag and the problem: an
 * unknown flag, one of another role, a value its schema or check rejects, or flags that only go
 * together. Every flag is read and checked whatever the role: a wrong environment twin is a
 * mistake even where it does not apply, better reported now than by the next role started
 * with that environment.
 */
export function parseConfig (role: Role, argv: string[], env: NodeJS.ProcessEnv): Config {
  const options = Object.fromEntries(ENTRIES.map(([name, s]) => [name, { type: KindGuard.IsBoolean(s.schema) ? 'boolean' as const : 'string' as const }]))
  const { values } = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean' } }, strict: true })
  const given: Record<string, unknown> = values
  const texts: Record<string, string> = {}
  const config: Record<string, unknown> = {}
  for (const [name, s] of ENTRIES) {
    const flag = given[name]
    if (flag !== undefined && !s.roles.includes(role)) throw new Error(`--${name} does not apply to \`roster ${role}\``)
    const fromEnv = s.env.map((e) => env[e]).find((v) => v !== undefined && v !== '')
    if (KindGuard.IsBoolean(s.schema)) {
      if (flag === true || fromEnv === '1' || fromEnv === 'true') config[name] = true
    } else {
      const text = typeof flag === 'string' ? flag : fromEnv
      if (text === undefined) continue
      texts[name] = text
      config[name] = KindGuard.IsInteger(s.schema) ? integer(text) : text
    }
  }
  Value.Default(CONFIG, config)
  for (const [name, s] of ENTRIES) {
    const value = config[name]
    if (value === undefined) continue
    if (!Value.Check(s.schema, value)) throw new Error(`--${name} ${expectation(s.schema)}, got ${JSON.stringify(texts[name])}`)
    if (s.check !== undefined && typeof value === 'string') s.check(value)
  }
  if (!Value.Check(CONFIG, config)) {
    // Unreachable while every flag is checked above; the check is what makes `config` a Config.
    const [first] = Value.Errors(CONFIG, config)
    throw new Error(`the configuration does not match its schema at ${first?.path ?? '?'}: ${first?.message ?? '?'}`)
  }
  if (role === 'up' || role === 'leader') {
    const problem = leaderBindProblem(config.bind, config['cluster-keys'] !== undefined, config['insecure-no-auth'])
    if (problem !== null) throw new Error(problem)
  }
  if ((config['tls-cert'] === undefined) !== (config['tls-key'] === undefined)) {
    throw new Error('--tls-cert and --tls-key go together: give both (HTTPS) or neither (HTTP)')
  }
  return config
}

/** Decimal digits as a number; anything else stays text, for the schema to reject with the flag's
 *  own words. Not Value.Convert: it truncates "1.5" to the integer 1, which must be an error. */
function integer (text: string): number | string {
  return /^\d+$/.test(text.trim()) ? Number(text) : text
}

/** What `schema` accepts, as the end of "--flag must be …". */
function expectation (schema: TSchema): string {
  if (KindGuard.IsInteger(schema)) {
    return schema.maximum === undefined && schema.minimum === 1 ? 'must be a positive integer' : `must be an integer ${String(schema.minimum)}–${String(schema.maximum)}`
  }
  if (KindGuard.IsUnion(schema)) {
    return `must be ${oneOf(schema.anyOf.map((literal) => String(literal.const)))}`
  }
  return 'is not valid'
}
