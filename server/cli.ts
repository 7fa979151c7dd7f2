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
import { isLoopbackHost, pubEndpoint } from './protocol/endpoints.js'
import { parseAllowTargets } from './protocol/targets.js'
import { Errors } from './protocol/error-codes.js'
import { loadClusterKeys, writeClusterKeys, type ClusterKeys } from './protocol/cluster-keys.js'
import { createLog, printLines, terminalDefaults } from './common/log.js'
import { ENVIRONMENT_ONLY, flagHelpRows, parseConfig, type Config, type Role } from './cli/config.js'
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

/** How long an orderly stop may take before the process exits anyway. The parts, in order: the
 *  gateway gives WebSocket clients up to 1 s to answer their 1001 close, the worker's BYE lingers
 *  0.1 s, the leader unlocks and ends its lock session within 1 s. */
const STOP_DEADLINE_MS = 3000

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
  return [
    `Usage: roster ${role} [flags]`, '', ROLES[role], '', 'Flags (environment twin in brackets):',
    ...helpTable([...flagHelpRows(role), ['--help', 'show this help']])
  ].join('\n')
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
    config = parseConfig(role, rest, process.env)
    const { 'tls-cert': certFile, 'tls-key': keyFile } = config
    if (certFile !== undefined && keyFile !== undefined) tls = readTls(certFile, keyFile)
  } catch (err) {
    console.error(`roster ${role}: ${(err as Error).message}\n\n${usage(role)}`)
    process.exitCode = 2
    return
  }
  // Auth is off unless asked for, which is allowed only on loopback: a gateway on any other
  // address must be told --auth on, or be told explicitly that it may serve everyone.
  const auth = config.auth === 'on'
  if ((role === 'up' || role === 'gateway') && !auth && !isLoopbackHost(config.host) && !config['insecure-no-auth']) {
    console.error(`roster ${role}: refusing to serve --host ${config.host} without authentication: ` +
      'give --auth on (clients then need a bearer token), or --insecure-no-auth to serve it open anyway')
    process.exitCode = 2
    return
  }
  // Read once, from the environment only (a flag would show in process lists), and removed from
  // it so that nothing this process starts inherits it.
  const bootstrapToken = process.env.ROSTER_BOOTSTRAP_TOKEN
  delete process.env.ROSTER_BOOTSTRAP_TOKEN
  if (ENVIRONMENT_ONLY.ROSTER_BOOTSTRAP_TOKEN?.roles.includes(role) === true && bootstrapToken !== undefined && bootstrapToken !== '' && !BOOTSTRAP_SECRET_RE.test(bootstrapToken)) {
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
  const logging = { format: config['log-format'] ?? terminal.format, colour: terminal.colour }
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
    const metricsAt = `${config['metrics-host']}:${config['metrics-port']}`
    const metrics = await serveMetrics(config['metrics-host'], config['metrics-port'], async () => await renderMetrics(metricsRegistries))
      .catch((err: NodeJS.ErrnoException) => {
        throw new Error(`--metrics-port: cannot listen on ${metricsAt} (${err.code ?? err.message})`)
      })
    stoppers.push(metrics.stop)
    log.info({ metrics: metrics.url }, 'serving metrics')
  }
  const candidates = local !== undefined ? [local.endpoint] : config.leader.split(',').map((c) => c.trim())
  const storage = config['database-url'] !== undefined
    ? `Postgres at ${redact(config['database-url'])}`
    : `embedded Postgres in ${resolve(config['data-dir'])}`
  if (role === 'up' || role === 'leader') {
    const leader = await startLeader({
      databaseUrl: config['database-url'],
      dataDir: resolve(config['data-dir']),
      bind: config.bind,
      localBind: local?.endpoint,
      watchers: config.watchers,
      quotas: { maxProvidersPerService: config['max-providers-per-service'], maxProviders: config['max-providers'] },
      bootstrapToken: bootstrapToken === '' ? undefined : bootstrapToken,
      authOff: role === 'up' && !auth,
      clusterKeys,
      flapDamping: {
        maxChanges: config['flap-max-changes'],
        windowMs: config['flap-window-ms'],
        holdMs: config['flap-hold-ms']
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
    log.info({ storage, bind: config.bind, events: pubEndpoint(config.bind) }, 'leader started (active once it holds the lock)')
  }
  const gatewayConfig = {
    port: config.port,
    host: config.host,
    candidates,
    ...(local !== undefined ? { leaderBind: config.bind } : {}),
    auth,
    clusterKeys,
    minCheckIntervalMs: config['min-check-interval-ms'],
    ...(config['write-rate'] === undefined ? {} : { writeRatePerSecond: config['write-rate'] }),
    tls,
    http: {
      ...(config['max-connections'] === undefined ? {} : { maxConnections: config['max-connections'] }),
      connectionTimeoutMs: config['http-connection-timeout-ms'],
      keepAliveTimeoutMs: config['http-keep-alive-timeout-ms'],
      headersTimeoutMs: config['http-headers-timeout-ms'],
      requestTimeoutMs: config['http-request-timeout-ms']
    },
    maxWatchers: config['max-watchers'],
    watchBufferBytes: config['watch-buffer-bytes']
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
    const gateway = startGatewayThread({ logLevel: config['log-level'], logging, allowTargets: config['allow-targets'], gateway: gatewayConfig }, (message) => {
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
      leader: config.bind,
      events: pubEndpoint(config.bind)
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
    return (err as { code?: string }).code === Errors.clusterKeys.code ? 2 : 1
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
