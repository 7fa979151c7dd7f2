// Closed-loop load runs for the register and read benchmarks: the generator process
// (bench/load-client.ts, transpiled once per run) and the figures over several short runs.
// Each run is a warm-up followed by a measured window; a level's figure is the median over its
// runs of ops/s, p50 and p99, so one run disturbed by the machine's other work does not set it.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { compileScript, spawnLineChild, type LineChild } from './children.js'
import { intFlag } from './flags.js'
import type { Scope } from './processes.js'
import { summarize } from './stats.js'
import type { RunReport, RunSpec } from '../load-client.js'

/** What bench/load-client.ts reports for one run. */
export type LoadReport = RunReport

/** One run's parameters (see bench/load-client.ts). */
export type LoadSpec = RunSpec

export interface LoadClient {
  /** Runs one warm-up + window; throws if an operation failed or answered other than `okStatus`. */
  run: (spec: LoadSpec, okStatus: readonly number[]) => Promise<LoadReport>
  readonly pid: number
}

export async function spawnLoadClient (tmp: string): Promise<LoadClient> {
  const lc: LineChild = await spawnLineChild('load-client', await compileScript(tmp, 'load-client'), [])
  return {
    pid: lc.pid,
    async run (spec, okStatus) {
      const what = `${spec.target} run at ${spec.connections} connections`
      const reply = lc.expect((m) => m.done !== undefined || m.error !== undefined, spec.warmupMs + spec.durationMs + 30_000, what)
      lc.send(JSON.stringify({ run: spec }))
      const { msg } = await reply
      if (typeof msg.error === 'string') throw new Error(`load-client: ${what}: ${msg.error}`)
      const r = msg.done as LoadReport
      if (r.failures > 0) throw new Error(`load-client: ${what}: ${r.failures} failed, the first: ${r.firstFailure ?? '?'}`)
      const bad = Object.entries(r.statuses).filter(([s]) => !okStatus.includes(Number(s)))
      if (bad.length > 0) throw new Error(`load-client: ${what}: unexpected statuses ${JSON.stringify(Object.fromEntries(bad))}`)
      if (r.count === 0) throw new Error(`load-client: ${what}: nothing completed inside the window`)
      return r
    }
  }
}

/** One concurrency level's figure: medians over its runs. */
export interface LevelFigure { runs: number, opsPerSec: number, p50Ms: number, p99Ms: number, generatorCpu: number }

export function levelFigure (reports: readonly LoadReport[]): LevelFigure {
  const med = (k: keyof LoadReport): number => summarize(reports.map((r) => r[k] as number)).p50
  return { runs: reports.length, opsPerSec: Math.round(med('opsPerSec')), p50Ms: med('p50Ms'), p99Ms: med('p99Ms'), generatorCpu: med('generatorCpu') }
}

/** The flags every load benchmark takes. */
export const LOAD_FLAGS = {
  connections: { default: '1,16,64', help: 'concurrency levels (comma-separated)' },
  runs: { default: '3', help: 'runs per level and side (the figure is their median)' },
  'warmup-ms': { default: '1000', help: 'warm-up of each run, not measured' },
  'duration-ms': { default: '3000', help: 'measured window of each run' }
}

export interface LoadParams { levels: number[], runs: number, warmupMs: number, durationMs: number }

export function loadParams (flags: Record<string, string | undefined>): LoadParams {
  const raw = flags.connections ?? LOAD_FLAGS.connections.default
  const levels = raw.split(',').map((s) => Number(s.trim()))
  if (levels.some((c) => !Number.isInteger(c) || c < 1 || c > 512)) {
    throw new Error(`--connections must be a comma-separated list of integers 1–512, got ${JSON.stringify(raw)}`)
  }
  return {
    levels,
    runs: intFlag(flags, LOAD_FLAGS, 'runs', 1, 20),
    warmupMs: intFlag(flags, LOAD_FLAGS, 'warmup-ms', 0, 30_000),
    durationMs: intFlag(flags, LOAD_FLAGS, 'duration-ms', 200, 60_000)
  }
}

/** The two sides of a benchmark with one reference (read). */
export type Side = 'roster' | 'reference'

/**
 * Every level's runs, those of every side interleaved, the order reversed every other run
 * (A, B, C; C, B, A; …), so that all sides see the same machine and none is always first or
 * always after a given other. First one run of each side at the highest level that `one` must
 * not record (`run` −1): a gateway's first seconds under load are several times slower while V8
 * optimises its request path (measured: 3,551 reads/s in its first 1.5 s, 16,000 from the
 * third), which would otherwise land in the first level's figure.
 */
export async function interleaved<S extends string> (p: LoadParams, sides: readonly S[], one: (level: number, levelIndex: number, run: number, side: S) => Promise<void>): Promise<void> {
  const top = Math.max(...p.levels)
  for (const side of sides) await one(top, p.levels.indexOf(top), -1, side)
  for (const [li, c] of p.levels.entries()) {
    for (let r = 0; r < p.runs; r++) {
      const order = r % 2 === 0 ? sides : [...sides].reverse()
      for (const side of order) await one(c, li, r, side)
    }
  }
}

/** A temp directory for the run (generated scripts, bodies, an embedded database), removed by the scope. */
export async function tempDir (scope: Scope): Promise<string> {
  const tmp = await mkdtemp(join(tmpdir(), 'roster-bench-'))
  scope.defer('remove the temp directory', async () => { await rm(tmp, { recursive: true, force: true }) })
  return tmp
}
