// `roster <command>`: the only module that reads process.env and argv, installs signal handlers
// and listens. It dispatches the people commands (ls, get, watch, register, deregister,
// maintenance: server/cli/people.ts), `token` and `keys`; for the roles (up, leader, worker,
// gateway) it validates the configuration, wires the roles with plain factories, prints what it
// serves, and shuts everything down in order on SIGINT/SIGTERM. Every command parses its flags
// with node:util parseArgs, and lays out its help with server/cli/help.ts.
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { createSecureContext } from 'node:tls'
import { parseArgs } from 'node:util'
import { isLoopbackHost, parseTcpEndpoint, pubEndpoint } from './protocol/endpoints.js'
import { parseAllowTargets } from './protocol/targets.js'
import { CHECK_INTERVAL_MAX_MS, CHECK_INTERVAL_MIN_MS } from './protocol/model.js'
import { leaderBindProblem, loadClusterKeys, writeClusterKeys, type ClusterKeys } from './protocol/cluster-keys.js'
import { CONNECTION_TIMEOUT_MS, HEADERS_TIMEOUT_MS, KEEP_ALIVE_TIMEOUT_MS, REQUEST_TIMEOUT_MS } from './gateway/http-limits.js'
import { createLog, LOG_FORMATS, printLines, terminalDefaults, type LogFormat } from './common/log.js'
import { helpTable, helpWidth, type HelpRow } from './cli/help.js'
import { peopleCommand } from './cli/people.js'
import { isPeopleCommand, peopleCommandRows } from './cli/people-args.js'
import { startGateway, startLeader, startWorker, type Stopper } from './roles.js'
import { tokenCommand } from './token-command.js'
import { createLocalEndpoint, type LocalEndpoint } from './up/local-endpoint.js'
import { startGatewayThread } from './up/threads.js'
import { createProcessRegistry, renderMetrics } from './common/metrics.js'
import { serveMetrics } from './common/metrics-server.js'
import type { Registry } from 'prom-client'

type Role = 'up' | 'leader' | 'worker' | 'gateway'

/** How long an orderly stop may take before the process exits anyway. The parts, in order: the
 *  gateway gives WebSocket clients up to 1 s to answer their 1001 close, the worker's BYE lingers
 *  0.1 s, the leader unlocks and ends its lock session within 1 s. */
const STOP_DEADLINE_MS = 3000

/** A flag takes a value unless `boolean`: then it is given bare (`--insecure-no-auth`) and its
 *  environment twin is true when set to 1 or true. */
interface Flag { env: string[], help: string, roles: Role[], default?: string, boolean?: true }

