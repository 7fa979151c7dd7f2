// The `register` benchmark: `PUT /v1/services/{service}/providers/{id}` through the gateway at a
// few concurrency levels (default 1, 16, 64 keep-alive connections), against ZooKeeper creating
// ephemeral nodes at the same concurrency and, on server Postgres, a raw `pg` loop doing the
// same row writes, one transaction each.
//
// Roster runs in one or both of two topologies (`--topology`): `up`, one `roster up` process
// with every role on Roster's embedded default database (what `npm start` runs; no worker is
// involved in registering, but it is there as a user would have it), and `roles`, `roster
// leader` + `roster gateway` as separate processes on a fresh server-Postgres database. ZooKeeper
// is the Debian package's server, started by the benchmark (lib/zookeeper.ts); each of its
// clients is a session creating ephemeral nodes, the node's data the very body Roster's PUT
// carries. The raw-pg reference writes to `ref_providers` / `ref_changes`, created in the roles'
// database `like` Roster's tables (same columns, indexes and constraints), so it neither disturbs
// Roster's registry nor gets cheaper tables. All are driven by one generator process
// (bench/load-client.ts); their runs are interleaved, the order reversed every other run, so that
// all see the same machine. Beside them, the floor: a plain Fastify server (reference-server.ts)
// taking the same PUTs and answering Roster's bytes from a constant, which is what the HTTP part
// alone costs on this machine before Roster does anything. Each Roster client cycles through `--slots` provider ids: inserts
// first, then updates that each change the row, so that every operation is a real write.
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { adminQuery } from '../harness/postgres-admin.js'
import { compileScript, spawnLineChild } from './lib/children.js'
import { backendsOf, cpuSplit, descendantsOf, type CpuSplit } from './lib/cpu-split.js'
import { intFlag } from './lib/flags.js'
import { interleaved, LOAD_FLAGS, levelFigure, loadParams, spawnLoadClient, tempDir, type LevelFigure, type LoadReport, type LoadSpec } from './lib/load.js'
import { benchPort } from './lib/ports.js'
import { embeddedStorage, freshDatabase, serverPostgresUrl, startRoster, type RosterRun } from './lib/roster.js'
import { fmt, ratio, summarize, type Table } from './lib/stats.js'
import type { Benchmark, BenchOutput } from './lib/types.js'
import { startZooKeeper, zooKeeperMissing, type ZooKeeperRun } from './lib/zookeeper.js'

const SERVICE = 'bench'
/** issue 10: at 64 connections, Roster ÷ ZooKeeper in the same run, per topology. */
const TARGET_VS_ZOOKEEPER: Record<Topology, number> = { up: 0.6, roles: 1.0 }
/** Connections left free on the Postgres server for everyone else (others share it). */
const SPARE_PG_CONNECTIONS = 20
/** ZooKeeper's nodes: one parent, one ephemeral child per create. */
const ZK_PATH = '/roster-bench/{tag}-c{conn}-{seq}'

const TOPOLOGIES = ['up', 'roles'] as const
type Topology = typeof TOPOLOGIES[number]
type RegisterSide = Topology | 'zookeeper' | 'pg' | 'floor'
const LABEL: Record<RegisterSide, string> = { up: 'roster up', roles: 'leader + gateway', zookeeper: 'ZooKeeper', pg: 'raw pg', floor: 'Fastify floor' }

const FLAGS = {
  ...LOAD_FLAGS,
  slots: { default: '100', help: 'provider ids each connection cycles through' },
  curve: { default: '0', help: '1: every role gets --cluster-keys (CurveZMQ between the roles)' },
  topology: { default: 'up,roles', help: 'up: one `roster up` on the embedded default database; roles: `roster leader` + `roster gateway` on server Postgres (comma-separated)' }
}

const BODY = '{"host":"127.0.0.1","port":{port},"protocol":"http","heartbeat":"tcp://127.0.0.1:{port}",' +
  '"heartbeatIntervalMs":1000,"tags":["bench"],"meta":{"conn":"{conn}","run":"{tag}"}}'

