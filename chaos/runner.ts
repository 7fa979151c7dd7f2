// One chaos run, callable from the CLI (chaos/run.ts) and from test/e2e/chaos.test.ts: a fresh
// database, the cluster, the workload, N rounds of faults, then the checks. It owns everything it
// starts through one Scope (bench/lib/processes.ts): processes, the database and temp
// directories are gone when it returns, throws or is aborted. It prints progress through
// `print` and returns the report; it never exits the process.
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { compileScripts, now } from '../bench/lib/children.js'
import { createScope, sleep, survivors, withTimeout } from '../bench/lib/processes.js'
import { adminQuery, databaseUrl, quoteIdent } from '../harness/postgres-admin.js'
import { freeLeaderBind } from '../harness/ports.js'
import {
  checkAcknowledged, checkPresence, checkTransitions, checkWatcher, firstAckSentAfter, longestGap,
  type Ack, type CheckResult, type Gap, type LogRow, type StoredRow
} from './checks.js'
import { createCluster, type Member } from './cluster.js'
import { createPrng } from './prng.js'
import { startEmitterFleet, startWatcher, startWriter, type Watcher } from './workload.js'

export interface ChaosOptions {
  rounds: number
  roundMs: number
  seed: number
  /** A server Postgres the run may create a database on (and drop it). */
  adminUrl: string
  writers: number
  emitters: number
  heartbeatIntervalMs: number
  /** Writers pause this long between writes. */
  writePauseMs: number
  /** Bound on the cluster becoming whole again after a fault (restarts through tsx take
   *  1–3 s, several times that on a loaded machine). */
  recoverMs: number
  /** Bound on provider states and watchers catching up at the end. */
  settleMs: number
  /** Keep the per-run log directory even when every check passes. */
  keepLogs: boolean
  print: (line: string) => void
}

export const DEFAULT_OPTIONS: Omit<ChaosOptions, 'seed' | 'adminUrl' | 'print'> = {
  rounds: 50,
  roundMs: 3000,
  writers: 3,
  emitters: 6,
  // Silence is three intervals. At 200 ms (600 ms), a provider process starved of CPU for
  // 0.6 s on a two-core machine at load 20 (the other engineers' benchmarks) was reported down
  // and up again — true silence, but no fault of Roster's; 500 ms (1.5 s) stays clear of that.
  heartbeatIntervalMs: 500,
  writePauseMs: 40,
  recoverMs: 60_000,
  settleMs: 15_000,
  keepLogs: false
}

export interface Fault {
  round: number
  victim: string
  signal: 'SIGKILL' | 'SIGSTOP'
  /** The victim held the leader lock. */
  activeLeader: boolean
  at: number
  /** SIGKILL: restarted after; SIGSTOP: SIGCONT after (ms from `at`). */
  healedAfterMs: number
  healedAt: number
  churn: string
  /** From `at` to the cluster being whole again (null: not within recoverMs). */
  wholeAfterMs: number | null
}

export interface ChaosReport {
  ok: boolean
  seed: number
  checks: CheckResult[]
  faults: Fault[]
  longestOutage: Gap & { round: number | null }
  /** Active leader SIGKILLed: from the kill to the next acknowledged write. */
  leaderKillFailoverMs: number[]
  /** Active leader SIGSTOPped: from the stop to the next acknowledged write (includes the stop). */
  leaderStopOutageMs: number[]
  /** The same, from its SIGCONT to the next acknowledged write. */
  leaderContResumeMs: number[]
  watcherResumeMs: number[]
  writes: { acked: number, total: number }
  loadavg: number[]
  durationMs: number
  logDir: string
  /** Pids of processes this run started that still exist after it (should be none). */
  leftover: number[]
}

/** Recovery beyond this is reported as it happens (restarts take 1–3 s, more under load). */
const SLOW_RECOVERY_MS = 8000

/** Pg returns bigint as a string. */
const num = (v: unknown): number => Number(v)

