// The worker role's shell. It owns, while started, a LeaderLink (the DEALER to the active leader),
// the heartbeat connections (heartbeat-lanes.ts), the timers that flush, resend and summarise
// what the leader is owed, and through small parts of its own the silence timer
// (silence-timer.ts), the check loops (probe-loops.ts) and the --allow-targets lookups
// (target-verdicts.ts). The rules live in the pure cores: liveness.ts and checks.ts decide
// transitions, session.ts what the leader is owed and told. This module turns socket input into
// calls to them and their answers into messages and connections. Nothing a provider or a leader
// sends may stop it: bad input is counted and dropped, and it keeps watching with no leader.
import { isUtf8 } from 'node:buffer'
import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import type { ClusterKeys } from '../protocol/cluster-keys.js'
import { createBadFrames, type BadFrames } from '../protocol/frames.js'
import { createLeaderLink, type LeaderInfo, type LeaderLink } from '../protocol/leader-link.js'
import { WORKER_DEALER_MAX_BYTES } from '../protocol/socket-limits.js'
import type { MessageOf, Observation } from '../protocol/messages.js'
import { REASON_MAX_LENGTH } from '../protocol/model.js'
import type { AllowedTargets } from '../protocol/targets.js'
import type { Log } from '../common/log.js'
import { createCheckBook, type CheckBook } from './checks.js'
import { HB_TOPIC, openHeartbeatLanes, wantedLanes, type HeartbeatLanes } from './heartbeat-lanes.js'
import { createLiveness, LIVENESS_MISSES, type Liveness } from './liveness.js'
import { REPORT_RESEND_MS } from './outbox.js'
import { createProbeLoops, type ProbeLoops } from './probe-loops.js'
import { createSession, type Outgoing, type Session } from './session.js'
import { createSilenceTimer, type SilenceTimer } from './silence-timer.js'
import { createTargetVerdicts, type TargetVerdicts } from './target-verdicts.js'

/** The resend check runs four times per resend period (outbox.ts REPORT_RESEND_MS): a resend
 *  happens 1–1.25 s after the previous send. */
const RESEND_TICK_DIVISOR = 4

/** How often a worker sends its SEEN summary (protocol README §11). The promise is that an up
 *  provider's lastSeen, read on any gateway, lags its last heartbeat by well under a second: this
 *  period, plus a turn at the leader and one PUB hop. Once a second would let a provider beating
 *  every 200 ms look 1.2 s old. Only providers whose lastSeen moved are sent, so a summary costs
 *  what the heartbeats of the last half second were, at most. */
export const SEEN_INTERVAL_MS = 500

/** Unknown providers' heartbeats are logged at most once a second (with a count of what was
 *  suppressed), so a misbehaving publisher cannot flood the log; bad frames are rate-limited by
 *  protocol/frames.ts like every socket's. */
const BAD_INPUT_LOG_MS = 1000

/** Provider ids are 1–128 ASCII characters (protocol/model.ts); anything longer is not one. */
const MAX_PROVIDER_ID_BYTES = 128

export interface WorkerOptions {
  /** Leader candidates (`--leader`), tried round robin by the LeaderLink. */
  leaders: readonly string[]
  /** Must be unique among workers; also the DEALER's routing id. Default: host, pid, random. */
  workerId?: string
  log: Log
  livenessMisses?: number
  /** Passed to the LeaderLink (default 250 ms); tests shorten it to fail over faster. */
  pingIntervalMs?: number
  /** Default REPORT_RESEND_MS (outbox.ts); tests shorten it. */
  reportResendMs?: number
  /** `--allow-targets`: heartbeat endpoints and check targets outside are not connected to, and
   *  their providers are reported down. Null or absent: any address. */
  allowTargets?: AllowedTargets | null
  /** With keys, the DEALER to the leader is a CURVE client (cluster-keys.ts); the heartbeat
   *  connections stay plain (NULL), since providers are outside the cluster. */
  clusterKeys?: ClusterKeys
}

