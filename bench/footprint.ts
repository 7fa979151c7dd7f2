// The `footprint` benchmark: resident memory of `roster up` (leader, worker and gateway in one
// process, PGlite or server Postgres as configured) idle, and with N providers (default 10,000)
// registered and heartbeating every second from bench/emitter.ts processes. Reference, for
// scale: a bare `node` process that does nothing, measured in the same run. RSS and its peak
// (VmHWM) come from /proc/PID/status; the process is not asked anything.
import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { compileScripts } from './lib/children.js'
import { intFlag } from './lib/flags.js'
import { fleetRegistrations, startFleet, waitUp } from './lib/fleet.js'
import { cpuMs, MiB, rss } from './lib/proc-stat.js'
import { sleep, stopProcess, track } from './lib/processes.js'
import { putAll } from './lib/register.js'
import { startRoster } from './lib/roster.js'
import { ratio, summarize, type Table } from './lib/stats.js'
import type { Benchmark, BenchContext, BenchOutput } from './lib/types.js'

const SERVICE = 'fp'
const FLAGS = {
  'fp-providers': { default: '10000', help: 'providers registered and heartbeating for the loaded figure' },
  'fp-interval-ms': { default: '1000', help: 'their heartbeat interval' }
}
/** RSS is sampled this many times, this far apart, and the median kept: the heap breathes with
 *  each garbage collection. */
const SAMPLES = 10
const SAMPLE_EVERY_MS = 500
/** After start-up / after the last provider came up, before sampling. */
const SETTLE_MS = 5000
const SETUP_TIMEOUT_MS = 120_000
const REGISTER_CONCURRENCY = 16
const TARGET_MIB = 400

interface Memory { rssMiB: number, minMiB: number, maxMiB: number, peakMiB: number, cores: number }

/** SAMPLES readings of `pid`'s RSS; also its CPU over the same time (in cores). */
async function sample (pid: number): Promise<Memory> {
  const values: number[] = []
  const c0 = await cpuMs(pid)
  const t0 = performance.now()
  let peak = 0
  for (let i = 0; i < SAMPLES; i++) {
    const r = await rss(pid)
    values.push(r.rssBytes / MiB)
    peak = r.peakBytes / MiB
    if (i < SAMPLES - 1) await sleep(SAMPLE_EVERY_MS)
  }
  const cores = (await cpuMs(pid) - c0) / (performance.now() - t0)
  const s = summarize(values)
  const r1 = (v: number): number => Math.round(v * 10) / 10
  return { rssMiB: r1(s.p50), minMiB: r1(s.min), maxMiB: r1(s.max), peakMiB: r1(peak), cores: Math.round(cores * 1000) / 1000 }
}

export const footprint: Benchmark = {
  name: 'footprint',
  description: 'RSS of `roster up` idle and with 10,000 providers heartbeating, against an idle bare node process',
  flags: FLAGS,
  timeoutMs: 300_000,
  async run (ctx: BenchContext): Promise<BenchOutput> {
    const { scope, log } = ctx
    const providers = intFlag(ctx.flags, FLAGS, 'fp-providers', 1, 12_000)
    const intervalMs = intFlag(ctx.flags, FLAGS, 'fp-interval-ms', 50, 60_000)
    const tmp = await mkdtemp(join(tmpdir(), 'roster-bench-'))
    scope.defer('remove the temp directory', async () => { await rm(tmp, { recursive: true, force: true }) })
    const scripts = await compileScripts(tmp)

    const bare = track(spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' }))
    scope.defer('stop the bare node process', async () => { await stopProcess(bare) })
    const empty = await startRoster(scope, tmp, 'up')
    log(`roster up (pid ${empty.pid('up')}) ready, ${empty.storage}; bare node pid ${String(bare.pid)}`)
    await sleep(SETTLE_MS)
    const [idle, reference] = await Promise.all([sample(empty.pid('up')), sample(bare.pid as number)])
    log(`idle: roster up ${idle.rssMiB} MiB, bare node ${reference.rssMiB} MiB`)
    await empty.stop()

    // Registered with no worker attached, then `roster up` restarted on the same registry: the
    // leader sends a worker its whole task list after every change (coalesced over 10 ms), and
    // 10,000 registrations with a worker attached did not converge on this loaded machine (see
    // bench/README.md, heartbeat). What is measured is the steady state, which this reaches.
    const ids = Array.from({ length: providers }, (_v, i) => `p${i}`)
    const t0 = performance.now()
    const [fleet, registrar] = await Promise.all([startFleet(scripts, ids, intervalMs, 'fleet'), startRoster(scope, tmp, ['leader', 'gateway'], [], empty)])
    await putAll(registrar.url, fleetRegistrations(SERVICE, fleet, intervalMs), REGISTER_CONCURRENCY, (d) => { if (d % 5000 === 0) log(`registered ${d}`) })
    await registrar.stop()
    const roster = await startRoster(scope, tmp, 'up', [], registrar)
    const up = roster.pid('up')
    await waitUp(roster.url, SERVICE, providers, SETUP_TIMEOUT_MS).catch((err: Error) => { throw new Error(`${err.message}\n${roster.output().slice(-4000)}`) })
    log(`${providers} providers in ${fleet.procs.length} emitter processes registered, roster up (pid ${up}) sees them all up (${((performance.now() - t0) / 1000).toFixed(1)} s)`)
    await sleep(SETTLE_MS)
    const loaded = await sample(up)
    log(`loaded: roster up ${loaded.rssMiB} MiB (peak ${loaded.peakMiB} MiB)`)

    const mib = (v: number): string => v.toFixed(1)
    const tables: Table[] = [{
      title: `footprint: RSS of \`roster up\` (median of ${SAMPLES} readings ${SAMPLE_EVERY_MS} ms apart), ${roster.storage}`,
      columns: ['figure', 'RSS MiB', 'min–max', 'peak (VmHWM)', 'reference: bare node', '÷ reference', 'target', 'CPU (cores)'],
      rows: [
        ['roster up, idle', mib(idle.rssMiB), `${mib(idle.minMiB)}–${mib(idle.maxMiB)}`, mib(idle.peakMiB), mib(reference.rssMiB), ratio(idle.rssMiB, reference.rssMiB), '–', idle.cores.toFixed(3)],
        [`roster up, ${providers} providers at ${intervalMs} ms`, mib(loaded.rssMiB), `${mib(loaded.minMiB)}–${mib(loaded.maxMiB)}`, mib(loaded.peakMiB), mib(reference.rssMiB), ratio(loaded.rssMiB, reference.rssMiB), `< ${TARGET_MIB}`, loaded.cores.toFixed(3)]
      ],
      notes: [
        'reference: `node -e "setInterval(() => {}, 1000)"` started in the same run: what any Node process costs before doing anything',
        'peak: the highest RSS the process reached since it started (registration included)',
        'CPU: the whole `roster up` process (leader, worker, gateway and, with PGlite, the database) over the sampling'
      ]
    }]
    return {
      parameters: { providers, intervalMs, samples: SAMPLES, sampleEveryMs: SAMPLE_EVERY_MS, settleMs: SETTLE_MS, storage: roster.storage, emitterProcesses: fleet.procs.length },
      tables,
      results: { idle, loaded, reference, targetMiB: TARGET_MIB, pids: { idle: empty.pid('up'), loaded: up, bare: bare.pid } }
    }
  }
}
