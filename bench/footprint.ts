// The `footprint` benchmark: the memory of `roster up` and of every process under it (an
// embedded Postgres is a child of `roster up`, with children of its own: postmaster, backends,
// background workers), idle with an empty registry, and with N providers (default 10,000)
// registered and heartbeating every second from bench/emitter.ts processes. Per process, RSS and
// PSS from /proc/PID/smaps_rollup; the totals are their sums over the tree. Reference, for scale:
// a bare `node` process that does nothing, measured the same way in the same run. The processes
// are found from outside (lib/proc-stat.ts's descendants()), not asked anything.
import { spawn } from 'node:child_process'
import { compileScripts } from './lib/children.js'
import { intFlag } from './lib/flags.js'
import { fleetRegistrations, startFleet, waitUp } from './lib/fleet.js'
import { tempDir } from './lib/load.js'
import { cpuMs, descendants, describe, rssPss } from './lib/proc-stat.js'
import { sleep, stopProcess, track } from './lib/processes.js'
import { putAll } from './lib/register.js'
import { startRoster } from './lib/roster.js'
import { ratio, summarize, type Table } from './lib/stats.js'
import type { Benchmark, BenchContext, BenchOutput } from './lib/types.js'

const SERVICE = 'fp'
const FLAGS = {
  'fp-providers': { default: '10000', help: 'providers registered and heartbeating for the loaded figure' },
  'fp-interval-ms': { default: '1000', help: 'their heartbeat interval' },
  'fp-idle-ms': { default: '60000', help: 'time after start-up at which the idle figure is taken (a first one is taken 5 s after start-up)' }
}
/** The tree is read this many times, this far apart, and the medians kept: the heap breathes with
 *  each garbage collection, and a database backend's memory with its work. */
const SAMPLES = 10
const SAMPLE_EVERY_MS = 500
/** After start-up / after the last provider came up, before sampling. */
const SETTLE_MS = 5000
const SETUP_TIMEOUT_MS = 120_000
const REGISTER_CONCURRENCY = 16
/** issue 10: the total (sum of RSS over `roster up` and all its processes), in MB (10^6 bytes). */
const TARGET_IDLE_MB = 150
const TARGET_LOADED_MB = 400
const MB = 1e6

interface ProcessMemory { pid: number, comm: string, cmdline: string, rssMB: number, pssMB: number, samples: number }
interface TreeMemory {
  /** Medians over the samples of the sums over the tree. */
  rssMB: number, pssMB: number, minRssMB: number, maxRssMB: number
  /** Most processes seen in one sample. */
  processes: number
  /** Each process's medians over the samples it was in, largest RSS first. */
  perProcess: ProcessMemory[]
  /** CPU of the processes alive at both ends of the sampling, in cores. */
  cores: number
}

const r1 = (v: number): number => Math.round(v * 10) / 10