export interface WorkerStats {
  /** Well-formed heartbeats from providers this worker watches. */
  readonly heartbeats: number
  /** Heartbeat messages that break the contract (frame 0 not exactly `hb`, no or bad id). */
  readonly badFrames: number
  /** Well-formed heartbeats for providers this worker does not watch. */
  readonly unknownProviders: number
  /** Heartbeats for a watched provider that did not come over its own endpoint's established
   *  connection: another provider's publisher using its id; they do not count (liveness.ts,
   *  `heard`). */
  readonly unconnectedHeartbeats: number
  readonly transitions: number
  /** REPORT messages sent, first sends and resends alike. */
  readonly reportsSent: number
  /** Observations sent again because no ACK covered them in time or a new leader came. */
  readonly observationsResent: number
  readonly acks: number
  /** ZMTP handshakes completed with providers (connections and reconnections). */
  readonly connects: number
  /** Heartbeat connections that dropped. Each is its endpoint's own (heartbeat-conns.ts), so
   *  every handshake and drop is attributed to one endpoint. */
  readonly disconnects: number
  /** http/tcp check runs finished, and how many of them failed. */
  readonly probes: number
  readonly probeFailures: number
  readonly watching: number
  readonly endpoints: number
  readonly unacked: number
  readonly leaderBadFrames: number
  readonly fencedMessages: number
  readonly failovers: number
  /** ASSIGNs found missing (out of order, or named by a PONG), each answered by asking for the
   *  complete list again (session.ts). */
  readonly lostAssigns: number
}

export interface Worker {
  readonly workerId: string
  start: () => Promise<void>
  stop: () => Promise<void>
  readonly stats: Readonly<WorkerStats>
}

/** Wall-clock milliseconds that never step: NTP moving the system clock must not make every
 *  provider look silent at once (or hide a silence). lastSeen stays comparable across hosts. */
const clock = (): number => Math.floor(performance.timeOrigin + performance.now())

function defaultWorkerId (): string {
  const host = hostname().replace(/[^A-Za-z0-9._-]/g, '').slice(0, 32)
  return `worker-${host}-${process.pid}-${randomBytes(3).toString('hex')}`.slice(0, 64)
}

/** Calls `log` at most once per period, telling it how many calls it swallowed meanwhile. */
function createThrottle (periodMs: number): (log: (suppressed: number) => void) => void {
  let last = -Infinity
  let suppressed = 0
  return (log) => {
    const t = Date.now()
    if (t - last < periodMs) { suppressed++; return }
    last = t
    log(suppressed)
    suppressed = 0
  }
}

function badFrameReason (frames: Buffer[]): string | null {
  const [topic, id] = frames
  if (topic === undefined || id === undefined) return `expected 2 frames (hb, provider id), got ${frames.length}`
  if (!topic.equals(HB_TOPIC)) return 'frame 0 is not exactly "hb"'
  if (id.length === 0) return 'empty provider id'
  if (id.length > MAX_PROVIDER_ID_BYTES) return `provider id longer than ${MAX_PROVIDER_ID_BYTES} bytes`
  if (!isUtf8(id)) return 'provider id is not valid UTF-8'
  return null
}

/** What a started worker holds: made by start(), closed by stop(). */
interface Run {
  link: LeaderLink
  lanes: HeartbeatLanes
  /** The resend tick and the summary tick. */
  intervals: NodeJS.Timeout[]
  /** The REPORT of this I/O turn's transitions, due at its end. */
  flush: NodeJS.Immediate | null
}

/** `stopping` still holds its run: stop() drains the link (the last REPORTs, BYE) before it
 *  closes anything. The tasks, liveness and the outbox outlive a stop: a restarted worker
 *  watches the same providers at once and owes the next leader the same observations. */
type ShellState =
  | { status: 'stopped' }
  | { status: 'running', run: Run }
  | { status: 'stopping', run: Run, done: Promise<void> }

export function createWorker (opts: WorkerOptions): Worker {
  return new WorkerShell(opts)
}

/** A class rather than one factory closure: one explicit state (ShellState), and short methods
 *  that each do one thing. */