const FLAGS: Record<string, Flag> = {
  port: { env: ['ROSTER_PORT', 'PORT'], help: 'gateway HTTP port', roles: ['up', 'gateway'], default: '7070' },
  host: { env: ['ROSTER_HOST', 'HOST'], help: 'gateway HTTP host', roles: ['up', 'gateway'], default: '127.0.0.1' },
  'database-url': { env: ['ROSTER_DATABASE_URL', 'DATABASE_URL'], help: 'server Postgres (postgres://…); unset: embedded Postgres in --data-dir', roles: ['up', 'leader'] },
  'data-dir': { env: ['ROSTER_DATA_DIR'], help: 'embedded database directory', roles: ['up', 'leader'], default: './.roster' },
  bind: { env: ['ROSTER_BIND'], help: 'leader ROUTER endpoint; events are published on PORT+1', roles: ['up', 'leader'], default: 'tcp://127.0.0.1:7071' },
  leader: { env: ['ROSTER_LEADER'], help: 'leader candidates, comma-separated tcp://HOST:PORT', roles: ['worker', 'gateway'], default: 'tcp://127.0.0.1:7071' },
  watchers: { env: ['ROSTER_WATCHERS'], help: 'workers that watch each provider; with 2 or more, down needs all of them to agree', roles: ['up', 'leader'], default: '1' },
  'flap-max-changes': { env: ['ROSTER_FLAP_MAX_CHANGES'], help: 'presence changes tolerated within the flap window before a provider is held down as flapping', roles: ['up', 'leader'], default: '5' },
  'flap-window-ms': { env: ['ROSTER_FLAP_WINDOW_MS'], help: 'the flap window', roles: ['up', 'leader'], default: '60000' },
  'flap-hold-ms': { env: ['ROSTER_FLAP_HOLD_MS'], help: 'stable time that ends a flapping hold', roles: ['up', 'leader'], default: '30000' },
  'allow-targets': { env: ['ROSTER_ALLOW_TARGETS'], help: 'CIDR ranges (comma-separated) that heartbeat endpoints and check targets must resolve into', roles: ['up', 'gateway', 'worker'], default: 'any' },
  'max-providers-per-service': { env: ['ROSTER_MAX_PROVIDERS_PER_SERVICE'], help: 'providers one service may hold; a new one beyond is 429', roles: ['up', 'leader'], default: '100000' },
  'max-providers': { env: ['ROSTER_MAX_PROVIDERS'], help: 'providers the registry may hold; a new one beyond is 429', roles: ['up', 'leader'], default: '500000' },
  'write-rate': { env: ['ROSTER_WRITE_RATE'], help: 'writes per second per client (per token with auth on), beyond: 429 with Retry-After; unset: off', roles: ['up', 'gateway'] },
  'min-check-interval-ms': { env: ['ROSTER_MIN_CHECK_INTERVAL_MS'], help: `shortest http/tcp check intervalMs accepted (at least ${CHECK_INTERVAL_MIN_MS})`, roles: ['up', 'gateway'], default: '1000' },
  auth: { env: ['ROSTER_AUTH'], help: 'on: every request needs a bearer token (ROSTER_BOOTSTRAP_TOKEN installs the first, admin one); off (the default) only while --host is loopback, unless --insecure-no-auth', roles: ['up', 'gateway'], default: 'off' },
  'cluster-keys': { env: ['ROSTER_CLUSTER_KEYS'], help: 'CurveZMQ key file (make one with `roster keys generate FILE`): roles authenticate each other and encrypt; unset: plain ZeroMQ', roles: ['up', 'leader', 'worker', 'gateway'] },
  'insecure-no-auth': { env: ['ROSTER_INSECURE_NO_AUTH'], help: 'allow a gateway without auth, or a leader without cluster keys, on a non-loopback address', roles: ['up', 'leader', 'gateway'], boolean: true },
  'max-connections': { env: ['ROSTER_MAX_CONNECTIONS'], help: 'open HTTP and WebSocket connections; default: the open-files limit less 256 (10000 where it cannot be read)', roles: ['up', 'gateway'] },
  'http-connection-timeout-ms': { env: ['ROSTER_HTTP_CONNECTION_TIMEOUT_MS'], help: 'an HTTP connection silent this long (mid-request, or before its first byte) is closed', roles: ['up', 'gateway'], default: String(CONNECTION_TIMEOUT_MS) },
  'http-keep-alive-timeout-ms': { env: ['ROSTER_HTTP_KEEP_ALIVE_TIMEOUT_MS'], help: 'an idle keep-alive connection is closed after this (keep it above your load balancer\'s idle timeout)', roles: ['up', 'gateway'], default: String(KEEP_ALIVE_TIMEOUT_MS) },
  'http-headers-timeout-ms': { env: ['ROSTER_HTTP_HEADERS_TIMEOUT_MS'], help: 'the request line and headers must arrive within this (slowloris)', roles: ['up', 'gateway'], default: String(HEADERS_TIMEOUT_MS) },
  'http-request-timeout-ms': { env: ['ROSTER_HTTP_REQUEST_TIMEOUT_MS'], help: 'a whole request, body included, must arrive within this', roles: ['up', 'gateway'], default: String(REQUEST_TIMEOUT_MS) },
  'max-watchers': { env: ['ROSTER_MAX_WATCHERS'], help: 'WebSocket feed clients; beyond it an upgrade gets 503 ROSTER_ERR_TOO_MANY_WATCHERS', roles: ['up', 'gateway'], default: '50000' },
  'watch-buffer-bytes': { env: ['ROSTER_WATCH_BUFFER_BYTES'], help: 'unsent feed bytes for all clients together; beyond it the slowest client is closed with 4008', roles: ['up', 'gateway'], default: String(256 * 1024 * 1024) },
  'tls-cert': { env: ['ROSTER_TLS_CERT'], help: 'PEM certificate (chain) file: serve HTTPS and WSS (with --tls-key)', roles: ['up', 'gateway'] },
  'tls-key': { env: ['ROSTER_TLS_KEY'], help: 'PEM private key file for --tls-cert', roles: ['up', 'gateway'] },
  'metrics-port': { env: ['ROSTER_METRICS_PORT'], help: 'serve Prometheus metrics at http://--metrics-host:PORT/metrics (roster up and roster gateway serve them at the gateway\'s /metrics); unset: not served', roles: ['leader', 'worker'] },
  'metrics-host': { env: ['ROSTER_METRICS_HOST'], help: 'address for --metrics-port; the listener has no auth, so keep it loopback or reachable only by Prometheus', roles: ['leader', 'worker'], default: '127.0.0.1' },
  'log-level': { env: ['ROSTER_LOG_LEVEL'], help: 'fatal, error, warn, info, debug or silent', roles: ['up', 'leader', 'worker', 'gateway'], default: 'info' },
  'log-format': { env: ['ROSTER_LOG_FORMAT'], help: 'json (one JSON object a line) or pretty (time, level, message, key=value); default: pretty on a terminal, json otherwise', roles: ['up', 'leader', 'worker', 'gateway'] }
}

