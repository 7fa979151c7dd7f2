// `npm run bench [-- NAME... [--flag value...]]`: runs the named benchmarks (default: all), prints
// a table per benchmark and writes bench/results/NAME.json with the parameters, the machine and
// every sample. Each benchmark owns a Scope: whatever it started (processes, databases, temp
// directories) is undone after it, also when it fails, times out or the run is interrupted, and
// the runner then checks that none of the processes it started is still alive.
import { mkdir, writeFile } from 'node:fs/promises'
import { arch, cpus, loadavg, platform, release, totalmem } from 'node:os'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { version as libzmqVersion } from 'zeromq'
import { detection } from './detection.js'
import { fanout } from './fanout.js'
import { footprint } from './footprint.js'
import { heartbeat } from './heartbeat.js'
import { read } from './read.js'
import { register } from './register.js'
import { resume } from './resume.js'
import { createScope, spawnedPids, survivors, withTimeout, type Scope } from './lib/processes.js'
import { renderTable } from './lib/stats.js'
import type { Benchmark } from './lib/types.js'

const BENCHMARKS: Benchmark[] = [detection, register, read, fanout, heartbeat, footprint, resume]

const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url))
const REPO_ROOT = fileURLToPath(new URL('../', import.meta.url))

function usage (): string {
  const lines = ['Usage: npm run bench [-- [NAME...] [flags]]', '', 'Benchmarks (default: all):']
  for (const b of BENCHMARKS) lines.push(`  ${b.name.padEnd(12)} ${b.description}`)
  lines.push('', 'Flags:')
  for (const b of BENCHMARKS) {
    for (const [name, f] of Object.entries(b.flags)) lines.push(`  --${name.padEnd(14)} ${b.name}: ${f.help} (default ${f.default})`)
  }
  lines.push(`  ${'--help'.padEnd(16)} show this help`, '', 'Server Postgres: set ROSTER_BENCH_DATABASE_URL (or DATABASE_URL); a fresh database is created and dropped.',
    'Ports: set ROSTER_BENCH_PORTS=LOW-HIGH to keep every port the runner chooses in that range.')
  return lines.join('\n')
}

function machine (): Record<string, unknown> {
  const cs = cpus()
  return {
    platform: platform(),
    release: release(),
    arch: arch(),
    cpus: { count: cs.length, model: cs[0]?.model ?? 'unknown', speedMHz: cs[0]?.speed ?? null },
    totalMemGiB: Math.round(totalmem() / 2 ** 30 * 10) / 10,
    node: process.version,
    libzmq: libzmqVersion,
    loadavg: loadavg().map((l) => Math.round(l * 100) / 100)
  }
}

let active: Scope | null = null
let interrupted = false

async function onSignal (signal: NodeJS.Signals): Promise<void> {
  if (interrupted) return
  interrupted = true
  process.stderr.write(`\nbench: ${signal}; stopping everything this run started…\n`)
  await active?.close()
  process.exit(signal === 'SIGINT' ? 130 : 143)
}
process.on('SIGINT', (s) => { void onSignal(s) })
process.on('SIGTERM', (s) => { void onSignal(s) })

async function runOne (bench: Benchmark, flags: Record<string, string | undefined>): Promise<boolean> {
  const scope = createScope()
  active = scope
  const started = performance.now()
  const log = (msg: string): void => { process.stderr.write(`[${bench.name} +${((performance.now() - started) / 1000).toFixed(1)}s] ${msg}\n`) }
  const machineAtStart = machine()
  const startedAt = new Date().toISOString()
  const mine = Object.fromEntries(Object.keys(bench.flags).map((k) => [k, flags[k]]))
  let ok = false
  try {
    log(bench.description)
    const out = await withTimeout(bench.run({ flags: mine, scope, log }), bench.timeoutMs,
      () => `${bench.name} did not finish within ${bench.timeoutMs / 1000} s`)
    const durationMs = Math.round(performance.now() - started)
    const m = machineAtStart as { cpus: { count: number, model: string }, totalMemGiB: number, platform: string, release: string, loadavg: number[] }
    process.stdout.write(`\nmachine: ${m.cpus.count} × ${m.cpus.model}, ${m.totalMemGiB} GiB, ${m.platform} ${m.release}, node ${process.version}, libzmq ${libzmqVersion}, load average at start ${m.loadavg.join(' ')}\n\n`)
    const busiest = Math.max(...m.loadavg, ...loadavg())
    if (busiest > m.cpus.count) {
      process.stdout.write(`note: load average up to ${busiest.toFixed(1)} on ${m.cpus.count} CPUs around this run (its own share included): processes compete for the CPU, and the tails (p90 and up) measure that as much as Roster\n\n`)
    }
    process.stdout.write(out.tables.map(renderTable).join('\n\n') + '\n')
    const report = {
      benchmark: bench.name,
      description: bench.description,
      startedAt,
      durationMs,
      command: `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim(),
      machine: { ...machineAtStart, loadavgAtEnd: loadavg().map((l) => Math.round(l * 100) / 100) },
      parameters: out.parameters,
      tables: out.tables,
      results: out.results
    }
    await mkdir(RESULTS_DIR, { recursive: true })
    const file = join(RESULTS_DIR, `${bench.name}.json`)
    await writeFile(file, JSON.stringify(report, null, 2) + '\n')
    process.stdout.write(`\n${bench.name}: ${(durationMs / 1000).toFixed(1)} s; wrote ${relative(REPO_ROOT, file)}\n`)
    ok = true
  } catch (err) {
    // After Ctrl-C the run fails as its processes go away; that is not news.
    if (!interrupted) process.stderr.write(`\nbench ${bench.name} FAILED: ${err instanceof Error ? err.message : String(err)}\n`)
  } finally {
    await scope.close()
    active = null
  }
  const left = survivors()
  if (left.length > 0) {
    process.stderr.write(`bench ${bench.name}: processes still running after cleanup: ${left.join(', ')}\n`)
    ok = false
  } else {
    log(`cleanup done: all ${spawnedPids().length} processes started so far have exited`)
  }
  return ok
}

async function main (): Promise<number> {
  const options: Record<string, { type: 'string' } | { type: 'boolean' }> = { help: { type: 'boolean' } }
  for (const b of BENCHMARKS) for (const name of Object.keys(b.flags)) options[name] = { type: 'string' }
  let parsed
  try {
    parsed = parseArgs({ args: process.argv.slice(2), options, allowPositionals: true, strict: true })
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\n\n${usage()}\n`)
    return 2
  }
  if (parsed.values.help === true) {
    process.stdout.write(usage() + '\n')
    return 0
  }
  const names = parsed.positionals.length > 0 ? parsed.positionals : BENCHMARKS.map((b) => b.name)
  const unknown = names.filter((n) => !BENCHMARKS.some((b) => b.name === n))
  if (unknown.length > 0) {
    process.stderr.write(`bench: unknown benchmark ${unknown.map((n) => JSON.stringify(n)).join(', ')}\n\n${usage()}\n`)
    return 2
  }
  const flags = parsed.values as Record<string, string | undefined>
  let failed = 0
  for (const name of names) {
    if (interrupted) break
    if (!await runOne(BENCHMARKS.find((b) => b.name === name) as Benchmark, flags)) failed++
  }
  return failed === 0 ? 0 : 1
}

main().then(
  (code) => { if (!interrupted) process.exit(code) },
  (err: unknown) => { process.stderr.write(`bench: ${String(err)}\n`); process.exit(1) }
)
