// The `heartbeat` benchmark: how many heartbeats one Roster worker absorbs per CPU-second, and
// what watching 10,000 providers at a 1 s interval costs it (issue 3: at most half a core).
//
// Roster runs as `roster leader`, `roster worker`, `roster gateway`; the providers heartbeat from
// bench/emitter.ts processes (1,000 PUB sockets each), registered over REST. Beside the worker a
// bare ZeroMQ SUB (bench/reference-sub.ts) connects to every same endpoint, so each PUB sends
// every heartbeat to both: the reference absorbs exactly the worker's stream at the same time,
// doing the least any consumer must (receive, read the id). CPU time of both processes comes from
// /proc/PID/stat (user + system, all threads, libzmq's I/O thread included) over several windows;
// the rate is what the reference SUB counted in the same window.
//   scale     N providers (default 10,000) at a 1 s interval
//   capacity  the same plus M fast providers (default 1,000 at 50 ms), for a higher rate
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { compileScripts, spawnReferenceSub, type LineChild } from './lib/children.js'
import { intFlag } from './lib/flags.js'
import { fleetRegistrations, startFleet, waitUp, type Fleet } from './lib/fleet.js'
import { cpuMs, MiB, rss, threadCpuMs } from './lib/proc-stat.js'
import { sleep, stopProcess } from './lib/processes.js'
import { putAll } from './lib/register.js'
import { startRoster } from './lib/roster.js'
import { ratio, rounded, summarize, type Summary, type Table } from './lib/stats.js'
import type { Benchmark, BenchContext, BenchOutput } from './lib/types.js'

const SERVICE = 'hb'
const FLAGS = {
  'hb-providers': { default: '10000', help: 'providers at --hb-interval-ms (the scale phase)' },
  'hb-interval-ms': { default: '1000', help: 'their heartbeat interval' },
  'hb-fast-providers': { default: '1000', help: 'providers added for the capacity phase (0: no capacity phase)' },
  'hb-fast-interval-ms': { default: '50', help: 'their heartbeat interval' },
  windows: { default: '5', help: 'measured CPU windows per phase' },
  'window-ms': { default: '3000', help: 'length of one window' }
}
/** After a phase's providers are all up: connection bursts and the first REPORTs are over. */
const SETTLE_MS = 3000
const SETUP_TIMEOUT_MS = 90_000
const REGISTER_CONCURRENCY = 16

interface Window {
  /** Heartbeats the reference SUB received per second in the window (the stream both absorb). */
  heartbeatsPerSec: number
  workerCores: number
  referenceCores: number
  /** Heartbeats per CPU-second: the rate divided by the cores each used. */
  workerPerCpuSec: number
  referencePerCpuSec: number
  /** The worker's cores by thread (main = JavaScript, ZMQbg/IO/0 = libzmq's I/O thread, …). */
  workerThreads: Record<string, number>
  /** Resident memory at the window's end, MiB. */
  workerRssMiB: number
  referenceRssMiB: number
}

interface Phase { name: string, providers: number, nominalPerSec: number, worker: number, windows: Window[] }

async function count (ref: LineChild): Promise<{ n: number, at: number }> {
  const reply = ref.expect((m) => typeof m.count === 'number', 5000, 'reference SUB count')
  ref.send('count')
  const { msg } = await reply
  return { n: msg.count as number, at: msg.at as number }
}

async function measure (worker: number, ref: LineChild, windowMs: number): Promise<Window> {
  const [c0, w0, r0, t0] = await Promise.all([count(ref), cpuMs(worker), cpuMs(ref.pid), threadCpuMs(worker)])
  await sleep(windowMs)
  const [c1, w1, r1, t1, wm, rm] = await Promise.all([count(ref), cpuMs(worker), cpuMs(ref.pid), threadCpuMs(worker), rss(worker), rss(ref.pid)])
  const wallMs = c1.at - c0.at
  const heartbeatsPerSec = (c1.n - c0.n) * 1000 / wallMs
  const workerCores = (w1 - w0) / wallMs
  const referenceCores = (r1 - r0) / wallMs
  const workerThreads = Object.fromEntries(Object.entries(t1).map(([name, ms]) => [name, Math.round((ms - (t0[name] ?? 0)) / wallMs * 1000) / 1000]))
  return { heartbeatsPerSec, workerCores, referenceCores, workerPerCpuSec: heartbeatsPerSec / workerCores, referencePerCpuSec: heartbeatsPerSec / referenceCores, workerThreads, workerRssMiB: wm.rssBytes / MiB, referenceRssMiB: rm.rssBytes / MiB }
}