const ROLES: Record<Role, string> = {
  up: 'all three roles in one process, the gateway on a thread of its own (what `npm start` runs)',
  leader: 'the registry\'s only writer; start several for standbys',
  worker: 'watches providers\' heartbeats; start any number',
  gateway: 'REST, WebSocket feed and OpenAPI; start any number'
}

function usage (role?: Role): string {
  if (role === undefined) {
    const people = peopleCommandRows()
    const running: HelpRow[] = [
      ...Object.entries(ROLES),
      ['token', 'create, list and revoke API tokens (roster token --help)'],
      ['keys generate FILE', 'write new cluster keys for --cluster-keys (mode 0600)']
    ]
    const width = helpWidth(people, running)
    return [
      'Usage: roster <command> [arguments] [flags]', '',
      'The registry (against the gateways at --url, default http://127.0.0.1:7070, or ROSTER_URL):',
      ...helpTable(people, width), '',
      'Running Roster:',
      ...helpTable(running, width),
      '', 'Run `roster <command> --help` for its flags.'
    ].join('\n')
  }
  const rows = Object.entries(FLAGS).filter(([, f]) => f.roles.includes(role)).map(([name, f]) => {
    const def = f.default === undefined ? '' : ` (default ${f.default})`
    return [`--${name}`, `${f.help}${def} [${f.env.join(', ')}]`] as const
  })
  return [
    `Usage: roster ${role} [flags]`, '', ROLES[role], '', 'Flags (environment twin in brackets):',
    ...helpTable([...rows, ['--help', 'show this help']])
  ].join('\n')
}

type Config = Record<keyof typeof FLAGS, string | undefined>

