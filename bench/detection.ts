// The `detection` benchmark: how fast Roster tells a WebSocket client that a provider is gone
// (README.md › Timings: a dead process within tens of milliseconds, a silent one within three heartbeat
// intervals), against a bare ZeroMQ SUB seeing the same kind of crash at the same time.
//
// Roster runs as three processes (`roster leader|worker|gateway`), on a fresh server Postgres
// database when a URL is given (else the embedded default in a temp data dir). N providers heartbeat from real
// PUB sockets: a few "victims" each in a process of their own (the ones that get SIGKILLed), the
// rest in one fleet process. Scenarios, all over loopback:
//   crash      SIGKILL a victim process → its `down` frame at the client's 'message' handler;
//              the victim is restarted on its endpoint (a pre-started spare binds it) and must
//              be `up` again before the next sample.
//   reference  SIGKILL an emitter process watched by bench/reference-sub.ts → that SUB's
//              monitor `disconnect` event. Interleaved with the crash samples, so both see the
//              same machine at the same time.
//   silence    an emitter stops one provider's heartbeats (socket open) → `down`, measured from
//              the provider's last heartbeat; the contract says 3 intervals.
// No process is started while a sample is being measured (spares are topped up between them).
// A SUB on the leader's event PUB (lib/event-tap.ts) splits the leader's commit from the fan-out.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { http } from '../harness/roster-process.js'
import { pubEndpoint } from '../server/protocol/endpoints.js'
import {
  compileScripts, createSparePool, now, spawnEmitterProc, spawnReferenceSub,
  type EmitterProc
} from './lib/children.js'
import { openEventTap } from './lib/event-tap.js'
import { openFeed, type Feed, type FeedMessage } from './lib/feed.js'
import { withTimeout } from './lib/processes.js'
import { startRoster } from './lib/roster.js'
import { ratio, rounded, summarize, type Summary, type Table } from './lib/stats.js'
import type { Benchmark, BenchContext, BenchOutput } from './lib/types.js'

const SERVICE = 'bench'
/** A crash should be seen in milliseconds; past this the sample fails (the silence rule alone
 *  would have fired long before). */
const CRASH_TIMEOUT_MS = 5_000
const SILENCE_GRACE_MS = 5_000
const UP_TIMEOUT_MS = 10_000
const SETUP_TIMEOUT_MS = 30_000
const EXIT_TIMEOUT_MS = 5_000

interface Params {
  providers: number
  samples: number
  warmup: number
  intervalMs: number
  victims: number
  spares: number
}

/** A provider that can be killed: its own emitter process, replaced by a spare after each kill. */
interface Slot { id: string, endpoint: string, proc: EmitterProc }

interface CrashSample {
  index: number, warmup: boolean, id: string
  /** The `down` event's revision, the leader's decision and the frame's arrival (epoch ms). */
  revision: number, decisionAt: number, clientAt: number
  /** SIGKILL → `down` frame at the client. */
  latencyMs: number
  /** SIGKILL → the leader's decision (the event's stateSince, leader clock, whole ms). */
  killToDecisionMs: number
  /** The leader's decision → the frame at the client (commit, publish, gateway, WebSocket). */
  decisionToClientMs: number
  /** The leader's decision → its EVENT on the leader's PUB (seen by lib/event-tap.ts in this process): the commit. */
  decisionToPublishMs: number
  /** That EVENT → the frame at the client: gateway replica, watch hub, WebSocket. */
  publishToClientMs: number
  /** SIGKILL → the victim reaped ('exit' here): the kernel's teardown, during which the FIN goes. */
  killToExitMs: number
  /** The spare's bind → `up` frame (not a detection figure: SUB reconnect + first heartbeat). */
  restartToUpMs: number
}
interface ReferenceSample {
  index: number, warmup: boolean, id: string
  /** SIGKILL → `disconnect` in the SUB process (its clock). */
  latencyMs: number
  /** SIGKILL → the SUB's stdout line read here (one more process hop, like the WebSocket's). */
  seenByRunnerMs: number
  killToExitMs: number
  restartToUpMs: number
}
interface SilenceSample {
  index: number, warmup: boolean, id: string, revision: number, decisionAt: number, clientAt: number
  /** The provider's last heartbeat sent → `down` frame at the client. */
  latencyMs: number
  excessMs: number
  /** Last heartbeat sent → the worker's lastSeen for it (worker clock, whole ms). */
  beatToLastSeenMs: number
  /** lastSeen → the leader's decision: the 3-interval timer plus the worker's REPORT. */
  lastSeenToDecisionMs: number
  decisionToClientMs: number
  decisionToPublishMs: number
  publishToClientMs: number
}