/** SAMPLES readings of `root` and its descendants (re-listed each time: backends come and go). */
async function sampleTree (root: number): Promise<TreeMemory> {
  const treeNow = async (): Promise<number[]> => [root, ...await descendants(root)]
  const cpuOf = async (pids: number[]): Promise<Map<number, number>> =>
    new Map((await Promise.all(pids.map(async (pid) => [pid, await cpuMs(pid).catch(() => NaN)] as const))).filter(([, v]) => Number.isFinite(v)))
  const cpu0 = await cpuOf(await treeNow())
  const t0 = performance.now()
  const seen = new Map<number, { comm: string, cmdline: string, rss: number[], pss: number[] }>()
  const totals: Array<{ rss: number, pss: number, n: number }> = []
  for (let i = 0; i < SAMPLES; i++) {
    const readings = await Promise.all((await treeNow()).map(async (pid) => {
      try {
        const [m, d] = await Promise.all([rssPss(pid), seen.has(pid) ? null : describe(pid)])
        return { pid, m, d }
      } catch {
        return null // ended between the listing and the reading
      }
    }))
    let rss = 0
    let pss = 0
    let n = 0
    for (const r of readings) {
      if (r === null) continue
      const entry = seen.get(r.pid) ?? { ...(r.d as { comm: string, cmdline: string }), rss: [], pss: [] }
      entry.rss.push(r.m.rssBytes / MB)
      entry.pss.push(r.m.pssBytes / MB)
      seen.set(r.pid, entry)
      rss += r.m.rssBytes / MB
      pss += r.m.pssBytes / MB
      n++
    }
    totals.push({ rss, pss, n })
    if (i < SAMPLES - 1) await sleep(SAMPLE_EVERY_MS)
  }
  const cpu1 = await cpuOf([...cpu0.keys()])
  const cores = [...cpu1].reduce((sum, [pid, ms]) => sum + ms - (cpu0.get(pid) as number), 0) / (performance.now() - t0)
  const rss = summarize(totals.map((t) => t.rss))
  const perProcess = [...seen].map(([pid, e]) => ({
    pid, comm: e.comm, cmdline: e.cmdline, rssMB: r1(summarize(e.rss).p50), pssMB: r1(summarize(e.pss).p50), samples: e.rss.length
  })).sort((a, b) => b.rssMB - a.rssMB)
  return {
    rssMB: r1(rss.p50),
    pssMB: r1(summarize(totals.map((t) => t.pss)).p50),
    minRssMB: r1(rss.min),
    maxRssMB: r1(rss.max),
    processes: Math.max(...totals.map((t) => t.n)),
    perProcess,
    cores: Math.round(cores * 1000) / 1000
  }
}