export const heartbeat: Benchmark = {
  name: 'heartbeat',
  description: 'heartbeats one worker absorbs per CPU-second, and its CPU with 10,000 providers at 1 s, against a bare ZeroMQ SUB',
  flags: FLAGS,
  timeoutMs: 480_000,
  async run (ctx: BenchContext): Promise<BenchOutput> {
    const { scope, log } = ctx
    const flag = (name: keyof typeof FLAGS, min: number, max: number): number => intFlag(ctx.flags, FLAGS, name, min, max)
    const p = {
      providers: flag('hb-providers', 1, 12_000),
      intervalMs: flag('hb-interval-ms', 10, 60_000),
      fastProviders: flag('hb-fast-providers', 0, 4000),
      fastIntervalMs: flag('hb-fast-interval-ms', 10, 60_000),
      windows: flag('windows', 1, 50),
      windowMs: flag('window-ms', 500, 30_000)
    }
    const tmp = await mkdtemp(join(tmpdir(), 'roster-bench-'))
    scope.defer('remove the temp directory', async () => { await rm(tmp, { recursive: true, force: true }) })
    const scripts = await compileScripts(tmp)
    // The worker starts after each phase's registrations. The leader sends a worker its whole
    // task list (coalesced over 10 ms) after every change, so registering 10,000 providers with
    // a worker attached sends it thousands of lists of up to 10,000 tasks; on this loaded machine
    // that kept worker and leader busy past their 1 s liveness and never converged (see
    // bench/README.md). Registered first, the worker gets one list: the steady state measured here.
    const [roster, ref] = await Promise.all([startRoster(scope, tmp, ['leader', 'gateway']), spawnReferenceSub(scripts)])
    let worker = -1
    log(`storage: ${roster.storage}; reference SUB pid ${ref.pid}`)

    /** Hosts, registers and connects the reference to `n` more providers; waits for all up. */
    async function addProviders (prefix: string, n: number, intervalMs: number, registeredMs: number, upTotal: number): Promise<Fleet> {
      const ids = Array.from({ length: n }, (_v, i) => `${prefix}${i}`)
      const t0 = performance.now()
      const fleet = await startFleet(scripts, ids, intervalMs, prefix)
      log(`${n} providers bound in ${fleet.procs.length} emitter processes (${((performance.now() - t0) / 1000).toFixed(1)} s)`)
      let firstBeats = 0
      const refSeen = ref.expect((m) => m.event === 'heartbeat' && ++firstBeats === n, SETUP_TIMEOUT_MS, `reference SUB: a heartbeat from each of ${n} providers`)
      for (const [id, endpoint] of fleet.endpoints) ref.send(`connect ${id} ${endpoint}`)
      await putAll(roster.url, fleetRegistrations(SERVICE, fleet, registeredMs), REGISTER_CONCURRENCY, (d) => { if (d % 5000 === 0) log(`registered ${d}`) })
      log(`${n} registered (${((performance.now() - t0) / 1000).toFixed(1)} s)`)
      const previous = roster.processes.get('worker')
      if (previous !== undefined) await stopProcess(previous.child, 'SIGTERM', 3000)
      worker = roster.spawnRole('worker').child.pid as number
      log(`worker started (pid ${worker})`)
      await Promise.all([waitUp(roster.url, SERVICE, upTotal, SETUP_TIMEOUT_MS), refSeen]).catch((err: Error) => {
        throw new Error(`${err.message}\n${roster.output().slice(-6000)}`)
      })
      log(`all ${upTotal} up at Roster and heard by the reference SUB (${((performance.now() - t0) / 1000).toFixed(1)} s)`)
      return fleet
    }

    async function phase (name: string, providers: number, nominalPerSec: number): Promise<Phase> {
      await sleep(SETTLE_MS)
      const windows: Window[] = []
      for (let i = 0; i < p.windows; i++) windows.push(await measure(worker, ref, p.windowMs))
      const med = summarize(windows.map((w) => w.workerCores)).p50
      log(`${name}: ${providers} providers, ~${Math.round(nominalPerSec)} heartbeats/s, worker ${med.toFixed(3)} cores (median)`)
      return { name, providers, nominalPerSec, worker, windows }
    }

    const phases: Phase[] = []
    await addProviders('s', p.providers, p.intervalMs, p.intervalMs, p.providers)
    phases.push(await phase('scale', p.providers, p.providers * 1000 / p.intervalMs))
    if (p.fastProviders > 0) {
      // Registered with a 1 s interval although they beat faster: the worker handles every
      // heartbeat alike whatever the interval, and a 3 × 50 ms silence bound would turn the
      // machine's other load (its run queue was 10–20 deep) into false `down`s and flap holds.
      await addProviders('f', p.fastProviders, p.fastIntervalMs, Math.max(p.fastIntervalMs, 1000), p.providers + p.fastProviders)
      phases.push(await phase('capacity', p.providers + p.fastProviders, p.providers * 1000 / p.intervalMs + p.fastProviders * 1000 / p.fastIntervalMs))
    }

    const sum = (ph: Phase, k: Exclude<keyof Window, 'workerThreads'>): Summary => rounded(summarize(ph.windows.map((w) => w[k])))
    const figures = phases.map((ph) => ({
      phase: ph.name,
      providers: ph.providers,
      nominalPerSec: ph.nominalPerSec,
      heartbeatsPerSec: sum(ph, 'heartbeatsPerSec'),
      workerCores: sum(ph, 'workerCores'),
      referenceCores: sum(ph, 'referenceCores'),
      workerPerCpuSec: sum(ph, 'workerPerCpuSec'),
      referencePerCpuSec: sum(ph, 'referencePerCpuSec'),
      workerRssMiB: sum(ph, 'workerRssMiB'),
      referenceRssMiB: sum(ph, 'referenceRssMiB'),
      workerThreads: Object.fromEntries(Object.keys(ph.windows[0]?.workerThreads ?? {}).map((name) => [name, rounded(summarize(ph.windows.map((w) => w.workerThreads[name] ?? 0))).p50]))
    }))
    const tables: Table[] = [
      {
        title: `heartbeat: ${p.windows} windows of ${p.windowMs} ms per phase (medians; min–max in the JSON), ${roster.storage}`,
        columns: ['phase', 'providers', 'hb/s', 'worker cores', 'ref cores', 'worker hb/CPU-s', 'ref hb/CPU-s', 'worker ÷ ref'],
        rows: figures.map((f) => [
          f.phase, String(f.providers), f.heartbeatsPerSec.p50.toFixed(0), f.workerCores.p50.toFixed(3), f.referenceCores.p50.toFixed(3),
          f.workerPerCpuSec.p50.toFixed(0), f.referencePerCpuSec.p50.toFixed(0), ratio(f.workerPerCpuSec.p50, f.referencePerCpuSec.p50)
        ]),
        notes: [
          ...figures.map((f) => `RSS, ${f.phase}: worker ${f.workerRssMiB.p50.toFixed(0)} MiB, bare SUB ${f.referenceRssMiB.p50.toFixed(0)} MiB`),
          ...figures.map((f) => `worker cores by thread, ${f.phase}: ${Object.entries(f.workerThreads).filter(([, c]) => c >= 0.001).map(([n, c]) => `${n} ${c.toFixed(3)}`).join(', ')}`),
          'hb/s: heartbeats the reference SUB received per second, the same stream the worker gets (every PUB sends to both)',
          'cores: user + system CPU from /proc/PID/stat over the window ÷ its length (all threads: libzmq\'s I/O thread, ZMTP pings)',
          `targets: worker ≥ 50,000 heartbeats per CPU-second; ${p.providers} providers at ${p.intervalMs} ms within 0.5 core (issue 3)`
        ]
      }
    ]
    return {
      parameters: { ...p, storage: roster.storage, service: SERVICE, settleMs: SETTLE_MS },
      tables,
      results: { phases: figures, windows: phases.map((ph) => ({ phase: ph.name, worker: ph.worker, windows: ph.windows.map((w) => rounded(w)) })), referenceSubPid: ref.pid }
    }
  }
}