const FLAGS = {
  providers: { default: '1000', help: 'providers heartbeating to Roster' },
  samples: { default: '30', help: 'measured samples per scenario (after the warm-up)' },
  warmup: { default: '3', help: 'samples discarded first in each scenario' },
  'interval-ms': { default: '100', help: 'heartbeat interval of every provider' },
  victims: { default: '5', help: 'providers in processes of their own, killed in turn' },
  curve: { default: '0', help: '1: every role gets --cluster-keys (CurveZMQ between the roles)' }
}

function intFlag (ctx: BenchContext, name: keyof typeof FLAGS, min: number, max: number): number {
  const raw = ctx.flags[name] ?? FLAGS[name].default
  const v = Number(raw)
  if (!Number.isInteger(v) || v < min || v > max) throw new Error(`--${name} must be an integer ${min}–${max}, got ${JSON.stringify(raw)}`)
  return v
}

const portOf = (endpoint: string): string => endpoint.slice(endpoint.lastIndexOf(':') + 1)
const ms = (iso: string | null | undefined): number => (iso == null ? NaN : Date.parse(iso))

export const detection: Benchmark = {
  name: 'detection',
  description: 'SIGKILL / silence of a provider → `down` on the WebSocket feed, against a bare ZeroMQ SUB',
  flags: FLAGS,
  timeoutMs: 240_000,
  async run (ctx): Promise<BenchOutput> {
    const providers = intFlag(ctx, 'providers', 1, 1000)
    const p: Params = {
      providers,
      samples: intFlag(ctx, 'samples', 1, 500),
      warmup: intFlag(ctx, 'warmup', 0, 100),
      intervalMs: intFlag(ctx, 'interval-ms', 50, 10_000),
      victims: Math.min(intFlag(ctx, 'victims', 1, 100), providers),
      spares: 2
    }
    const { scope, log } = ctx
    const total = p.warmup + p.samples

    // ---- storage and the child scripts --------------------------------------------------------
    const tmp = await mkdtemp(join(tmpdir(), 'roster-bench-'))
    scope.defer('remove the temp directory', async () => { await rm(tmp, { recursive: true, force: true }) })
    const scripts = await compileScripts(tmp)

    // ---- Roster, emitters and the reference SUB, started together ------------------------------
    // Every victim goes down and up again many times a minute on purpose: flap damping (default
    // 5 changes a minute) would hold it down and end the run, so its threshold is set out of reach.
    const curve = intFlag(ctx, 'curve', 0, 1) === 1
    const rosterReady = startRoster(scope, tmp, ['leader', 'worker', 'gateway'], ['--flap-max-changes', '1000000'], undefined, { clusterKeys: curve })
    rosterReady.catch(() => {}) // awaited below, after the emitters
    let feed: Feed | null = null
    scope.defer('close the feed', () => { feed?.close() })

    const ids = Array.from({ length: p.providers }, (_v, i) => `p${String(i).padStart(String(p.providers - 1).length, '0')}`)
    const pool = createSparePool(scripts, p.intervalMs, p.spares)
    const [fleet, victimProcs, refProcs, refSub] = await Promise.all([
      p.providers > p.victims ? spawnEmitterProc(scripts, p.intervalMs, 'fleet') : Promise.resolve(null),
      Promise.all(Array.from({ length: p.victims }, async (_v, i) => await spawnEmitterProc(scripts, p.intervalMs, `victim-${i}`))),
      Promise.all(Array.from({ length: p.victims }, async (_v, i) => await spawnEmitterProc(scripts, p.intervalMs, `ref-victim-${i}`))),
      spawnReferenceSub(scripts),
      pool.settled()
    ])
    const roster = await rosterReady
    const { url, bind, storage } = roster
    log(`storage: ${storage}`)
    // The leader's published EVENTs, to split the decision → client time (see lib/event-tap.ts).
    const tap = openEventTap(pubEndpoint(bind), roster.clusterKeys)
    scope.defer('close the event tap', () => { tap.close() })
    /** Fills the commit / fan-out split from the tap; run after the last sample, so that a tap
     *  frame read a little after the WebSocket's (same event-loop turn) is not missed. */
    const splitAtTap = (x: { revision: number, decisionAt: number, clientAt: number, decisionToPublishMs: number, publishToClientMs: number }): void => {
      const pub = tap.publishedAt(x.revision)
      x.decisionToPublishMs = pub - x.decisionAt
      x.publishToClientMs = x.clientAt - pub
    }
    log(`Roster up (leader ${bind}, gateway ${url}); ${p.victims} victim + ${fleet === null ? 0 : 1} fleet + ${p.victims} reference emitter processes`)

    // ---- providers: bind, register, watch ------------------------------------------------------
    const victims: Slot[] = []
    for (const [i, proc] of victimProcs.entries()) {
      const id = ids[i] as string
      victims.push({ id, endpoint: await proc.add(id), proc })
    }
    const fleetIds = ids.slice(p.victims)
    const fleetEndpoints = await Promise.all(fleetIds.map(async (id) => await (fleet as EmitterProc).add(id)))
    const endpointOf = new Map<string, string>([...victims.map((v) => [v.id, v.endpoint] as const), ...fleetIds.map((id, i) => [id, fleetEndpoints[i] as string] as const)])
    const hostOf = (id: string): EmitterProc => victims.find((v) => v.id === id)?.proc ?? (fleet as EmitterProc)

    feed = await openFeed(url, `?service=${SERVICE}`)
    const f = feed
    const regStart = now()
    for (const id of ids) {
      const res = await http('PUT', `${url}/v1/services/${SERVICE}/providers/${id}`, {
        host: '127.0.0.1', port: 8080, protocol: 'http', heartbeat: endpointOf.get(id), heartbeatIntervalMs: p.intervalMs
      })
      if (res.status !== 201 && res.status !== 200) throw new Error(`registering ${id}: HTTP ${res.status} ${JSON.stringify(res.body)}`)
    }
    const registeredMs = now() - regStart
    await f.until((s) => ids.every((id) => s.get(id) === 'up'), SETUP_TIMEOUT_MS,
      () => `all ${p.providers} providers up (not up: ${ids.filter((id) => f.states.get(id) !== 'up').join(' ')})`)
    log(`${p.providers} providers registered in ${registeredMs.toFixed(0)} ms, all up after ${(now() - regStart).toFixed(0)} ms`)
    if (tap.seen === 0) log('warning: the event tap saw no EVENT from the leader; the commit / fan-out split will be empty')

    // Transitions of providers no sample is about (a flapping fleet would show up here).
    let target: string | null = null
    let phase = 'crash'
    const unexpected: Array<{ phase: string, id: string, event: string, reason?: string, lastSeen: string | null, stateSince: string, revision: number }> = []
    f.onMessage(({ msg }) => {
      if (msg.type !== 'event' || msg.provider === undefined || msg.provider.id === target) return
      const { id, reason, lastSeen, stateSince } = msg.provider
      unexpected.push({ phase, id, event: msg.event ?? '?', ...(reason === undefined ? {} : { reason }), lastSeen, stateSince, revision: msg.revision })
    })

    const refVictims: Slot[] = []
    for (const [i, proc] of refProcs.entries()) {
      const id = `ref-${i}`
      refVictims.push({ id, endpoint: await proc.add(id), proc })
    }
    const refUp = refVictims.map((v) => refSub.expect((m) => m.event === 'heartbeat' && m.id === v.id, SETUP_TIMEOUT_MS, `reference SUB: first heartbeat of ${v.id}`))
    for (const v of refVictims) refSub.send(`connect ${v.id} ${v.endpoint}`)
    await Promise.all(refUp)

    const isDown = (id: string) => (m: FeedMessage) => m.type === 'event' && m.event === 'down' && m.provider?.id === id
    const isUp = (id: string) => (m: FeedMessage) => m.type === 'event' && m.event === 'up' && m.provider?.id === id

    /** After a kill: waits for the slot's process to be reaped, restarts its provider on the same
     *  endpoint in a spare, and waits for it to be seen again. */
    async function restart (slot: Slot, what: string, waitUp: () => Promise<{ at: number }>): Promise<{ exitAt: number, restartToUpMs: number }> {
      const victim = slot.proc
      await withTimeout(victim.exited, EXIT_TIMEOUT_MS, () => `${what}: pid ${victim.pid} did not exit after SIGKILL`)
      const spare = await pool.take()
      const t = now()
      const up = waitUp()
      await spare.add(slot.id, slot.endpoint)
      slot.proc = spare
      return { exitAt: victim.exitAt() ?? NaN, restartToUpMs: (await up).at - t }
    }

    // ---- crash and reference, interleaved -----------------------------------------------------
    const crash: CrashSample[] = []
    const reference: ReferenceSample[] = []
    for (let i = 0; i < total; i++) {
      const tag = `${i + 1}/${total}`
      {
        const slot = victims[i % victims.length] as Slot
        const what = `crash sample ${tag} (${slot.id}, pid ${slot.proc.pid})`
        await pool.settled() // no process start while measuring
        target = slot.id
        const down = f.expect(isDown(slot.id), CRASH_TIMEOUT_MS, `${what}: \`down\` on the WebSocket after SIGKILL`)
        const t0 = now()
        slot.proc.child.kill('SIGKILL')
        const { msg, at } = await down
        const decisionAt = ms(msg.provider?.stateSince)
        const { exitAt, restartToUpMs } = await restart(slot, what, () => f.expect(isUp(slot.id), UP_TIMEOUT_MS, `${what}: \`up\` after the restart on ${slot.endpoint}`))
        target = null
        crash.push({
          index: i, warmup: i < p.warmup, id: slot.id, revision: msg.revision, decisionAt, clientAt: at,
          latencyMs: at - t0, killToDecisionMs: decisionAt - t0, decisionToClientMs: at - decisionAt,
          decisionToPublishMs: NaN, publishToClientMs: NaN, killToExitMs: exitAt - t0, restartToUpMs
        })
      }
      {
        const slot = refVictims[i % refVictims.length] as Slot
        const what = `reference sample ${tag} (${slot.id}, pid ${slot.proc.pid})`
        await pool.settled()
        const port = portOf(slot.endpoint)
        const disc = refSub.expect((m) => m.event === 'disconnect' && typeof m.address === 'string' && portOf(m.address) === port, CRASH_TIMEOUT_MS, `${what}: SUB \`disconnect\` after SIGKILL`)
        const t0 = now()
        slot.proc.child.kill('SIGKILL')
        const { msg, at } = await disc
        const { exitAt, restartToUpMs } = await restart(slot, what, () => refSub.expect((m) => m.event === 'heartbeat' && m.id === slot.id, UP_TIMEOUT_MS, `${what}: a heartbeat after the restart on ${slot.endpoint}`))
        reference.push({ index: i, warmup: i < p.warmup, id: slot.id, latencyMs: (msg.at as number) - t0, seenByRunnerMs: at - t0, killToExitMs: exitAt - t0, restartToUpMs })
      }
      if ((i + 1) % 10 === 0 || i + 1 === total) log(`crash + reference: ${tag}`)
    }

    // ---- silence ------------------------------------------------------------------------------
    phase = 'silence'
    await pool.settled()
    const silence: SilenceSample[] = []
    const contractMs = 3 * p.intervalMs
    for (let i = 0; i < total; i++) {
      const id = ids[i % ids.length] as string
      const host = hostOf(id)
      const what = `silence sample ${i + 1}/${total} (${id})`
      target = id
      const down = f.expect(isDown(id), contractMs + SILENCE_GRACE_MS, `${what}: \`down\` on the WebSocket after the heartbeats stopped`)
      const { lastBeatAt } = await host.silence(id)
      const { msg, at } = await down
      const up = f.expect(isUp(id), UP_TIMEOUT_MS, `${what}: \`up\` after resume`)
      await host.resume(id)
      await up
      target = null
      const decisionAt = ms(msg.provider?.stateSince)
      const lastSeen = ms(msg.provider?.lastSeen)
      silence.push({
        index: i, warmup: i < p.warmup, id, revision: msg.revision, decisionAt, clientAt: at,
        latencyMs: at - lastBeatAt, excessMs: at - lastBeatAt - contractMs,
        beatToLastSeenMs: lastSeen - lastBeatAt, lastSeenToDecisionMs: decisionAt - lastSeen, decisionToClientMs: at - decisionAt,
        decisionToPublishMs: NaN, publishToClientMs: NaN
      })
      if ((i + 1) % 10 === 0 || i + 1 === total) log(`silence: ${i + 1}/${total}`)
    }
    phase = 'end'

    // ---- figures ------------------------------------------------------------------------------
    for (const x of [...crash, ...silence]) splitAtTap(x)
    const kept = <T extends { warmup: boolean }>(s: T[]): T[] => s.filter((x) => !x.warmup)
    const sum = <T extends { warmup: boolean }>(s: T[], k: keyof T): Summary => rounded(summarize(kept(s).map((x) => x[k] as number)))
    const crashS = sum(crash, 'latencyMs')
    const refS = sum(reference, 'latencyMs')
    const refSeenS = sum(reference, 'seenByRunnerMs')
    const silenceS = sum(silence, 'latencyMs')
    const excessS = sum(silence, 'excessMs')
    const crashRatio = rounded({ p50: ratio(crashS.p50, refS.p50), p90: ratio(crashS.p90, refS.p90), p99: ratio(crashS.p99, refS.p99), mean: ratio(crashS.mean, refS.mean) }, 2)
    const silenceRatio = rounded({ p50: silenceS.p50 / contractMs, p90: silenceS.p90 / contractMs, p99: silenceS.p99 / contractMs, mean: silenceS.mean / contractMs }, 3)
    const crashBreakdown = {
      killToExit: sum(crash, 'killToExitMs'),
      killToDecision: sum(crash, 'killToDecisionMs'),
      decisionToClient: sum(crash, 'decisionToClientMs'),
      decisionToPublish: sum(crash, 'decisionToPublishMs'),
      publishToClient: sum(crash, 'publishToClientMs')
    }
    const refKillToExit = sum(reference, 'killToExitMs')
    const silenceBreakdown = {
      beatToLastSeen: sum(silence, 'beatToLastSeenMs'),
      lastSeenToDecision: sum(silence, 'lastSeenToDecisionMs'),
      decisionToClient: sum(silence, 'decisionToClientMs'),
      decisionToPublish: sum(silence, 'decisionToPublishMs'),
      publishToClient: sum(silence, 'publishToClientMs')
    }
    const crashViaSilence = kept(crash).filter((s) => s.latencyMs >= 2.5 * p.intervalMs).length
    const restartS = { roster: sum(crash, 'restartToUpMs'), reference: sum(reference, 'restartToUpMs') }

    const row = (label: string, s: Summary): Array<string | number> => [label, String(s.n), s.p50, s.p90, s.p99, s.max, s.mean]
    const cols = ['scenario (ms)', 'n', 'p50', 'p90', 'p99', 'max', 'mean']
    const tables: Table[] = [
      {
        title: `detection: ${p.providers} providers, heartbeat ${p.intervalMs} ms, ${p.samples} samples per scenario (+${p.warmup} warm-up discarded), ${storage}`,
        columns: cols,
        rows: [
          row('crash: SIGKILL → `down` on WebSocket', crashS),
          row('reference: SIGKILL → SUB `disconnect`', refS),
          row('  (reference line read by the runner)', refSeenS),
          row('silence: last heartbeat → `down` on WS', silenceS),
          row(`silence excess over 3 × ${p.intervalMs} ms`, excessS)
        ]
      },
      {
        title: 'ratios',
        columns: ['', 'p50', 'p90', 'p99', 'mean'],
        rows: [
          ['crash / reference (Roster ÷ bare SUB)', crashRatio.p50, crashRatio.p90, crashRatio.p99, crashRatio.mean],
          ['crash − reference (ms Roster adds)', crashS.p50 - refS.p50, crashS.p90 - refS.p90, crashS.p99 - refS.p99, crashS.mean - refS.mean],
          [`silence / contract (3 × ${p.intervalMs} ms)`, silenceRatio.p50.toFixed(3), silenceRatio.p90.toFixed(3), silenceRatio.p99.toFixed(3), silenceRatio.mean.toFixed(3)]
        ]
      },
      {
        title: 'where the time goes (approximate: see the notes below and bench/README.md)',
        columns: ['stage (ms)', 'n', 'p50', 'p90', 'p99', 'max'],
        rows: ([
          ['reference: SIGKILL → emitter reaped (kernel teardown; FIN sent in it)', refKillToExit],
          ['crash: SIGKILL → victim reaped (the same, seen by the busier runner)', crashBreakdown.killToExit],
          ['crash: SIGKILL → leader decision (worker sees the drop, REPORT)', crashBreakdown.killToDecision],
          ['crash: decision → EVENT on the leader PUB (commit)', crashBreakdown.decisionToPublish],
          ['crash: EVENT → client (gateway replica, watch hub, WebSocket)', crashBreakdown.publishToClient],
          ['silence: last heartbeat sent → worker lastSeen', silenceBreakdown.beatToLastSeen],
          ['silence: lastSeen → leader decision (3 intervals, REPORT)', silenceBreakdown.lastSeenToDecision],
          ['silence: decision → EVENT on the leader PUB (commit)', silenceBreakdown.decisionToPublish],
          ['silence: EVENT → client (gateway replica, watch hub, WebSocket)', silenceBreakdown.publishToClient]
        ] as Array<[string, Summary]>).map(([label, x]) => [label, String(x.n), x.p50, x.p90, x.p99, x.max]),
        notes: [
          'stamps: the leader\'s stateSince and the worker\'s lastSeen (their clocks, whole ms); the EVENT as a SUB in the runner read it',
          '(publish + that SUB\'s own wake-up: on a busy machine it can wake after the gateway path is done, so EVENT → client may be < 0)',
          `crash samples slower than 2.5 intervals (caught by the silence rule, not the disconnect): ${crashViaSilence}`,
          `transitions of providers no sample was about: ${unexpected.length}`,
          `restart → up (not a detection figure) p50: Roster ${restartS.roster.p50.toFixed(0)} ms, bare SUB ${restartS.reference.p50.toFixed(0)} ms`
        ]
      }
    ]

    return {
      parameters: { ...p, storage, service: SERVICE, order: 'crash and reference samples interleaved, then silence', spareProcessesStarted: pool.started },
      tables,
      results: {
        crash: { summary: crashS, breakdown: crashBreakdown, restartToUp: restartS.roster, viaSilenceRule: crashViaSilence, samples: crash.map((s) => rounded(s)) },
        reference: { summary: refS, seenByRunner: refSeenS, killToExit: refKillToExit, restartToUp: restartS.reference, samples: reference.map((s) => rounded(s)) },
        silence: { contractMs, summary: silenceS, excess: excessS, breakdown: silenceBreakdown, samples: silence.map((s) => rounded(s)) },
        ratios: { crashOverReference: crashRatio, silenceOverContract: silenceRatio },
        unexpectedTransitions: unexpected,
        pids: {
          roster: Object.fromEntries([...roster.processes].map(([role, r]) => [role, r.child.pid])),
          referenceSub: refSub.pid
        }
      }
    }
  }
}