export const footprint: Benchmark = {
  name: 'footprint',
  description: 'Memory (RSS and PSS) of `roster up` and all its processes, idle and with 10,000 providers heartbeating, against an idle bare node process',
  flags: FLAGS,
  timeoutMs: 900_000,
  async run (ctx: BenchContext): Promise<BenchOutput> {
    const { scope, log } = ctx
    const providers = intFlag(ctx.flags, FLAGS, 'fp-providers', 1, 12_000)
    const intervalMs = intFlag(ctx.flags, FLAGS, 'fp-interval-ms', 50, 60_000)
    const idleMs = intFlag(ctx.flags, FLAGS, 'fp-idle-ms', SETTLE_MS + SAMPLES * SAMPLE_EVERY_MS, 600_000)
    const tmp = await tempDir(scope)
    const scripts = await compileScripts(tmp)

    const bare = track(spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' }))
    scope.defer('stop the bare node process', async () => { await stopProcess(bare) })
    const empty = await startRoster(scope, tmp, 'up')
    const readyAt = performance.now()
    log(`roster up (pid ${empty.pid('up')}) ready, ${empty.storage}; bare node pid ${String(bare.pid)}`)
    // Twice: just started, with the garbage of start-up (compiling schemas and the OpenAPI
    // document, opening connections) still in the heaps; and after idling, once V8 has collected
    // it (its memory reducer runs a few collections when a process stops allocating, ~30 s here).
    await sleep(SETTLE_MS)
    const [started, reference] = await Promise.all([sampleTree(empty.pid('up')), sampleTree(bare.pid as number)])
    log(`just started: roster up and its ${started.processes - 1} descendants: RSS ${started.rssMB} MB, PSS ${started.pssMB} MB; bare node RSS ${reference.rssMB} MB`)
    await sleep(Math.max(0, readyAt + idleMs - performance.now()))
    const idle = await sampleTree(empty.pid('up'))
    log(`idle ${Math.round(idleMs / 1000)} s: roster up and its ${idle.processes - 1} descendants: RSS ${idle.rssMB} MB, PSS ${idle.pssMB} MB`)
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
    const loaded = await sampleTree(up)
    log(`loaded: roster up and its ${loaded.processes - 1} descendants: RSS ${loaded.rssMB} MB, PSS ${loaded.pssMB} MB`)

    const mb = (v: number): string => v.toFixed(1)
    const verdict = (m: TreeMemory, target: number): string => `≤ ${target}: ${m.rssMB <= target ? 'met' : 'NOT met'}`
    const loadedLabel = `roster up, ${providers} providers at ${intervalMs} ms`
    // The description left-aligned (the table right-aligns every column but the first).
    const width = Math.max(...[started, idle, loaded, reference].flatMap((m) => m.perProcess.map((pr) => pr.comm.length + 2 + pr.cmdline.length)))
    const breakdown = (figure: string, m: TreeMemory): Array<Array<string | number>> =>
      m.perProcess.map((pr) => [figure, String(pr.pid), mb(pr.rssMB), mb(pr.pssMB), `${pr.samples}/${SAMPLES}`, `${pr.comm}: ${pr.cmdline}`.padEnd(width)])
    const tables: Table[] = [
      {
        title: `footprint: \`roster up\` and all its descendant processes, MB (10^6 bytes), medians of ${SAMPLES} readings ${SAMPLE_EVERY_MS} ms apart; ${roster.storage}`,
        columns: ['figure', 'processes', 'RSS sum', 'min–max', 'PSS sum', 'bare node RSS', 'bare node PSS', 'RSS ÷ bare node', 'target (RSS sum)', 'CPU (cores)'],
        rows: [
          ['roster up, just started', String(started.processes), mb(started.rssMB), `${mb(started.minRssMB)}–${mb(started.maxRssMB)}`, mb(started.pssMB), mb(reference.rssMB), mb(reference.pssMB), ratio(started.rssMB, reference.rssMB), verdict(started, TARGET_IDLE_MB), started.cores.toFixed(3)],
          [`roster up, idle ${Math.round(idleMs / 1000)} s`, String(idle.processes), mb(idle.rssMB), `${mb(idle.minRssMB)}–${mb(idle.maxRssMB)}`, mb(idle.pssMB), mb(reference.rssMB), mb(reference.pssMB), ratio(idle.rssMB, reference.rssMB), verdict(idle, TARGET_IDLE_MB), idle.cores.toFixed(3)],
          [loadedLabel, String(loaded.processes), mb(loaded.rssMB), `${mb(loaded.minRssMB)}–${mb(loaded.maxRssMB)}`, mb(loaded.pssMB), mb(reference.rssMB), mb(reference.pssMB), ratio(loaded.rssMB, reference.rssMB), verdict(loaded, TARGET_LOADED_MB), loaded.cores.toFixed(3)]
        ],
        notes: [
          'RSS sum: every process\'s resident pages, so a page shared by several (a database\'s shared buffers, the same binary) counts once per process; PSS sum counts it once, split between them',
          'reference: `node -e "setInterval(() => {}, 1000)"` started in the same run: what any Node process costs before doing anything',
          'CPU: the whole tree (every role and the database) over the sampling'
        ]
      },
      {
        title: 'footprint per process, MB (median over the samples the process was in)',
        columns: ['figure', 'pid', 'RSS', 'PSS', 'samples', 'process (comm: command line)'],
        rows: [...breakdown('just started', started), ...breakdown('idle', idle), ...breakdown(`${providers} providers`, loaded), ...breakdown('bare node', reference)]
      }
    ]
    return {
      parameters: { providers, intervalMs, idleMs, samples: SAMPLES, sampleEveryMs: SAMPLE_EVERY_MS, settleMs: SETTLE_MS, storage: roster.storage, emitterProcesses: fleet.procs.length, unit: 'MB = 10^6 bytes' },
      tables,
      results: { started, idle, loaded, reference, targetMB: { idle: TARGET_IDLE_MB, loaded: TARGET_LOADED_MB }, pids: { idle: empty.pid('up'), loaded: up, bare: bare.pid } }
    }
  }
}