function readConfig (role: Role, argv: string[], env: NodeJS.ProcessEnv): Config {
  const options = Object.fromEntries(Object.entries(FLAGS).map(([k, f]) => [k, { type: f.boolean === true ? 'boolean' as const : 'string' as const }]))
  const { values } = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean' } }, strict: true })
  const config: Record<string, string | undefined> = {}
  for (const [name, f] of Object.entries(FLAGS)) {
    const raw = (values as Record<string, unknown>)[name] as string | boolean | undefined
    if (raw !== undefined && !f.roles.includes(role)) throw new Error(`--${name} does not apply to \`roster ${role}\``)
    // A boolean flag is stored as 'true' or absent, so that every value here is a string.
    const given = raw === true ? 'true' : raw === false ? undefined : raw
    const fromEnv = f.env.map((e) => env[e]).find((v) => v !== undefined && v !== '')
    config[name] = given ?? (f.boolean === true ? (fromEnv === '1' || fromEnv === 'true' ? 'true' : undefined) : fromEnv) ?? f.default
  }
  const port = Number(config.port)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port must be an integer 0–65535, got ${JSON.stringify(config.port)}`)
  for (const name of ['flap-max-changes', 'flap-window-ms', 'flap-hold-ms', 'watchers', 'max-providers-per-service', 'max-providers', 'write-rate', 'max-connections', 'max-watchers', 'watch-buffer-bytes',
    'http-connection-timeout-ms', 'http-keep-alive-timeout-ms', 'http-headers-timeout-ms', 'http-request-timeout-ms']) {
    if (config[name] === undefined) continue
    const n = Number(config[name])
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got ${JSON.stringify(config[name])}`)
  }
  const minCheck = Number(config['min-check-interval-ms'])
  if (!Number.isInteger(minCheck) || minCheck < CHECK_INTERVAL_MIN_MS || minCheck > CHECK_INTERVAL_MAX_MS) {
    throw new Error(`--min-check-interval-ms must be an integer ${CHECK_INTERVAL_MIN_MS}–${CHECK_INTERVAL_MAX_MS}, got ${JSON.stringify(config['min-check-interval-ms'])}`)
  }
  parseAllowTargets(config['allow-targets'])
  if (config['metrics-port'] !== undefined) {
    const metricsPort = Number(config['metrics-port'])
    if (config['metrics-port'].trim() === '' || !Number.isInteger(metricsPort) || metricsPort < 0 || metricsPort > 65535) {
      throw new Error(`--metrics-port must be an integer 0–65535, got ${JSON.stringify(config['metrics-port'])}`)
    }
  }
  if (config.auth !== undefined && config.auth !== 'on' && config.auth !== 'off') throw new Error(`--auth must be on or off, got ${JSON.stringify(config.auth)}`)
  if (config['log-format'] !== undefined && !(LOG_FORMATS as readonly string[]).includes(config['log-format'])) {
    throw new Error(`--log-format must be json or pretty, got ${JSON.stringify(config['log-format'])}`)
  }
  parseTcpEndpoint(config.bind as string, '--bind')
  if (role === 'up' || role === 'leader') {
    const problem = leaderBindProblem(config.bind as string, config['cluster-keys'] !== undefined, config['insecure-no-auth'] === 'true')
    if (problem !== null) throw new Error(problem)
  }
  for (const c of (config.leader as string).split(',')) parseTcpEndpoint(c.trim(), '--leader')
  if ((config['tls-cert'] === undefined) !== (config['tls-key'] === undefined)) {
    throw new Error('--tls-cert and --tls-key go together: give both (HTTPS) or neither (HTTP)')
  }
  return config as Config
}

/** Reads and checks the certificate and key, so that a wrong file is a clear startup error
 *  rather than a TLS failure on the first connection. */
