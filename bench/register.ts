// The `register` benchmark: `PUT /v1/services/{service}/providers/{id}` through the gateway at a
// few concurrency levels (default 1, 16, 64 keep-alive connections), against a raw `pg` loop doing
// the same row writes, one transaction each, at the same concurrency on the same database.
//
// Roster runs as `roster leader` + `roster gateway` on a fresh server-Postgres database (no worker:
// registering does not involve one). The reference writes to `ref_providers` / `ref_changes`,
// created in that database `like` Roster's tables (same columns, indexes and constraints), so it
// neither disturbs Roster's registry nor gets cheaper tables. Both are driven by one generator
// process (bench/load-client.ts); their runs are interleaved, alternating which goes first, so
// that both see the same machine. Each client cycles through `--slots` provider ids: inserts
// first, then updates that each change the row, so that every operation is a real write.
import { adminQuery } from '../test/helpers/postgres-admin.js'
import { cpuSplit, type CpuSplit } from './lib/cpu-split.js'
import { intFlag } from './lib/flags.js'
import { interleaved, LOAD_FLAGS, levelFigure, loadParams, spawnLoadClient, tempDir, type LevelFigure, type LoadReport, type LoadSpec, type Side } from './lib/load.js'
import { startRoster } from './lib/roster.js'
import { fmt, ratio, summarize, type Table } from './lib/stats.js'
import type { Benchmark, BenchOutput } from './lib/types.js'

const SERVICE = 'bench'
/** issue 5: ZooKeeper's ephemeral creates at 64 clients on this machine, and the first milestone. */
const ZOOKEEPER_PER_SEC = 11_800
const MILESTONE_PER_SEC = 4_000
/** Connections left free on the Postgres server for everyone else (others share it). */
const SPARE_PG_CONNECTIONS = 20

const FLAGS = {
  ...LOAD_FLAGS,
  slots: { default: '100', help: 'provider ids each connection cycles through' },
  curve: { default: '0', help: '1: every role gets --cluster-keys (CurveZMQ between the roles)' }
}

const BODY = '{"host":"127.0.0.1","port":{port},"protocol":"http","heartbeat":"tcp://127.0.0.1:{port}",' +
  '"heartbeatIntervalMs":1000,"tags":["bench"],"meta":{"conn":"{conn}","run":"{tag}"}}'

interface RunRecord {
  level: number, run: number, side: Side, connections: number, report: LoadReport, cpu: CpuSplit
  /** Roster: changes ÷ transactions over the whole run (warm-up included); the reference: 1. */
  writesPerCommit: number
}

async function headRevision (url: string): Promise<number> {
  const [row] = await adminQuery<{ revision: number }>(url, 'select revision::float8 as revision from roster_meta where id = 1')
  if (row === undefined) throw new Error('roster_meta has no row')
  return row.revision
}

/** The leader's batching, read back from the change log: every row of one commit carries the
 *  same created_at (now() is the transaction's start time), so distinct values count commits. */
async function writesPerCommit (url: string, since: number): Promise<number> {
  const [row] = await adminQuery<{ changes: number, commits: number }>(url,
    'select count(*)::float8 as changes, count(distinct created_at)::float8 as commits from changes where revision > $1', [since])
  return row === undefined || row.commits === 0 ? NaN : row.changes / row.commits
}

