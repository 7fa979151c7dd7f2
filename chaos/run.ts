// `npm run chaos`: kills and freezes Roster processes at random while clients use them, then
// checks that nothing acknowledged was lost, every watcher saw the change log exactly, and every
// provider's state matches its emitter. Prints the seed first (replay with --seed) and the
// summary last; exits 1 if a check fails, 2 on bad flags. Ctrl-C stops every process it started.
import { parseArgs } from 'node:util'
import { randomSeed } from './prng.js'
import { DEFAULT_DATABASE_URL, DEFAULT_OPTIONS, formatReport, runChaos, validateOptions, type ChaosOptions } from './runner.js'

const FLAGS = {
  rounds: 'faults to inject, one per round',
  'round-ms': 'length of a round',
  seed: 'PRNG seed (default: random, printed)',
  writers: 'concurrent writers',
  emitters: 'heartbeat providers (one emitter process each)',
  'heartbeat-interval-ms': 'the providers\' heartbeat interval',
  'write-pause-ms': 'pause between one writer\'s writes',
  'recover-ms': 'bound on the cluster becoming whole after a fault',
  'settle-ms': 'bound on states and watchers settling at the end'
} as const

function usage (): string {
  return [
    'Usage: npm run chaos -- [flags]', '',
    'Runs 2 leaders, 3 workers and 2 gateways on a fresh server-Postgres database (created and',
    'dropped; server from ROSTER_CHAOS_DATABASE_URL or DATABASE_URL, default',
    `${DEFAULT_DATABASE_URL}) and SIGKILLs or SIGSTOPs one at random each round.`, '',
    'Flags:',
    ...Object.entries(FLAGS).map(([name, help]) => {
      const def = (DEFAULT_OPTIONS as unknown as Record<string, unknown>)[name.replace(/-(\w)/g, (_, c: string) => c.toUpperCase())]
      return `  --${name.padEnd(22)} ${help}${def === undefined ? '' : ` (default ${String(def)})`}`
    }),
    '  --keep-logs              keep the per-run log directory even when every check passes',
    '  --help'
  ].join('\n')
}

function readOptions (argv: string[]): ChaosOptions | null {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...Object.fromEntries(Object.keys(FLAGS).map((k) => [k, { type: 'string' as const }])),
      'keep-logs': { type: 'boolean' },
      help: { type: 'boolean' }
    },
    strict: true
  })
  if (values.help === true) return null
  const int = (name: keyof typeof FLAGS, fallback: number, min: number): number => {
    const given = (values as Record<string, unknown>)[name] as string | undefined
    if (given === undefined) return fallback
    const n = Number(given)
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer ≥ ${min}, got ${JSON.stringify(given)}`)
    return n
  }
  const env = process.env
  return {
    ...DEFAULT_OPTIONS,
    rounds: int('rounds', DEFAULT_OPTIONS.rounds, 1),
    roundMs: int('round-ms', DEFAULT_OPTIONS.roundMs, 500),
    seed: int('seed', randomSeed(), 0),
    writers: int('writers', DEFAULT_OPTIONS.writers, 1),
    emitters: int('emitters', DEFAULT_OPTIONS.emitters, 1),
    heartbeatIntervalMs: int('heartbeat-interval-ms', DEFAULT_OPTIONS.heartbeatIntervalMs, 50),
    writePauseMs: int('write-pause-ms', DEFAULT_OPTIONS.writePauseMs, 0),
    recoverMs: int('recover-ms', DEFAULT_OPTIONS.recoverMs, 1000),
    settleMs: int('settle-ms', DEFAULT_OPTIONS.settleMs, 1000),
    keepLogs: values['keep-logs'] === true,
    adminUrl: [env.ROSTER_CHAOS_DATABASE_URL, env.DATABASE_URL].find((u) => u !== undefined && u !== '') ?? DEFAULT_DATABASE_URL,
    print: (line) => { console.log(line) }
  }
}

let opts: ChaosOptions | null
try {
  opts = readOptions(process.argv.slice(2))
  if (opts !== null) validateOptions(opts)
} catch (err) {
  console.error(`chaos: ${(err as Error).message}\n\n${usage()}`)
  process.exit(2)
}
if (opts === null) {
  console.log(usage())
  process.exit(0)
}

const abort = new AbortController()
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    console.error(`chaos: ${sig}: stopping every process this run started`)
    abort.abort()
  })
}
try {
  const report = await runChaos(opts, abort.signal)
  for (const line of formatReport(report)) console.log(line)
  process.exitCode = report.ok ? 0 : 1
} catch (err) {
  console.error(`chaos: ${(err as Error).message}`)
  process.exitCode = abort.signal.aborted ? 130 : 1
}
