// The `read` benchmark: `GET /v1/services/{service}/providers` for a service of `--read-providers`
// (default 100) providers with full data (tags, meta, heartbeat endpoint), through the gateway at
// a few concurrency levels (default 1, 16, 64 keep-alive connections), against a reference: a
// plain Fastify server in a process of its own (bench/reference-server.ts) answering the same
// path with the exact bytes Roster answered, from a constant. What separates the two is what
// Roster does per read beyond Fastify's own routing and reply: the query's validation, the
// read gate, the replica lookup and the response.
//
// Roster runs as `roster leader` + `roster gateway` (no worker: the providers stay `pending`,
// which changes nothing of a read). One generator process (bench/load-client.ts) drives both;
// their runs are interleaved, alternating which goes first, so both see the same machine.
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { benchPort } from './lib/ports.js'
import { compileScript, spawnLineChild } from './lib/children.js'
import { cpuSplit, type CpuSplit } from './lib/cpu-split.js'
import { intFlag } from './lib/flags.js'
import { interleaved, LOAD_FLAGS, levelFigure, loadParams, spawnLoadClient, tempDir, type LevelFigure, type LoadReport, type LoadSpec, type Side } from './lib/load.js'
import { putAll, type Registration } from './lib/register.js'
import { startRoster } from './lib/roster.js'
import { fmt, ratio, summarize, type Table } from './lib/stats.js'
import type { Benchmark, BenchOutput } from './lib/types.js'

const SERVICE = 'bench'
/** issue 5: at 64 connections, with full provider data, and as a fraction of the reference. */
const TARGET_PER_SEC = 16_000
const TARGET_RATIO = 0.7

const FLAGS = {
  ...LOAD_FLAGS,
  'read-providers': { default: '100', help: 'providers in the service that is read (detection has its own --providers)' }
}

/** A provider as a real deployment registers it: endpoint, heartbeat, a few tags and meta. */
function registration (i: number): Registration {
  const id = `p${String(i).padStart(4, '0')}`
  return {
    service: SERVICE,
    id,
    body: {
      host: `10.0.${Math.floor(i / 250)}.${(i % 250) + 1}`,
      port: 8080,
      protocol: 'http',
      heartbeat: `tcp://10.0.${Math.floor(i / 250)}.${(i % 250) + 1}:5${String(i % 1000).padStart(3, '0')}`,
      heartbeatIntervalMs: 1000,
      tags: ['blue', `zone-${i % 3}`, 'v2'],
      meta: { version: '2.14.1', region: 'eu-west-1', instance: `i-${(0x1000000 + i * 7919).toString(16)}` }
    }
  }
}

interface RunRecord { level: number, run: number, side: Side, report: LoadReport, cpu: CpuSplit }