interface RunRecord {
  level: number, run: number, side: RegisterSide, connections: number, report: LoadReport, cpu: CpuSplit
  /** roles: changes ÷ transactions over the whole run (warm-up included); pg: 1; else NaN. */
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

async function freeConnections (url: string): Promise<number> {
  const [row] = await adminQuery<{ free: number }>(url, "select current_setting('max_connections')::int - (select count(*) from pg_stat_activity)::int as free")
  return row?.free ?? 0
}

function topologies (raw: string): Topology[] {
  const list = raw.split(',').map((t) => t.trim())
  const bad = list.filter((t) => !(TOPOLOGIES as readonly string[]).includes(t))
  if (bad.length > 0 || list.length === 0) throw new Error(`--topology must be a comma-separated list of ${TOPOLOGIES.join(', ')}; got ${JSON.stringify(raw)}`)
  return [...new Set(list)] as Topology[]
}

export const register: Benchmark = {
  name: 'register',
  description: 'PUT a provider through the gateway (`roster up`, and leader + gateway on server Postgres), against ZooKeeper creating ephemeral nodes and a raw pg loop doing the same row writes',
  flags: FLAGS,
  timeoutMs: 900_000,
  async run (ctx): Promise<BenchOutput> {
    const { scope, log, flags } = ctx
    const p = loadParams(flags)
    const { levels, runs, warmupMs, durationMs } = p
    const slots = intFlag(flags, FLAGS, 'slots', 1, 10_000)
    const curve = intFlag(flags, FLAGS, 'curve', 0, 1) === 1
    const wanted = topologies(flags.topology ?? FLAGS.topology.default)
    const skipped: string[] = []

    const serverUrl = serverPostgresUrl()
    const present = wanted.filter((t) => t !== 'roles' || serverUrl !== undefined)
    if (present.length < wanted.length) {
      const why = '--topology roles (and the raw-pg reference) needs server Postgres: set ROSTER_BENCH_DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/postgres)'
      if (present.length === 0) throw new Error(why)
      log(`${why}; skipped`)
      skipped.push(`leader + gateway and raw pg skipped: ${why}`)
    }
    const zkMissing = zooKeeperMissing()
    if (zkMissing !== null) {
      log(`${zkMissing}: the ZooKeeper column is skipped`)
      skipped.push(`ZooKeeper skipped: ${zkMissing}`)
    }

    const tmp = await tempDir(scope)
    const dirOf = async (name: string): Promise<string> => { const d = join(tmp, name); await mkdir(d); return d }
    const roles = present.includes('roles') ? await freshDatabase(scope, serverUrl as string) : null
    const [up, separate, zk, load, floorScript] = await Promise.all([
      present.includes('up') ? startRoster(scope, await dirOf('up'), 'up', [], undefined, { clusterKeys: curve, storage: embeddedStorage(tmp, 'up-data') }) : null,
      roles !== null ? startRoster(scope, await dirOf('roles'), ['leader', 'gateway'], [], undefined, { clusterKeys: curve, storage: roles }) : null,
      zkMissing === null ? startZooKeeper(scope, await dirOf('zk')) : null,
      spawnLoadClient(tmp),
      compileScript(tmp, 'reference-server')
    ]) as [RosterRun | null, RosterRun | null, ZooKeeperRun | null, Awaited<ReturnType<typeof spawnLoadClient>>, string]
    const databaseUrl = roles?.databaseUrl ?? null
    if (databaseUrl !== null) {
      await adminQuery(databaseUrl, 'create table ref_providers (like providers including all); create table ref_changes (like changes including all)')
    }
    if (up !== null) log(`roster up (pid ${up.pid('up')}) ready: ${up.storage}`)
    if (separate !== null) log(`leader + gateway (pids ${separate.pid('leader')}, ${separate.pid('gateway')}) ready: ${separate.storage}`)
    if (zk !== null) log(`ZooKeeper ${zk.version} (pid ${zk.pid}) on ${zk.connectString}`)
    const floor = await startFloor(tmp, floorScript, (up ?? separate) as RosterRun)
    log(`Fastify floor (pid ${floor.pid}) on port ${floor.port}, answering Roster's ${floor.bytes} bytes`)

    const sides: RegisterSide[] = [...present, 'floor', ...(zk !== null ? ['zookeeper' as const] : []), ...(databaseUrl !== null ? ['pg' as const] : [])]
    const records: RunRecord[] = []
    await interleaved(p, sides, async (c, li, r, side) => {
      const common = { connections: c, warmupMs, durationMs, slots, tag: `l${li}r${r}` }
      const put = (roster: RosterRun): LoadSpec => ({ ...common, target: 'http', port: Number(new URL(roster.url).port), method: 'PUT', path: `/v1/services/${SERVICE}/providers/c{conn}-{slot}`, body: BODY })
      // Read before the CPU measurement starts: it times its window from its call.
      const since = side === 'roles' ? await headRevision(databaseUrl as string) : 0
      let spec: LoadSpec
      let measure: Promise<CpuSplit>
      switch (side) {
        case 'up': {
          const pid = (up as RosterRun).pid('up')
          spec = put(up as RosterRun)
          measure = cpuSplit({ 'roster up': pid, generator: load.pid }, { database: descendantsOf(pid) }, warmupMs, durationMs)
          break
        }
        case 'roles': {
          const s = separate as RosterRun
          spec = put(s)
          measure = cpuSplit({ gateway: s.pid('gateway'), leader: s.pid('leader'), generator: load.pid }, { database: backendsOf(databaseUrl as string) }, warmupMs, durationMs)
          break
        }
        case 'floor':
          spec = { ...common, target: 'http', port: floor.port, method: 'PUT', path: `/v1/services/${SERVICE}/providers/c{conn}-{slot}`, body: BODY }
          measure = cpuSplit({ floor: floor.pid, generator: load.pid }, {}, warmupMs, durationMs)
          break
        case 'zookeeper':
          spec = { ...common, target: 'zookeeper', connectString: (zk as ZooKeeperRun).connectString, path: ZK_PATH, body: BODY }
          measure = cpuSplit({ zookeeper: (zk as ZooKeeperRun).pid, generator: load.pid }, {}, warmupMs, durationMs)
          break
        case 'pg':
          // One connection per client; it never takes the server's last ones, counted right
          // before each run (others' tests open and close connections all the time).
          spec = { ...common, connections: Math.max(1, Math.min(c, await freeConnections(databaseUrl as string) - SPARE_PG_CONNECTIONS)), target: 'pg', databaseUrl: databaseUrl as string, providers: 'ref_providers', changes: 'ref_changes', service: SERVICE }
          measure = cpuSplit({ generator: load.pid }, { database: backendsOf(databaseUrl as string) }, warmupMs, durationMs)
          break
      }
      const [report, cpu] = await Promise.all([load.run(spec, side === 'up' || side === 'roles' ? [200, 201] : side === 'floor' ? [201] : [200]), measure])
      const perCommit = side === 'roles' ? await writesPerCommit(databaseUrl as string, since) : side === 'pg' ? 1 : NaN
      if (r < 0) { log(`warm-up at ${c} connections, ${LABEL[side]}: ${report.opsPerSec}/s (not counted)`); return }
      records.push({ level: c, run: r, side, connections: spec.connections, report, cpu, writesPerCommit: perCommit })
      log(`${c} connections, run ${r + 1}/${runs}, ${LABEL[side]}: ${report.opsPerSec}/s p50 ${fmt(report.p50Ms)} ms p99 ${fmt(report.p99Ms)} ms` +
        `${Number.isFinite(perCommit) && side === 'roles' ? `, ${fmt(perCommit, 1)} writes per commit` : ''}, cpu ${JSON.stringify(cpu)}`)
    })

    const of = (c: number, side: RegisterSide): RunRecord[] => records.filter((x) => x.level === c && x.side === side)
    const figure = (c: number, side: RegisterSide): LevelFigure | null => sides.includes(side) ? levelFigure(of(c, side).map((x) => x.report)) : null
    const median = (c: number, side: RegisterSide, f: (x: RunRecord) => number): number => summarize(of(c, side).map(f)).p50
    const ops = (f: LevelFigure | null): string => f === null ? '–' : String(f.opsPerSec)
    const rows: Array<Array<string | number>> = []
    const notes: string[] = []
    const summary: Record<string, Record<string, unknown>> = {}
    for (const c of levels) {
      const zkf = figure(c, 'zookeeper')
      const pgf = figure(c, 'pg')
      const floorf = figure(c, 'floor') as LevelFigure
      const pgConns = Math.min(c, ...of(c, 'pg').map((x) => x.connections))
      const level: Record<string, unknown> = { floor: floorf, zookeeper: zkf, pg: pgf === null ? null : { ...pgf, connections: pgConns } }
      summary[String(c)] = level
      for (const t of present) {
        const f = figure(c, t) as LevelFigure
        const vsZk = zkf === null ? NaN : ratio(f.opsPerSec, zkf.opsPerSec)
        const vsPg = t === 'roles' && pgf !== null ? ratio(f.opsPerSec, pgf.opsPerSec) : NaN
        const batching = median(c, t, (x) => x.writesPerCommit)
        const target = c === 64 ? `≥ ${fmt(TARGET_VS_ZOOKEEPER[t], 1)} × ZK` : '–'
        rows.push([String(c), LABEL[t], String(f.opsPerSec), f.p50Ms, f.p99Ms, fmt(batching, 1),
          ops(floorf), fmt(ratio(f.opsPerSec, floorf.opsPerSec)), ops(zkf), zkf?.p50Ms ?? '–', zkf?.p99Ms ?? '–', fmt(vsZk),
          `${ops(t === 'roles' ? pgf : null)}${t === 'roles' && pgf !== null && pgConns !== c ? ` (${pgConns} conns)` : ''}`, fmt(vsPg), target])
        level[t] = { ...f, writesPerCommit: batching, vsFloor: Math.round(ratio(f.opsPerSec, floorf.opsPerSec) * 100) / 100, vsZooKeeper: Math.round(vsZk * 100) / 100, vsRawPg: Math.round(vsPg * 100) / 100 }
        if (c === 64) {
          notes.push(zkf === null
            ? `at 64 connections, ${LABEL[t]}: ${f.opsPerSec}/s (no ZooKeeper to compare with)`
            : `at 64 connections, ${LABEL[t]}: ${f.opsPerSec}/s = ${fmt(vsZk)} × ZooKeeper's ${zkf.opsPerSec}/s: target ≥ ${fmt(TARGET_VS_ZOOKEEPER[t], 1)} ${vsZk >= TARGET_VS_ZOOKEEPER[t] ? 'met' : 'NOT met'}`)
        }
      }
      if (c === 64 && zkf !== null) {
        notes.push(`at 64 connections, the Fastify floor (no work behind the route): ${floorf.opsPerSec}/s = ${fmt(ratio(floorf.opsPerSec, zkf.opsPerSec))} × ZooKeeper`)
      }
    }
    const cpuKeys = ['roster up', 'gateway', 'leader', 'database', 'floor', 'zookeeper', 'generator']
    const cpuRows = levels.flatMap((c) => sides.map((side) => [`${c} ${LABEL[side]}`, ...cpuKeys.map((k) => {
      const v = median(c, side, (x) => x.cpu[k] ?? NaN)
      return Number.isFinite(v) ? v : '–'
    })]))
    const storage = [up === null ? null : `roster up: ${up.storage}`, separate === null ? null : `leader + gateway: ${separate.storage}`].filter((x) => x !== null).join('; ')
    const refs = [...(zk !== null ? ['ZooKeeper ephemeral creates'] : []), ...(databaseUrl !== null ? ['raw pg (one transaction per write)'] : [])]
    const tables: Table[] = [
      {
        title: `register: PUT through the gateway${refs.length > 0 ? ` vs ${refs.join(' and ')}` : ''}, ${runs} runs × ${durationMs} ms per level and side (+${warmupMs} ms warm-up each), medians; ${storage}`,
        columns: ['conns', 'Roster', 'ops/s', 'p50 ms', 'p99 ms', 'writes/commit', 'floor ops/s', 'Roster/floor', 'ZooKeeper ops/s', 'p50 ms', 'p99 ms', 'Roster/ZK', 'raw pg ops/s', 'Roster/pg', 'target'],
        rows,
        notes: [...notes, ...skipped,
          ...(zk !== null ? [`ZooKeeper: one session per connection, each operation the create of an ephemeral node whose data is the PUT's body (ZooKeeper ${zk.version}, standalone, default settings: a create is acknowledged once fsynced to its log)`] : []),
          'Fastify floor: a plain Fastify server taking the same PUTs (JSON body parsed) and answering Roster\'s bytes with 201 from a constant, in a process of its own (reference-server.ts)',
          ...(databaseUrl !== null ? ['raw pg: the row writes of one registration, one transaction each, in the leader + gateway database; compared with that topology only'] : [])]
      },
      {
        title: 'CPU in the measured window, cores (median over runs; the machine has 2); database: roster up\'s child processes (its embedded database, if any), or the database\'s Postgres backends',
        columns: ['level / side', ...cpuKeys],
        rows: cpuRows
      }
    ]
    return {
      parameters: {
        levels, runs, warmupMs, durationMs, slots, service: SERVICE, topologies: present, storage, body: BODY, zookeeperPath: ZK_PATH,
        zookeeper: zk === null ? zkMissing : `${zk.version} on ${zk.connectString}`, skipped,
        order: 'all sides interleaved, the order reversed every other run'
      },
      tables,
      results: {
        summary,
        runs: records,
        pids: { floor: floor.pid, up: up?.pid('up') ?? null, leader: separate?.pid('leader') ?? null, gateway: separate?.pid('gateway') ?? null, zookeeper: zk?.pid ?? null, generator: load.pid }
      }
    }
  }
}

/** The floor's server, answering the bytes a real PUT got from `roster` (that provider is then
 *  removed again, so Roster's registry holds only the benchmark's own writes). */
async function startFloor (tmp: string, script: string, roster: RosterRun): Promise<{ pid: number, port: number, bytes: number }> {
  const url = `${roster.url}/v1/services/${SERVICE}/providers/floor-probe`
  const res = await fetch(url, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: BODY.replaceAll('{port}', '1024').replaceAll('{conn}', '0').replaceAll('{tag}', 'floor') })
  const body = Buffer.from(await res.arrayBuffer())
  if (res.status !== 201) throw new Error(`PUT ${url}: HTTP ${res.status} ${body.toString().slice(0, 200)}`)
  const gone = await fetch(url, { method: 'DELETE' })
  if (gone.status !== 200) throw new Error(`DELETE ${url}: HTTP ${gone.status}`)
  const bodyFile = join(tmp, 'put-answer.json')
  await writeFile(bodyFile, body)
  const port = await benchPort()
  const child = await spawnLineChild('reference-server', script, [bodyFile, '0', String(port)])
  return { pid: child.pid, port, bytes: body.length }
}