/** Throws a RangeError naming the flag when the options cannot make a meaningful run. */
export function validateOptions (opts: ChaosOptions): void {
  // The transitions check needs each emitter change judged before the next change of the same
  // provider (a round later at the earliest): silence takes 3 intervals to be reported.
  if (opts.roundMs < 4 * opts.heartbeatIntervalMs) {
    throw new RangeError(`--round-ms (${opts.roundMs}) must be at least 4 × --heartbeat-interval-ms (${4 * opts.heartbeatIntervalMs}), so that a silenced provider is reported down before it can change again`)
  }
}

export async function runChaos (opts: ChaosOptions, signal?: AbortSignal): Promise<ChaosReport> {
  validateOptions(opts)
  const started = now()
  const print = opts.print
  const rng = createPrng(opts.seed)
  const scope = createScope()
  const onAbort = (): void => { void scope.close() }
  signal?.addEventListener('abort', onAbort, { once: true })
  const aborted = (): void => { if (signal?.aborted === true) throw new Error('chaos run aborted') }
  const logDir = await mkdtemp(join(tmpdir(), 'roster-chaos-logs-'))
  let keepLogs = opts.keepLogs
  // What the run did and when (wall clock, like the processes' logs and Postgres' created_at),
  // written to the log directory when a check fails.
  const timeline: string[] = []
  const note = (what: string): void => { timeline.push(`${new Date().toISOString()} ${what}`) }
  scope.defer('remove the log directory', async () => { if (!keepLogs) await rm(logDir, { recursive: true, force: true }) })
  try {
    print(`chaos: seed ${opts.seed} (replay with --seed ${opts.seed}), ${opts.rounds} rounds of ${opts.roundMs} ms, logs in ${logDir}`)

    const name = `roster_chaos_${process.pid}_${Date.now().toString(36)}`
    await adminQuery(opts.adminUrl, `create database ${quoteIdent(name)}`)
    scope.defer(`drop database ${name}`, async () => { await adminQuery(opts.adminUrl, `drop database if exists ${quoteIdent(name)} with (force)`) })
    const dbUrl = databaseUrl(opts.adminUrl, name)
    const scriptsDir = await mkdtemp(join(tmpdir(), 'roster-chaos-scripts-'))
    scope.defer('remove the emitter scripts', async () => { await rm(scriptsDir, { recursive: true, force: true }) })
    const scripts = await compileScripts(scriptsDir)

    const binds = [await freeLeaderBind()]
    for (;;) {
      const b = await freeLeaderBind()
      const [p0, p1] = [binds[0], b].map((e) => Number((e as string).split(':').at(-1)))
      if (Math.abs((p0 as number) - (p1 as number)) > 1) { binds.push(b); break }
    }
    const cluster = createCluster({
      databaseUrl: dbUrl,
      logDir,
      leaders: 2,
      workers: 3,
      gateways: 2,
      binds,
      // Flap damping holds a provider that changes state often down on purpose; the emitters
      // here change far more often than a real provider, and the run checks presence against
      // its emitter, so damping is set out of reach.
      leaderFlags: ['--flap-max-changes', '100000']
    })
    scope.defer('stop the Roster processes', cluster.close)
    await cluster.start()
    const waitWhole = async (what: string): Promise<number | null> => {
      const t0 = now()
      let reason = ''
      let said = ''
      while (now() - t0 < opts.recoverMs) {
        aborted()
        const w = await cluster.whole()
        if (w.ok) return now() - t0
        reason = w.reason
        // A slow recovery says what it is waiting for (once per reason), so that a long one can
        // be told apart from a loaded machine without the logs.
        if (what !== 'start' && now() - t0 > SLOW_RECOVERY_MS && reason !== said) {
          said = reason
          note(`${what}: not whole after ${Math.round(now() - t0)} ms: ${reason}`)
          print(`chaos: ${what}: not whole after ${Math.round(now() - t0)} ms: ${reason}`)
        }
        await sleep(100)
      }
      print(`chaos: ${what}: the cluster was not whole within ${opts.recoverMs} ms (${reason})`)
      return null
    }
    if (await waitWhole('start') === null) throw new Error(`the cluster did not start; logs in ${logDir}`)
    print(`chaos: cluster up in ${Math.round(now() - started)} ms: ${cluster.members.map((m) => `${m.name}=${String(m.child?.pid)}`).join(' ')}`)

    const gateways = cluster.gatewayUrls
    const fleet = await startEmitterFleet({ count: opts.emitters, scripts, intervalMs: opts.heartbeatIntervalMs, rng: rng.fork(), gateways })
    scope.defer('stop the emitters', fleet.close)
    const probe = new pg.Client({ connectionString: dbUrl, application_name: 'roster-chaos-check' })
    // Without a listener a dropped session would crash the run; its next query fails instead.
    probe.on('error', (err) => { print(`chaos: the check session failed: ${err.message}`) })
    await probe.connect()
    scope.defer('close the check session', async () => { await probe.end() })
    const readStored = async (): Promise<Map<string, StoredRow>> => {
      const { rows } = await probe.query<{ id: string, service: string, state: string, seq: string | null }>(
        "select id, service, state, meta->>'seq' as seq from providers")
      return new Map(rows.map((r) => [r.id, r]))
    }
    // A provider that dies before its first heartbeat was seen is rightly still `pending`; the
    // churn starts from providers Roster has seen up, so that dead means down.
    const upFrom = now()
    while (!checkPresence(fleet.expected(), await readStored()).ok) {
      if (now() - upFrom > opts.recoverMs) throw new Error(`the emitters' providers were not all up within ${opts.recoverMs} ms`)
      await sleep(50)
    }

    const watchers: Watcher[] = []
    scope.defer('close the watchers', () => { for (const w of watchers) w.stop() })
    const watcherSpecs: Array<[string, string[] | null, number]> = [
      ['all@gw0', null, 0], ['all@gw1', null, 1], [`${fleet.service}@gw0`, [fleet.service], 0], ['chaos-w0@gw1', ['chaos-w0'], 1]
    ]
    for (const [wname, services, first] of watcherSpecs) {
      watchers.push(await withTimeout(startWatcher(wname, services, first, gateways), opts.recoverMs, () => `watcher ${wname} got no snapshot`))
    }

    const acks: Ack[] = []
    const writers = Array.from({ length: opts.writers }, (_, i) =>
      startWriter(i, { gateways, rng: rng.fork(), pauseMs: opts.writePauseMs, onAck: (a) => acks.push(a) }))
    let writersStopped = false
    const stopWriters = async (): Promise<void> => { if (!writersStopped) { writersStopped = true; await Promise.all(writers.map(async (w) => { await w.stop() })) } }
    scope.defer('stop the writers', stopWriters)
    const writesFrom = now()

    const faults: Fault[] = []
    for (let round = 1; round <= opts.rounds; round++) {
      aborted()
      const roundStart = now()
      const churn = await fleet.churn()
      note(`round ${round}: emitter ${churn}`)
      const victim: Member = rng.pick(cluster.members)
      const sig = rng.chance(0.5) ? 'SIGKILL' as const : 'SIGSTOP' as const
      const healAfter = Math.round(opts.roundMs * (sig === 'SIGKILL' ? 0.1 + rng.next() * 0.3 : 0.15 + rng.next() * 0.35))
      const activePid = await cluster.activeLeaderPid()
      const activeLeader = victim.role === 'leader' && victim.child?.pid === activePid
      const at = now()
      await cluster.signal(victim, sig)
      note(`round ${round}: ${sig} ${victim.name} (pid ${String(victim.child?.pid)})${activeLeader ? ' active leader' : ''}`)
      await sleep(Math.max(0, at + healAfter - now()))
      if (sig === 'SIGKILL') cluster.restart(victim)
      else await cluster.signal(victim, 'SIGCONT')
      note(`round ${round}: ${sig === 'SIGKILL' ? 'restarted' : 'SIGCONT'} ${victim.name} (pid ${String(victim.child?.pid)})`)
      const healedAt = now()
      const healedAfterMs = Math.round(healedAt - at)
      await sleep(Math.max(0, roundStart + opts.roundMs - now()))
      const whole = await waitWhole(`round ${round}`)
      const wholeAfterMs = whole === null ? null : Math.round(now() - at)
      faults.push({ round, victim: victim.name, signal: sig, activeLeader, at, healedAfterMs, healedAt, churn, wholeAfterMs })
      print(`round ${round}/${opts.rounds}: ${sig} ${victim.name}${activeLeader ? ' (active leader)' : ''}, ${sig === 'SIGKILL' ? 'restarted' : 'SIGCONT'} after ${healedAfterMs} ms, whole again after ${wholeAfterMs ?? 'NEVER'} ms; emitter: ${churn}`)
      if (whole === null) break
    }

    // The end: every process runs (the last round left it whole, or it never will be), the
    // writers stop, provider states settle, and the watchers catch up with the log.
    await stopWriters()
    const writesTo = now()
    const expected = fleet.expected()
    const settleFrom = now()
    let stored = await readStored()
    while (now() - settleFrom < opts.settleMs && !checkPresence(expected, stored).ok) {
      await sleep(100)
      stored = await readStored()
    }
    const { rows: logRows } = await probe.query<{ revision: string, event: string, provider_id: string, service: string, state: string, seq: string | null }>(`
      select revision, event, provider_id, service, provider->>'state' as state, provider->'meta'->>'seq' as seq
        from changes order by revision`)
    const log: LogRow[] = logRows.map((r) => ({ revision: num(r.revision), event: r.event, providerId: r.provider_id, service: r.service, state: r.state, seq: r.seq }))
    const head = log.at(-1)?.revision ?? 0
    const catchUpFrom = now()
    for (const w of watchers) {
      const services = w.record().services
      const target = log.filter((r) => services === null || services.includes(r.service)).at(-1)?.revision ?? 0
      while (w.lastRevision < target && now() - catchUpFrom < opts.settleMs) await sleep(50)
    }
    for (const w of watchers) w.stop()

    const writeRecords = writers.flatMap((w) => w.records)
    const checks: CheckResult[] = [
      {
        name: 'the cluster became whole after every fault',
        ok: faults.length === opts.rounds && faults.every((f) => f.wholeAfterMs !== null),
        findings: faults.filter((f) => f.wholeAfterMs === null).map((f) => `round ${f.round} (${f.signal} ${f.victim}): not whole within ${opts.recoverMs} ms`),
        summary: `${faults.length} of ${opts.rounds} rounds run`
      },
      checkAcknowledged(writeRecords, log, stored),
      ...watchers.map((w) => checkWatcher(w.record(), log, head)),
      checkPresence(expected, stored),
      checkTransitions(fleet.transitions(), log)
    ]

    // The outage as the brief defines it: no PUT succeeded (DELETEs are a tenth of the writes).
    const gap = longestGap(acks.filter((a) => a.op === 'put').map((a) => a.at), writesFrom, writesTo)
    const gapRound = [...faults].reverse().find((f) => f.at <= gap.to)?.round ?? null
    const ackAfter = (t: number): number => { const a = firstAckSentAfter(acks, t); return a === null ? Number.POSITIVE_INFINITY : Math.round(a - t) }
    const afterAck = (f: Fault): number => ackAfter(f.at)
    const report: ChaosReport = {
      ok: checks.every((c) => c.ok),
      seed: opts.seed,
      checks,
      faults,
      longestOutage: { ...gap, round: gapRound },
      leaderKillFailoverMs: faults.filter((f) => f.activeLeader && f.signal === 'SIGKILL').map(afterAck),
      leaderStopOutageMs: faults.filter((f) => f.activeLeader && f.signal === 'SIGSTOP').map(afterAck),
      leaderContResumeMs: faults.filter((f) => f.activeLeader && f.signal === 'SIGSTOP').map((f) => ackAfter(f.healedAt)),
      watcherResumeMs: watchers.flatMap((w) => w.resumes.map((r) => Math.round(r.ms))),
      writes: { acked: writeRecords.filter((w) => w.outcome === 'acked').length, total: writeRecords.length },
      loadavg: loadavg(),
      durationMs: 0,
      logDir,
      leftover: []
    }
    keepLogs ||= !report.ok
    if (!report.ok) {
      const { rows } = await probe.query<{ revision: string, created_at: Date, event: string, provider_id: string, state: string, reason: string | null, detected: string | null }>(`
        select revision, created_at, event, provider_id, provider->>'state' as state, provider->>'reason' as reason,
               provider->>'detectedAfterMs' as detected
          from changes where service = $1 order by revision`, [fleet.service])
      await writeFile(join(logDir, 'chaos-timeline.log'), timeline.join('\n') + '\n')
      await writeFile(join(logDir, 'chaos-emit-changes.log'), rows.map((r) =>
        `${r.created_at.toISOString()} rev ${r.revision} ${r.event} ${r.provider_id} ${r.state} ${r.reason ?? ''} ${r.detected === null ? '' : `detectedAfterMs=${r.detected}`}`).join('\n') + '\n')
    }
    await scope.close()
    report.leftover = survivors()
    if (report.leftover.length > 0) {
      report.ok = false
      report.checks.push({ name: 'every process the run started is gone', ok: false, findings: [`still running: ${report.leftover.join(', ')}`], summary: '' })
    }
    report.durationMs = Math.round(now() - started)
    return report
  } catch (err) {
    keepLogs = true
    throw new Error(`${(err as Error).message} (Roster logs kept in ${logDir})`, { cause: err })
  } finally {
    signal?.removeEventListener('abort', onAbort)
    await scope.close()
  }
}