export const read: Benchmark = {
  name: 'read',
  description: 'GET a service\'s providers through the gateway, against a plain Fastify route answering the same bytes from a constant',
  flags: FLAGS,
  timeoutMs: 300_000,
  async run (ctx): Promise<BenchOutput> {
    const { scope, log, flags } = ctx
    const p = loadParams(flags)
    const { levels, runs, warmupMs, durationMs } = p
    const providers = intFlag(flags, FLAGS, 'read-providers', 1, 10_000)

    const tmp = await tempDir(scope)
    const [roster, load, referenceScript] = await Promise.all([
      startRoster(scope, tmp, ['leader', 'gateway']), spawnLoadClient(tmp), compileScript(tmp, 'reference-server')
    ])
    await putAll(roster.url, Array.from({ length: providers }, (_v, i) => registration(i)), 8)

    // The bytes Roster answers, fetched once; the reference answers exactly these.
    const path = `/v1/services/${SERVICE}/providers`
    const res = await fetch(`${roster.url}${path}`)
    const body = Buffer.from(await res.arrayBuffer())
    const revision = res.headers.get('x-roster-revision')
    const listed = (JSON.parse(body.toString()) as { providers: unknown[] }).providers.length
    if (res.status !== 200 || revision === null || listed !== providers) {
      throw new Error(`GET ${path}: HTTP ${res.status}, revision ${String(revision)}, ${listed} of ${providers} providers`)
    }
    const bodyFile = join(tmp, 'providers.json')
    await writeFile(bodyFile, body)
    const refPort = await benchPort()
    const refServer = await spawnLineChild('reference-server', referenceScript, [bodyFile, revision, String(refPort)])
    const refBody = Buffer.from(await (await fetch(`http://127.0.0.1:${refPort}${path}`)).arrayBuffer())
    if (!refBody.equals(body)) throw new Error('the reference server does not answer the bytes Roster answered')
    log(`Roster up (${roster.storage}); ${providers} providers, ${body.length} bytes per answer; reference on port ${refPort}`)

    const rosterPort = Number(new URL(roster.url).port)
    const records: RunRecord[] = []
    await interleaved(p, ['roster', 'reference'] as const, async (c, _li, r, side) => {
      const spec: LoadSpec = { connections: c, warmupMs, durationMs, slots: 1, tag: '', target: 'http', method: 'GET', path, body: null, port: side === 'roster' ? rosterPort : refPort }
      const named = { server: side === 'roster' ? roster.pid('gateway') : refServer.pid, generator: load.pid }
      const [report, cpu] = await Promise.all([load.run(spec, [200]), cpuSplit(named, {}, warmupMs, durationMs)])
      if (report.lastBodyBytes !== body.length) throw new Error(`${side} answered ${report.lastBodyBytes} bytes, expected ${body.length}`)
      if (r < 0) { log(`warm-up at ${c} connections, ${side}: ${report.opsPerSec}/s (not counted)`); return }
      records.push({ level: c, run: r, side, report, cpu })
      log(`${c} connections, run ${r + 1}/${runs}, ${side}: ${report.opsPerSec}/s p50 ${fmt(report.p50Ms)} ms p99 ${fmt(report.p99Ms)} ms, cpu ${JSON.stringify(cpu)}`)
    })

    const figure = (c: number, side: Side): LevelFigure => levelFigure(records.filter((x) => x.level === c && x.side === side).map((x) => x.report))
    const rows: Array<Array<string | number>> = []
    const summary: Record<string, { roster: LevelFigure, reference: LevelFigure, ratio: number }> = {}
    for (const c of levels) {
      const ros = figure(c, 'roster')
      const ref = figure(c, 'reference')
      const target = c === 64 ? `≥ ${TARGET_PER_SEC}, ≥ ${TARGET_RATIO} × ref` : '–'
      rows.push([`${c}`, String(ros.opsPerSec), ros.p50Ms, ros.p99Ms, String(ref.opsPerSec), ref.p50Ms, ref.p99Ms, ratio(ros.opsPerSec, ref.opsPerSec), ros.generatorCpu, target])
      summary[String(c)] = { roster: ros, reference: ref, ratio: Math.round(ratio(ros.opsPerSec, ref.opsPerSec) * 100) / 100 }
    }
    const top = summary['64']
    const tables: Table[] = [
      {
        title: `read: GET ${providers} providers (${body.length} bytes) through the gateway vs a constant Fastify route, ${runs} runs × ${durationMs} ms per level and side (+${warmupMs} ms warm-up each), medians`,
        columns: ['conns', 'Roster ops/s', 'p50 ms', 'p99 ms', 'reference ops/s', 'p50 ms', 'p99 ms', 'Roster/ref', 'generator CPU', 'target'],
        rows,
        notes: top === undefined
          ? []
          : [`at 64 connections: ${top.roster.opsPerSec}/s — ${TARGET_PER_SEC}/s ${top.roster.opsPerSec >= TARGET_PER_SEC ? 'met' : 'NOT met'}; ${fmt(top.ratio)} of the reference, ${TARGET_RATIO} ${top.ratio >= TARGET_RATIO ? 'met' : 'NOT met'}`,
              'generator CPU: cores the load generator used in the window (near 1.0 it would set the pace)']
      },
      {
        title: 'CPU in the measured window, cores (median over runs; the machine has 2)',
        columns: ['level', 'Roster gateway', 'reference server', 'generator (Roster runs)', 'generator (reference runs)'],
        rows: levels.map((c) => {
          const med = (side: Side, key: string): number => summarize(records.filter((x) => x.level === c && x.side === side).map((x) => x.cpu[key] ?? NaN)).p50
          return [String(c), med('roster', 'server'), med('reference', 'server'), med('roster', 'generator'), med('reference', 'generator')]
        })
      }
    ]
    return {
      parameters: { levels, runs, warmupMs, durationMs, providers, bodyBytes: body.length, revision: Number(revision), storage: roster.storage, order: 'Roster and reference runs interleaved, alternating which goes first' },
      tables,
      results: { summary, runs: records }
    }
  }
}