class WorkerShell implements Worker {
  readonly workerId: string
  readonly stats: WorkerStats
  private state: ShellState = { status: 'stopped' }
  private readonly opts: WorkerOptions
  private readonly log: Log
  private readonly misses: number
  private readonly resendMs: number
  private readonly liveness: Liveness
  private readonly checks: CheckBook
  private readonly session: Session
  private readonly probes: ProbeLoops
  private readonly silence: SilenceTimer
  private readonly verdicts: TargetVerdicts
  private readonly badHeartbeats: BadFrames
  private readonly logUnknown = createThrottle(BAD_INPUT_LOG_MS)
  private readonly logUnconnected = createThrottle(BAD_INPUT_LOG_MS)
  private readonly counters = { heartbeats: 0, unknownProviders: 0, unconnectedHeartbeats: 0, transitions: 0, connects: 0, disconnects: 0, lostAssigns: 0 }

  constructor (opts: WorkerOptions) {
    const { log } = opts
    const allow = opts.allowTargets ?? null
    this.opts = opts
    this.log = log
    this.workerId = opts.workerId ?? defaultWorkerId()
    this.misses = opts.livenessMisses ?? LIVENESS_MISSES
    this.resendMs = opts.reportResendMs ?? REPORT_RESEND_MS
    const liveness = this.liveness = createLiveness({ livenessMisses: this.misses })
    const checks = this.checks = createCheckBook()
    this.session = createSession({ workerId: this.workerId, liveness, checks, reportResendMs: this.resendMs })
    this.probes = createProbeLoops({ checks, allow, log, clock, onTransition: (obs) => { this.transitions([obs]) } })
    this.silence = createSilenceTimer(liveness, clock, log, (obs) => { this.transitions(obs) })
    this.verdicts = createTargetVerdicts({ allow, log, clock, onDecided: this.guarded('target lookup', () => { this.syncEndpoints() }) })
    this.badHeartbeats = createBadFrames(log, 'dropped a bad heartbeat')
    this.stats = this.statsView()
  }

  async start (): Promise<void> {
    while (this.state.status === 'stopping') await this.state.done
    if (this.state.status === 'running') return
    const lanes = openHeartbeatLanes({
      log: this.log,
      onHandshake: this.guarded('handshake', (endpoint) => { this.onHandshake(endpoint) }),
      onDisconnect: this.guarded('disconnect', (endpoint) => { this.onDisconnect(endpoint) }),
      onMessage: this.guarded('heartbeat', (endpoint, frames) => { this.onHeartbeat(endpoint, frames) })
    })
    const link = this.openLink()
    const intervals = [
      setInterval(() => { this.resendTick() }, Math.max(1, Math.floor(this.resendMs / RESEND_TICK_DIVISOR))),
      setInterval(this.guarded('summary', () => { this.send(this.session.summary()) }), SEEN_INTERVAL_MS)
    ]
    this.state = { status: 'running', run: { link, lanes, intervals, flush: null } }
    link.start()
    // After a stop/start the tasks are still known: watch them again at once.
    this.probes.open()
    for (const job of this.checks.jobs()) this.probes.start(job, 0)
    this.syncEndpoints()
    this.silence.open()
    this.log.info({ workerId: this.workerId, leaders: this.opts.leaders }, 'worker started')
  }

  async stop (): Promise<void> {
    const state = this.state
    if (state.status === 'stopping') return await state.done
    if (state.status === 'stopped') return
    const done = this.close(state.run)
    this.state = { status: 'stopping', run: state.run, done }
    await done
    if (this.state.status === 'stopping') this.state = { status: 'stopped' }
    this.log.info({ workerId: this.workerId }, 'worker stopped')
  }

  private async close (run: Run): Promise<void> {
    for (const timer of run.intervals) clearInterval(timer)
    if (run.flush !== null) clearImmediate(run.flush)
    run.flush = null
    this.silence.close()
    this.probes.close()
    this.send(this.session.goodbye(clock()), run.link)
    await run.link.stop() // drains the queue (READY, REPORTs, BYE) before closing the DEALER
    this.session.leaderLost()
    for (const endpoint of run.lanes.close()) this.liveness.closed(endpoint)
  }