function readTls (certFile: string, keyFile: string): { cert: Buffer, key: Buffer } {
  const read = (flag: string, file: string): Buffer => {
    try {
      return readFileSync(file)
    } catch (err) {
      throw new Error(`${flag} ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
    }
  }
  const tls = { cert: read('--tls-cert', certFile), key: read('--tls-key', keyFile) }
  try {
    createSecureContext(tls)
  } catch (err) {
    // OpenSSL's message names what is wrong (no PEM, wrong type, key does not match), never the key.
    throw new Error(`--tls-cert ${certFile} / --tls-key ${keyFile}: not a usable certificate and key (${(err as Error).message})`)
  }
  return tls
}

async function main (): Promise<void> {
  const [command, ...rest] = process.argv.slice(2)
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    console.log(usage())
    return
  }
  if (command === 'keys') {
    process.exitCode = keysCommand(rest)
    return
  }
  if (isPeopleCommand(command)) {
    process.exitCode = await peopleCommand(command, rest, process.env)
    return
  }
  if (!(command in ROLES) && command !== 'token') {
    console.error(`roster: unknown command ${JSON.stringify(command)}\n\n${usage()}`)
    process.exitCode = 2
    return
  }
  if (command === 'token') {
    process.exitCode = await tokenCommand(rest, process.env)
    return
  }
  const role = command as Role
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(usage(role))
    return
  }
  let config: Config
  let tls: { cert: Buffer, key: Buffer } | undefined
  try {
    config = readConfig(role, rest, process.env)
    if (config['tls-cert'] !== undefined) tls = readTls(config['tls-cert'], config['tls-key'] as string)
  } catch (err) {
    console.error(`roster ${role}: ${(err as Error).message}\n\n${usage(role)}`)
    process.exitCode = 2
    return
  }
  // Auth is off unless asked for, which is allowed only on loopback: a gateway on any other
  // address must be told --auth on, or be told explicitly that it may serve everyone.
  const auth = config.auth === 'on'
  if ((role === 'up' || role === 'gateway') && !auth && !isLoopbackHost(config.host as string) && config['insecure-no-auth'] !== 'true') {
    console.error(`roster ${role}: refusing to serve --host ${config.host as string} without authentication: ` +
      'give --auth on (clients then need a bearer token), or --insecure-no-auth to serve it open anyway')
    process.exitCode = 2
    return
  }
  // Read once, from the environment only (a flag would show in process lists), and removed from
  // it so that nothing this process starts inherits it.
  const bootstrapToken = process.env.ROSTER_BOOTSTRAP_TOKEN
  delete process.env.ROSTER_BOOTSTRAP_TOKEN
  if ((role === 'up' || role === 'leader') && bootstrapToken !== undefined && bootstrapToken !== '' && !BOOTSTRAP_SECRET_RE.test(bootstrapToken)) {
    console.error(`roster ${role}: ROSTER_BOOTSTRAP_TOKEN must be 32–256 printable ASCII characters without spaces ` +
      '(only its SHA-256 is stored, so it must be as hard to guess as a generated secret; e.g. openssl rand -base64 32)')
    process.exitCode = 2
    return
  }
  let clusterKeys: ClusterKeys | undefined
  try {
    clusterKeys = config['cluster-keys'] === undefined ? undefined : loadClusterKeys(config['cluster-keys'])
  } catch (err) {
    console.error(`roster ${role}: ${(err as Error).message}`)
    process.exitCode = 2
    return
  }
  const terminal = terminalDefaults(process.env, process.stdout.isTTY === true)
  const logging = { format: (config['log-format'] as LogFormat | undefined) ?? terminal.format, colour: terminal.colour }
  const log = createLog({ level: config['log-level'], ...logging })
  const stoppers: Stopper[] = []
  let stopping = false
  const shutdown = async (signal: string, exitCode = 0): Promise<void> => {
    if (stopping) {
      // A second signal: the operator will not wait any longer.
      if (signal === 'SIGINT' || signal === 'SIGTERM') process.exit(exitCode)
      return
    }
    stopping = true
    log.info({ signal }, 'shutting down')
    // Whatever state a role is in (a takeover blocked on an unreachable Postgres, a commit that
    // waits for its timeout), the process exits within the deadline: an orchestrator's SIGTERM
    // must never turn into its SIGKILL. The orderly stop fits well inside it (see STOP_DEADLINE_MS).
    setTimeout(() => {
      log.warn({ signal, deadlineMs: STOP_DEADLINE_MS }, 'orderly stop took too long; exiting')
      process.exit(exitCode)
    }, STOP_DEADLINE_MS).unref()
    for (const stop of stoppers.reverse()) {
      await stop().catch((err: unknown) => log.error({ err }, 'error while stopping'))
    }
    process.exit(exitCode)
  }
  process.on('SIGINT', () => { void shutdown('SIGINT') })
  process.on('SIGTERM', () => { void shutdown('SIGTERM') })

  // `roster up`'s own worker and gateway reach its leader over ipc (server/up/local-endpoint.ts);
  // the leader binds that beside --bind, which serves roles on other machines.
  let local: LocalEndpoint | undefined
  if (role === 'up') {
    local = await createLocalEndpoint()
    stoppers.push(local.remove)
  }
  // The main thread's metrics: the process's, then each role's started here (common/metrics.ts).
  const metricsRegistries: Registry[] = role === 'gateway' ? [] : [createProcessRegistry()]
  // Before the roles start, so that a taken port stops the command before anything else runs;
  // each role's registry joins the list as it starts.
  if ((role === 'leader' || role === 'worker') && config['metrics-port'] !== undefined) {
    const metricsAt = `${config['metrics-host'] as string}:${config['metrics-port']}`
    const metrics = await serveMetrics(config['metrics-host'] as string, Number(config['metrics-port']), async () => await renderMetrics(metricsRegistries))
      .catch((err: NodeJS.ErrnoException) => {
        throw new Error(`--metrics-port: cannot listen on ${metricsAt} (${err.code ?? err.message})`)
      })
    stoppers.push(metrics.stop)
    log.info({ metrics: metrics.url }, 'serving metrics')
  }
  const candidates = local !== undefined ? [local.endpoint] : (config.leader as string).split(',').map((c) => c.trim())
  const storage = config['database-url'] !== undefined
    ? `Postgres at ${redact(config['database-url'])}`
    : `embedded Postgres in ${resolve(config['data-dir'] as string)}`
  if (role === 'up' || role === 'leader') {
    const leader = await startLeader({
      databaseUrl: config['database-url'],
      dataDir: resolve(config['data-dir'] as string),
      bind: config.bind as string,
      localBind: local?.endpoint,
      watchers: Number(config.watchers),
      quotas: { maxProvidersPerService: Number(config['max-providers-per-service']), maxProviders: Number(config['max-providers']) },
      bootstrapToken: bootstrapToken === '' ? undefined : bootstrapToken,
      authOff: role === 'up' && !auth,
      clusterKeys,
      flapDamping: {
        maxChanges: Number(config['flap-max-changes']),
        windowMs: Number(config['flap-window-ms']),
        holdMs: Number(config['flap-hold-ms'])
      }
    }, log).catch(async (err: unknown) => {
      // A leader that cannot start (its data directory in use) ends the process without the
      // stoppers: the ipc directory goes now.
      await local?.remove()
      throw err
    })
    stoppers.push(leader)
    metricsRegistries.push(leader.metrics)
    const fatal = leader.fatal.then((err) => {
      console.error(`roster ${role}: ${err.message}`)
      void shutdown('fatal', 1)
    })
    // With the embedded database this process is the only possible leader, so it takes over at
    // once; wait for that before starting the followers, which would otherwise connect to
    // whatever answers on --bind (another Roster, if the bind is taken).
    if (role === 'up' && config['database-url'] === undefined) {
      await Promise.race([leader.leader.whenActive(), fatal])
      if (stopping) return
    }
    log.info({ storage, bind: config.bind, events: pubEndpoint(config.bind as string) }, 'leader started (active once it holds the lock)')
  }
  const gatewayConfig = {
    port: Number(config.port),
    host: config.host as string,
    candidates,
    ...(local !== undefined ? { leaderBind: config.bind as string } : {}),
    auth,
    clusterKeys,
    minCheckIntervalMs: Number(config['min-check-interval-ms']),
    ...(config['write-rate'] === undefined ? {} : { writeRatePerSecond: Number(config['write-rate']) }),
    tls,
    http: {
      ...(config['max-connections'] === undefined ? {} : { maxConnections: Number(config['max-connections']) }),
      connectionTimeoutMs: Number(config['http-connection-timeout-ms']),
      keepAliveTimeoutMs: Number(config['http-keep-alive-timeout-ms']),
      headersTimeoutMs: Number(config['http-headers-timeout-ms']),
      requestTimeoutMs: Number(config['http-request-timeout-ms'])
    },
    maxWatchers: Number(config['max-watchers']),
    watchBufferBytes: Number(config['watch-buffer-bytes'])
  }
  const authLine = auth
    ? 'on: every request but /v1/health, /openapi.json and /asyncapi.json needs Authorization: Bearer <secret>'
    : 'off: anyone who can reach this loopback address can read and write (--auth on to require tokens)'
  const allowTargets = parseAllowTargets(config['allow-targets'])
  if (role === 'up' || role === 'worker') {
    const worker = await startWorker(candidates, log, { allowTargets, clusterKeys })
    stoppers.push(worker)
    metricsRegistries.push(worker.metrics)
  }
  if (role === 'gateway') {
    const gateway = await startGateway({ ...gatewayConfig, allowTargets, metrics: { processMetrics: true } }, log)
    log.info({ auth: auth ? 'on' : 'off' }, `auth ${authLine}`)
    stoppers.push(gateway.stop)
  }
  if (role === 'up') {
    // The gateway on a thread of its own (server/up/threads.ts); if it fails, the whole goes
    // down, as with a fatal leader.
    const gateway = startGatewayThread({ logLevel: config['log-level'] as string, logging, allowTargets: config['allow-targets'], gateway: gatewayConfig }, (message) => {
      console.error(`roster up: ${message}`)
      void shutdown('fatal', 1)
    }, async () => await renderMetrics(metricsRegistries))
    stoppers.push(gateway.stop)
    const url = await gateway.ready
    if (url === null || stopping) return
    const served = {
      rest: `${url}/v1/services`,
      websocket: `${url.replace(/^http/, 'ws')}/v1/watch`,
      openapi: `${url}/openapi.json`,
      leader: config.bind as string,
      events: pubEndpoint(config.bind as string)
    }
    // What it serves is said whatever --log-level is (tests and scripts wait for it): on a
    // terminal as a block of text in line with the log, in JSON as one record of its own.
    if (logging.format === 'pretty') {
      printLines([
        `Roster is up. Storage: ${storage}.`,
        `  REST        ${served.rest}`,
        `  WebSocket   ${served.websocket}`,
        `  OpenAPI     ${served.openapi}`,
        `  leader      ${served.leader} (events on ${served.events})`,
        `  auth        ${authLine}`,
        'Press Ctrl-C to stop.'
      ])
    } else {
      log.child({}, { level: 'info' }).info({ storage, ...served, auth: auth ? 'on' : 'off', authNote: authLine }, `Roster is up. Storage: ${storage}.`)
    }
  }
}

/** 32–256 printable ASCII characters: at 32, even a secret drawn from base64's 64 symbols has 192
 *  bits, beyond brute force of its SHA-256 (server/common/token-secret.ts). */
const BOOTSTRAP_SECRET_RE = /^[\x21-\x7e]{32,256}$/

/** `roster keys generate FILE [--force]`: returns the exit code. */
function keysCommand (argv: string[]): number {
  const help = 'Usage: roster keys generate FILE [--force]\n\n' +
    'Writes a new leader keypair and follower keypair (CurveZMQ, Z85) to FILE, mode 0600. Give the same\n' +
    'file to every role with --cluster-keys FILE. --force replaces an existing FILE.'
  let parsed
  try {
    parsed = parseArgs({ args: argv, options: { force: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true })
  } catch (err) {
    console.error(`roster keys: ${(err as Error).message}\n\n${help}`)
    return 2
  }
  const [sub, file, ...extra] = parsed.positionals
  if (parsed.values.help === true) {
    console.log(help)
    return 0
  }
  if (sub !== 'generate' || file === undefined || extra.length > 0) {
    console.error(`roster keys: expected \`generate FILE\`\n\n${help}`)
    return 2
  }
  try {
    const keys = writeClusterKeys(file, { force: parsed.values.force === true })
    console.log(`Wrote cluster keys to ${resolve(file)} (mode 0600; leader public key ${keys.leader.publicKey}).\n` +
      `Start every role with --cluster-keys ${file} (or ROSTER_CLUSTER_KEYS=${file}).`)
    return 0
  } catch (err) {
    console.error(`roster keys: ${(err as Error).message}`)
    return (err as { code?: string }).code === 'ROSTER_ERR_CLUSTER_KEYS' ? 2 : 1
  }
}

function redact (url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@')
}

main().catch((err: unknown) => {
  const e = err as Error & { code?: string }
  console.error(`roster: ${e.code === undefined ? '' : `${e.code}: `}${e.message}`)
  process.exit(1)
})