/** The report as the lines run.ts prints. */
export function formatReport (r: ChaosReport): string[] {
  const stat = (xs: number[]): string => xs.length === 0
    ? 'none observed'
    : `n=${xs.length} min ${Math.min(...xs)} ms, median ${[...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number} ms, max ${Math.max(...xs)} ms`
  const lines = ['', `chaos summary (seed ${r.seed}, ${r.faults.length} rounds, ${(r.durationMs / 1000).toFixed(1)} s)`]
  for (const c of r.checks) {
    lines.push(`  ${c.ok ? 'PASS' : 'FAIL'}  ${c.name}${c.summary === '' ? '' : ` — ${c.summary}`}`)
    for (const f of c.findings) lines.push(`          ${f}`)
  }
  const kills = r.faults.filter((f) => f.signal === 'SIGKILL').length
  lines.push(
    `  faults: ${kills} SIGKILL, ${r.faults.length - kills} SIGSTOP; by role: ${['leader', 'worker', 'gateway'].map((role) => `${role} ${r.faults.filter((f) => f.victim.startsWith(role)).length}`).join(', ')}`,
    `  writes: ${r.writes.acked} acknowledged of ${r.writes.total}`,
    `  longest write outage (no PUT acknowledged): ${Math.round(r.longestOutage.ms)} ms${r.longestOutage.round === null ? '' : ` (after the fault of round ${r.longestOutage.round})`}`,
    `  failover, active leader SIGKILLed → next acknowledged write: ${stat(r.leaderKillFailoverMs)}`,
    `  active leader SIGSTOPped → next acknowledged write (includes the stop): ${stat(r.leaderStopOutageMs)}`,
    `  active leader SIGCONTed → next acknowledged write: ${stat(r.leaderContResumeMs)}`,
    `  watcher resumes on the other gateway (loss noticed → resumed there): ${stat(r.watcherResumeMs)}`,
    `  load average at the end: ${r.loadavg.map((x) => x.toFixed(2)).join(' ')}`,
    `  result: ${r.ok ? 'PASS' : `FAIL — Roster logs kept in ${r.logDir}`}`
  )
  return lines
}

/** The database URL used when the run is given none. */
export const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/postgres'