  private openLink (): LeaderLink {
    const { opts } = this
    return createLeaderLink({
      candidates: opts.leaders,
      peerId: this.workerId,
      role: 'worker',
      inbound: ['ASSIGN', 'ACK', 'PONG'],
      onLeader: this.guarded('onLeader', (leader) => { this.onLeader(leader) }),
      onLost: this.guarded('onLost', () => {
        this.session.leaderLost()
        this.log.warn({ unacked: this.session.unacked }, 'leader lost; still watching')
      }),
      onMessage: this.guarded('onMessage', (msg) => { this.onMessage(msg) }),
      log: this.log,
      maxMessageBytes: WORKER_DEALER_MAX_BYTES,
      ...(opts.clusterKeys !== undefined ? { clusterKeys: opts.clusterKeys } : {}),
      ...(opts.pingIntervalMs !== undefined ? { pingIntervalMs: opts.pingIntervalMs } : {})
    })
  }

  /** The link while the worker runs or drains it; null when stopped. */
  private get link (): LeaderLink | null {
    return this.state.status === 'stopped' ? null : this.state.run.link
  }

  private send (messages: Outgoing[], link = this.link): void {
    for (const m of messages) link?.send(m.verb, m.body)
  }

  // The leader

  private onLeader (leader: LeaderInfo): void {
    // Protocol detail (leader-link.ts already logs 'following leader' at info): debug.
    this.log.debug({ leader: leader.endpoint, epoch: leader.epoch, watching: this.liveness.size }, 'sending READY to the leader')
    this.send(this.session.leaderFound(leader.epoch, clock()))
  }

  private onMessage (msg: MessageOf<'ASSIGN' | 'ACK' | 'PONG'>): void {
    const got = this.session.receive(msg, clock())
    if (got.kind === 'lost') {
      this.counters.lostAssigns++
      this.log.warn({ seq: got.seq, expected: got.expected, asked: got.resync.length > 0 }, 'an ASSIGN was lost; keeping the current tasks until the complete list comes')
      this.send(got.resync)
    } else if (got.kind === 'assigned') {
      for (const id of got.probeStop) this.probes.stop(id)
      for (const job of got.probeStart) this.probes.start(job, 0)
      this.scheduleFlush() // the views the leader lacks (session.ts)
      this.syncEndpoints(got.endpoints ?? undefined)
      this.silence.arm()
      // Every rebalance sends one; the leader's 'worker joined' and 'worker is silent' lines say why.
      this.log.debug({ tasks: got.tasks, endpoints: this.endpointCount(), checks: this.checks.size }, 'applied ASSIGN')
    }
  }

  private resendTick (): void {
    try {
      this.send(this.session.resend(clock()))
      if (this.verdicts.sweep()) this.syncEndpoints()
    } catch (err) {
      this.log.error({ err }, 'resending reports failed; retrying at the next tick')
    }
  }

  // Observations

  private transitions (observations: readonly Observation[]): void {
    for (const obs of observations) {
      this.counters.transitions++
      this.log.debug({ providerId: obs.providerId, state: obs.state, reason: obs.reason, detail: obs.detail }, 'provider transition')
      this.session.report(obs)
      this.scheduleFlush()
    }
  }

  /** Transitions of one I/O turn (a dropped host, one expiry pass) travel in one REPORT. */
  private scheduleFlush (): void {
    const run = this.run
    if (run === null || run.flush !== null) return
    run.flush = setImmediate(() => {
      run.flush = null
      this.send(this.session.flush(clock()))
    })
  }

  /** The run while the worker runs (not while it stops). */
  private get run (): Run | null {
    return this.state.status === 'running' ? this.state.run : null
  }

  private endpointCount (): number {
    return this.state.status === 'stopped' ? 0 : this.state.run.lanes.size
  }

  // Heartbeats