export const register: Benchmark = {
  name: 'register',
  description: 'PUT a provider through the gateway (leader + gateway on server Postgres), against a raw pg loop doing the same row writes',
  flags: FLAGS,
  timeoutMs: 300_000,
  async run (ctx): Promise<BenchOutput> {
    const { scope, log, flags } = ctx
    const p = loadParams(flags)
    const { levels, runs, warmupMs, durationMs } = p
    const slots = intFlag(flags, FLAGS, 'slots', 1, 10_000)

    const tmp = await tempDir(scope)
    const curve = intFlag(flags, FLAGS, 'curve', 0, 1) === 1
    const [roster, load] = await Promise.all([startRoster(scope, tmp, ['leader', 'gateway'], [], undefined, { clusterKeys: curve }), spawnLoadClient(tmp)])
    const databaseUrl = roster.databaseUrl
    if (databaseUrl === null) {
      throw new Error('register needs server Postgres for Roster and its raw-pg reference: set ROSTER_BENCH_DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/postgres)')
    }
    await adminQuery(databaseUrl, 'create table ref_providers (like providers including all); create table ref_changes (like changes including all)')
    const [{ free }] = await adminQuery<{ free: number }>(databaseUrl,
      "select current_setting('max_connections')::int - (select count(*) from pg_stat_activity)::int as free") as [{ free: number }]
    log(`Roster up (${roster.storage}); ${free} Postgres connections free before the reference`)
    const port = Number(new URL(roster.url).port)
    const pids = { gateway: roster.pid('gateway'), leader: roster.pid('leader'), generator: load.pid }

    const records: RunRecord[] = []
    await interleaved(p, async (c, li, r, side) => {
      // The reference takes one connection per client; it never takes the server's last ones.
      const refConnections = Math.max(1, Math.min(c, free - SPARE_PG_CONNECTIONS))
      const common = { connections: c, warmupMs, durationMs, slots, tag: `l${li}r${r}` }
      const spec: LoadSpec = side === 'roster'
        ? { ...common, target: 'http', port, method: 'PUT', path: `/v1/services/${SERVICE}/providers/c{conn}-{slot}`, body: BODY }
        : { ...common, connections: refConnections, target: 'pg', databaseUrl, providers: 'ref_providers', changes: 'ref_changes', service: SERVICE }
      const since = side === 'roster' ? await headRevision(databaseUrl) : 0
      const [report, cpu] = await Promise.all([
        load.run(spec, side === 'roster' ? [200, 201] : [200]),
        cpuSplit(side === 'roster' ? pids : { generator: load.pid }, databaseUrl, warmupMs, durationMs)
      ])
      const perCommit = side === 'roster' ? await writesPerCommit(databaseUrl, since) : 1
      if (r < 0) { log(`warm-up at ${c} connections, ${side}: ${report.opsPerSec}/s (not counted)`); return }
      records.push({ level: c, run: r, side, connections: spec.connections, report, cpu, writesPerCommit: perCommit })
      log(`${c} connections, run ${r + 1}/${runs}, ${side}: ${report.opsPerSec}/s p50 ${fmt(report.p50Ms)} ms p99 ${fmt(report.p99Ms)} ms, ${fmt(perCommit, 1)} writes per commit, cpu ${JSON.stringify(cpu)}`)
    })

    const figure = (c: number, side: Side): LevelFigure => levelFigure(records.filter((x) => x.level === c && x.side === side).map((x) => x.report))
    const cpuMedian = (c: number, side: Side, key: string): number =>
      summarize(records.filter((x) => x.level === c && x.side === side).map((x) => x.cpu[key] ?? NaN)).p50
    const batching = (c: number): number => summarize(records.filter((x) => x.level === c && x.side === 'roster').map((x) => x.writesPerCommit)).p50
    const rows: Array<Array<string | number>> = []
    const summary: Record<string, unknown> = {}
    for (const c of levels) {
      const ros = figure(c, 'roster')
      const ref = figure(c, 'reference')
      const refConns = records.find((x) => x.level === c && x.side === 'reference')?.connections ?? c
      const target = c === 64 ? `≥ ${ZOOKEEPER_PER_SEC} (ZK), ≥ ref` : '–'
      rows.push([`${c}`, String(ros.opsPerSec), ros.p50Ms, ros.p99Ms, fmt(batching(c), 1), `${ref.opsPerSec}${refConns === c ? '' : ` (${refConns} conns)`}`, ref.p50Ms, ref.p99Ms, ratio(ros.opsPerSec, ref.opsPerSec), target])
      summary[String(c)] = { roster: { ...ros, writesPerCommit: batching(c) }, reference: { ...ref, connections: refConns }, ratio: Math.round(ratio(ros.opsPerSec, ref.opsPerSec) * 100) / 100 }
    }
    const cpuRows = levels.flatMap((c) => [
      [`${c} roster`, cpuMedian(c, 'roster', 'gateway'), cpuMedian(c, 'roster', 'leader'), cpuMedian(c, 'roster', 'postgres'), cpuMedian(c, 'roster', 'generator')],
      [`${c} reference`, '–', '–', cpuMedian(c, 'reference', 'postgres'), cpuMedian(c, 'reference', 'generator')]
    ])
    const top = levels.includes(64) ? summary['64'] as { roster: LevelFigure, reference: LevelFigure } : null
    const tables: Table[] = [
      {
        title: `register: PUT through the gateway vs raw pg (one transaction per write), ${runs} runs × ${durationMs} ms per level and side (+${warmupMs} ms warm-up each), medians; ${roster.storage}`,
        columns: ['conns', 'Roster ops/s', 'p50 ms', 'p99 ms', 'writes/commit', 'raw pg ops/s', 'p50 ms', 'p99 ms', 'Roster/pg', 'target'],
        rows,
        notes: top === null
          ? []
          : [`at 64 connections: ${top.roster.opsPerSec}/s — ZooKeeper ${ZOOKEEPER_PER_SEC}/s ${top.roster.opsPerSec >= ZOOKEEPER_PER_SEC ? 'met' : 'NOT met'}, first milestone ${MILESTONE_PER_SEC}/s ${top.roster.opsPerSec >= MILESTONE_PER_SEC ? 'met' : 'NOT met'}, raw pg ${top.reference.opsPerSec}/s ${top.roster.opsPerSec >= top.reference.opsPerSec ? 'met' : 'NOT met'}`]
      },
      {
        title: 'CPU in the measured window, cores (median over runs; the machine has 2)',
        columns: ['level / side', 'gateway', 'leader', 'postgres', 'generator'],
        rows: cpuRows
      }
    ]
    return {
      parameters: { levels, runs, warmupMs, durationMs, slots, service: SERVICE, storage: roster.storage, body: BODY, order: 'Roster and reference runs interleaved, alternating which goes first' },
      tables,
      results: { summary, runs: records, pids }
    }
  }
}