  /** Connects to every endpoint liveness.ts watches, each in its lane, and closes the rest. */
  /** Connects to the watched endpoints and drops the others: all of them, or those of `only`
   *  (the ones a delta ASSIGN touched), so that a small change costs little however many there are. */
  private syncEndpoints (only?: ReadonlySet<string>): void {
    const run = this.run
    if (run === null) return
    const want = wantedLanes(this.liveness, this.misses, only)
    for (const endpoint of run.lanes.retain(want, only)) this.liveness.closed(endpoint)
    for (const [endpoint, lane] of run.lanes.missing(want)) {
      const refusal = this.verdicts.verdictOn(endpoint)
      if (refusal === undefined) continue // being looked up; syncEndpoints runs again then
      if (refusal !== null) {
        // An Observation's detail is at most REASON_MAX_LENGTH characters (a longer one would
        // make the whole REPORT a bad frame); a long list of ranges is cut short.
        this.transitions(this.liveness.refused(endpoint, refusal.slice(0, REASON_MAX_LENGTH), clock()))
        continue
      }
      try {
        run.lanes.connect(endpoint, lane)
      } catch (err) {
        // The task stays assigned: it never comes up (or goes silent), which is the truth.
        this.log.warn({ endpoint, err }, 'cannot connect to a heartbeat endpoint')
      }
    }
  }

  /** A message over `endpoint`'s own connection. */
  private onHeartbeat (endpoint: string, frames: Buffer[]): void {
    const reason = badFrameReason(frames)
    if (reason !== null) {
      this.badHeartbeats.drop(reason, { frames: frames.length, head: frames[0]?.subarray(0, 16).toString('hex') })
      return
    }
    const providerId = (frames[1] as Buffer).toString('utf8')
    const { counters, liveness, log } = this
    if (!liveness.has(providerId)) {
      counters.unknownProviders++
      this.logUnknown((suppressed) => log.debug({ providerId, suppressed }, 'heartbeat from a provider this worker does not watch'))
      return
    }
    if (!liveness.heard(providerId, endpoint)) {
      counters.unconnectedHeartbeats++
      this.logUnconnected((suppressed) => log.debug({ providerId, endpoint, suppressed }, 'heartbeat for a provider that did not come over its own endpoint\'s connection; ignored'))
      return
    }
    counters.heartbeats++
    const obs = liveness.heartbeat(providerId, clock())
    if (obs === null) return
    this.transitions([obs])
    this.silence.arm()
  }

  /** A ZMTP handshake completed: the provider(s) at that endpoint may be heard from now on. */
  private onHandshake (endpoint: string): void {
    this.counters.connects++
    this.liveness.connected(endpoint)
  }

  private onDisconnect (endpoint: string): void {
    this.counters.disconnects++
    this.transitions(this.liveness.disconnected(endpoint, clock()))
  }

  /** Wraps a callback of the link, the lanes or a timer: a bug here must not end its loop. */
  private guarded<A extends unknown[]> (name: string, fn: (...args: A) => void): (...args: A) => void {
    return (...args) => {
      try {
        fn(...args)
      } catch (err) {
        this.log.error({ err }, `worker ${name} handler failed`)
      }
    }
  }

  private statsView (): WorkerStats {
    const { counters, session, probes } = this
    const linkStats = (): LeaderLink['stats'] | undefined => this.link?.stats
    return Object.defineProperties(counters, {
      badFrames: { get: () => this.badHeartbeats.count, enumerable: true },
      reportsSent: { get: () => session.stats.reportsSent, enumerable: true },
      observationsResent: { get: () => session.stats.observationsResent, enumerable: true },
      acks: { get: () => session.stats.acks, enumerable: true },
      probes: { get: () => probes.stats.probes, enumerable: true },
      probeFailures: { get: () => probes.stats.probeFailures, enumerable: true },
      watching: { get: () => this.liveness.size + this.checks.size, enumerable: true },
      endpoints: { get: () => this.endpointCount(), enumerable: true },
      unacked: { get: () => session.unacked, enumerable: true },
      leaderBadFrames: { get: () => linkStats()?.badFrames ?? 0, enumerable: true },
      fencedMessages: { get: () => linkStats()?.fencedMessages ?? 0, enumerable: true },
      failovers: { get: () => linkStats()?.failovers ?? 0, enumerable: true }
    }) as unknown as WorkerStats
  }
}
