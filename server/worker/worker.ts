// The worker role's shell: it owns two sets of heartbeat connections that together connect to every
// heartbeat endpoint the leader assigned (see HeartbeatLane), the timer that expires silent providers, the
// timers and in-flight runs of http/tcp checks, and a LeaderLink (the DEALER to the active leader).
// The rules live in liveness.ts and checks.ts; this module turns socket input and probe outcomes
// into calls to them and their transitions into REPORTs. Nothing a provider or a leader sends may
// stop it: bad input is counted and dropped, and it keeps watching with no leader.
import { isUtf8 } from 'node:buffer'
import { randomBytes } from 'node:crypto'
import { lookup } from 'node:dns/promises'
import { isIP } from 'node:net'
import { hostname } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import type { ClusterKeys } from '../protocol/cluster-keys.js'
import { createBadFrames } from '../protocol/frames.js'
import { createLeaderLink, type LeaderInfo, type LeaderLink } from '../protocol/leader-link.js'
import {
  chunks, HANDSHAKE_TIMEOUT_MS, HEARTBEAT_SUB_MAX_BYTES, HEARTBEAT_SUB_MAX_MESSAGE_BYTES, PAGE_ITEMS, WORKER_DEALER_MAX_BYTES
} from '../protocol/socket-limits.js'
import type { Message, Observation, Task } from '../protocol/messages.js'
import { REASON_MAX_LENGTH } from '../protocol/model.js'
import { endpointTarget, firstOutside, notAllowedDetail, type AllowedTargets } from '../protocol/targets.js'
import { afterReads } from '../common/after-reads.js'
import type { Log } from '../common/log.js'
import { createCheckBook, type ProbeJob } from './checks.js'
import { createHeartbeatConns, type HeartbeatConns } from './heartbeat-conns.js'
import { createLiveness, DISCONNECT_QUIET_MS, LIVENESS_MISSES } from './liveness.js'
import { runProbe } from './probes.js'

/** Unacknowledged observations are resent after 1 s: a leader commits a batch in milliseconds,
 *  so one second without an ACK means the REPORT (or its ACK) was lost with a dying leader or
 *  link, and a resend costs the leader only a no-op. The check runs every 250 ms, so a resend
 *  happens 1–1.25 s after the previous send. */
export const REPORT_RESEND_MS = 1000
const RESEND_TICK_DIVISOR = 4

/** How often a worker sends its SEEN summary (protocol README §11). The promise is that an up
 *  provider's lastSeen, read on any gateway, lags its last heartbeat by well under a second: this
 *  period, plus a turn at the leader and one PUB hop. Once a second would let a provider beating
 *  every 200 ms look 1.2 s old. Only providers whose lastSeen moved are sent, so a summary costs
 *  what the heartbeats of the last half second were, at most. */
export const SEEN_INTERVAL_MS = 500

/** One REPORT (and one READY) carries at most this many observations (about 100 KB of JSON,
 *  2 MB at worst: socket-limits.ts), so a mass transition (a worker cut off from a whole rack)
 *  reaches the leader as several commit-sized batches rather than one huge frame. */
const REPORT_MAX_OBSERVATIONS = PAGE_ITEMS

/** A dropped provider is reconnected after 100–200 ms (up to one interval of jitter, as libzmq
 *  does), doubling up to 1 s while the provider stays away: a restarted provider is seen
 *  again within about a second, and 10,000 dead endpoints cost at most ~10,000 connect
 *  attempts a second. The 100 ms floor is what makes DISCONNECT_QUIET_MS sound. */
const SUB_RECONNECT_MS = DISCONNECT_QUIET_MS
const SUB_RECONNECT_MAX_MS = 1000

/** ZMTP heartbeats on the `pinged` lane: each provider connection is PINGed every second and
 *  dropped after 5 s without any traffic, which tears down half-open TCP (a provider host that
 *  vanished without a FIN) so that it is reconnected and the provider is reported down
 *  'disconnected'. Providers with intervals under ~1.7 s are caught by the silence rule
 *  first (3 intervals < 5 s). The TTL asks the provider's side to drop a vanished worker
 *  likewise. Caveat: a peer too old to answer ZMTP 3.1 PINGs (libzmq < 4.2) that also heartbeats
 *  less often than every 5 s would be disconnected and reconnected every 5 s. */
const ZMTP_HEARTBEAT_INTERVAL_MS = 1000
const ZMTP_HEARTBEAT_TIMEOUT_MS = 5000
/** The same 5 s bound the ZMTP handshake (socket-limits.ts; libzmq's default is 30 s), which
 *  heartbeats do not cover: a provider frozen while the worker connects accepts TCP in its
 *  kernel but never greets. */
const ZMTP_HANDSHAKE_TIMEOUT_MS = HANDSHAKE_TIMEOUT_MS

/**
 * Why two lanes. A ZMTP heartbeat is a PING written and a PONG read on every connection every
 * second: for 10,000 providers at 1 s, as many extra syscalls as the heartbeats themselves.
 * (Under libzmq, which the worker used before heartbeat-conns.ts, it was worse: every PONG
 * scanned the I/O thread's whole timer list, and 10,000 pinged providers saturated it.) So ZMTP
 * heartbeats go only where they detect something sooner than the silence rule: providers whose
 * silence bound (livenessMisses × interval) exceeds their 5 s timeout, on the `pinged` lane. The
 * others, on the `plain` lane, are caught silent within that bound anyway; for them a vanished
 * host's half-open connection is torn down by TCP keepalive (kernel timers, no userland cost),
 * so that it is reconnected: 2 s idle, then probes 1 s apart. Node sets the probe interval (1 s)
 * and count (10) itself, so that takes 12 s where libzmq's 3 probes took 5 s; a vanished host
 * that comes back answers the next probe with a reset, and is reconnected at once either way.
 */
type HeartbeatLane = 'plain' | 'pinged'
const TCP_KEEPALIVE_IDLE_MS = 2000

/** A connect to a blackholed host is abandoned after 2 s and retried, instead of the kernel's
 *  ~2 minutes of SYN retries, so a provider whose host comes back is seen within seconds. */
const SUB_CONNECT_TIMEOUT_MS = 2000

/** Unknown providers' heartbeats are logged at most once a second (with a count of what was
 *  suppressed), so a misbehaving publisher cannot flood the log; bad frames are rate-limited by
 *  protocol/frames.ts like every socket's. */
const BAD_INPUT_LOG_MS = 1000

/** With `--allow-targets`, a heartbeat host's verdict (allowed, or why not) is trusted for 30 s:
 *  it is asked again only for an endpoint not yet connected, so an allowed endpoint costs one
 *  lookup, and a refused one is looked up again at most twice a minute, which is also how soon
 *  a name moved into the allowed ranges is connected to. */
const TARGET_VERDICT_TTL_MS = 30_000
/** A resolver that has not answered in 2 s is retried at the next verdict expiry. */
const TARGET_LOOKUP_TIMEOUT_MS = 2000

/** Provider ids are 1–128 ASCII characters (protocol/model.ts); anything longer is not one. */
const MAX_PROVIDER_ID_BYTES = 128
const HB_TOPIC = Buffer.from('hb', 'ascii')

export interface WorkerOptions {
  /** Leader candidates (`--leader`), tried round robin by the LeaderLink. */
  leaders: readonly string[]
  /** Must be unique among workers; also the DEALER's routing id. Default: host, pid, random. */
  workerId?: string
  log: Log
  livenessMisses?: number
  /** Passed to the LeaderLink (default 250 ms); tests shorten it to fail over faster. */
  pingIntervalMs?: number
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
  heartbeats: number
  /** Heartbeat messages that break the contract (frame 0 not exactly `hb`, no or bad id). */
  badFrames: number
  /** Well-formed heartbeats for providers this worker does not watch. */
  unknownProviders: number
  /** Heartbeats for a watched provider that did not come over its own endpoint's established
   *  connection: another provider's publisher using its id; they do not count (liveness.ts,
   *  `heard`). */
  unconnectedHeartbeats: number
  /** Always 0: every connection is its endpoint's own (heartbeat-conns.ts), so every handshake
   *  and drop is attributed. Kept while readers of the stats still look for it. */
  unmatchedHandshakes: number
  transitions: number
  /** REPORT messages sent, first sends and resends alike. */
  reportsSent: number
  /** Observations sent again because no ACK covered them in time or a new leader came. */
  observationsResent: number
  acks: number
  /** ZMTP handshakes completed with providers (connections and reconnections). */
  connects: number
  /** Heartbeat connections that dropped (see unmatchedHandshakes for the other). */
  disconnects: number
  unmatchedDisconnects: number
  /** http/tcp check runs finished, and how many of them failed. */
  probes: number
  probeFailures: number
  readonly watching: number
  readonly endpoints: number
  readonly unacked: number
  readonly leaderBadFrames: number
  readonly fencedMessages: number
  readonly failovers: number
}

export interface Worker {
  readonly workerId: string
  start: () => Promise<void>
  stop: () => Promise<void>
  readonly stats: Readonly<WorkerStats>
}

interface Pending { obs: Observation, seq: number, sentAt: number }

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

export function createWorker (opts: WorkerOptions): Worker {
  const { log } = opts
  const workerId = opts.workerId ?? defaultWorkerId()
  const resendMs = opts.reportResendMs ?? REPORT_RESEND_MS
  const misses = opts.livenessMisses ?? LIVENESS_MISSES
  const liveness = createLiveness({ livenessMisses: misses })
  const connectedCount = (): number => (lanes.plain?.size ?? 0) + (lanes.pinged?.size ?? 0)
  const checks = createCheckBook()
  /** The pending timer of each checked provider's next probe run (absent while one runs). */
  const probeTimers = new Map<string, NodeJS.Timeout>()
  /** Ends the probe runs in flight when the worker stops. */
  let probeAbort = new AbortController()
  const allow = opts.allowTargets ?? null
  /** Per heartbeat host: null (allowed) or the refusal detail, and when it was decided. */
  const verdicts = new Map<string, { refusal: string | null, at: number }>()
  const resolving = new Set<string>()
  let verdictsSweptAt = 0
  const badHeartbeats = createBadFrames(log, 'dropped a bad heartbeat')
  /** The pages of the ASSIGN being received (protocol/messages.ts). */
  let assignPages: Task[] = []
  let assignPagesSeen = 0
  const logUnknown = createThrottle(BAD_INPUT_LOG_MS)
  const logUnconnected = createThrottle(BAD_INPUT_LOG_MS)

  let running = false
  let stopping: Promise<void> | null = null
  /** Each lane's connections (null while stopped), which keep reconnecting on their own. An
   *  endpoint is in at most one lane. */
  const lanes: Record<HeartbeatLane, HeartbeatConns | null> = { plain: null, pinged: null }
  let link: LeaderLink | null = null

  let expiryTimer: NodeJS.Timeout | null = null
  let expiryAt: number | null = null
  let expiryImmediate: NodeJS.Immediate | null = null
  let resendTimer: NodeJS.Timeout | null = null
  let seenTimer: NodeJS.Timeout | null = null
  let flushHandle: NodeJS.Immediate | null = null

  /** The latest unacknowledged observation per provider, with the seq of the REPORT that last
   *  carried it (0: not sent yet). An ACK for seq s settles every entry with 0 < seq ≤ s; an
   *  entry replaced by a newer observation is back at seq 0, so an old ACK cannot settle it. */
  const unacked = new Map<string, Pending>()
  let lastSeq = 0

  const counters = {
    heartbeats: 0,
    get badFrames () { return badHeartbeats.count },
    unknownProviders: 0,
    unconnectedHeartbeats: 0,
    unmatchedHandshakes: 0 as const,
    transitions: 0,
    reportsSent: 0,
    observationsResent: 0,
    acks: 0,
    connects: 0,
    disconnects: 0,
    unmatchedDisconnects: 0 as const,
    probes: 0,
    probeFailures: 0
  }
  const stats: WorkerStats = Object.defineProperties(counters, {
    watching: { get: () => liveness.size + checks.size, enumerable: true },
    endpoints: { get: connectedCount, enumerable: true },
    unacked: { get: () => unacked.size, enumerable: true },
    leaderBadFrames: { get: () => link?.stats.badFrames ?? 0, enumerable: true },
    fencedMessages: { get: () => link?.stats.fencedMessages ?? 0, enumerable: true },
    failovers: { get: () => link?.stats.failovers ?? 0, enumerable: true }
  }) as WorkerStats

  // ---- transitions and reports -------------------------------------------------------------

  function transition (obs: Observation): void {
    counters.transitions++
    log.debug({ providerId: obs.providerId, state: obs.state, reason: obs.reason, detail: obs.detail }, 'provider transition')
    report(obs)
  }

  /** Queues an observation for the next REPORT (a transition, or a view the leader lacks). */
  function report (obs: Observation): void {
    unacked.set(obs.providerId, { obs, seq: 0, sentAt: 0 })
    // Transitions of one I/O turn (a dropped host, one expiry pass) travel in one REPORT.
    flushHandle ??= setImmediate(() => {
      flushHandle = null
      sendReports((p) => p.seq === 0)
    })
  }

  /** Sends the selected unacknowledged observations under new seqs; with no leader they wait
   *  for the next one (onLeader sends them all). */
  function sendReports (select: (p: Pending) => boolean): void {
    if (link?.leader == null) return
    const now = clock()
    const chosen = [...unacked.values()].filter(select)
    for (const batch of chunks(chosen, REPORT_MAX_OBSERVATIONS)) {
      const seq = ++lastSeq
      for (const p of batch) {
        if (p.seq !== 0) counters.observationsResent++
        p.seq = seq
        p.sentAt = now
      }
      link.send('REPORT', { workerId, seq, observations: batch.map((p) => p.obs) })
      counters.reportsSent++
    }
  }

  /** The summary of what moved since the last one, in pages like REPORT. With no leader nothing
   *  is taken (a new leader gets READY, which carries every lastSeen, then the next summary). */
  function sendSeen (): void {
    if (link?.leader == null) return
    const seen = [...liveness.freshlySeen(), ...checks.freshlySeen()]
    for (const page of chunks(seen, PAGE_ITEMS)) link.send('SEEN', { workerId, seen: page })
  }

  function onAck (seq: number): void {
    counters.acks++
    for (const [id, p] of unacked) if (p.seq !== 0 && p.seq <= seq) unacked.delete(id)
  }

  // ---- leader ------------------------------------------------------------------------------

  function onLeader (leader: LeaderInfo): void {
    // Protocol detail (leader-link.ts already logs 'following leader' at info): debug.
    log.debug({ leader: leader.endpoint, epoch: leader.epoch, watching: liveness.size }, 'sending READY to the leader')
    assignPages = []
    assignPagesSeen = 0
    // In pages, each a READY of its own (the leader treats each alike): see socket-limits.ts.
    const observations = [...liveness.observations(), ...checks.observations()]
    for (let i = 0; i === 0 || i < observations.length; i += REPORT_MAX_OBSERVATIONS) {
      link?.send('READY', { workerId, observations: observations.slice(i, i + REPORT_MAX_OBSERVATIONS) })
    }
    // A new leader may never have seen the REPORTs its predecessor did not ACK.
    sendReports(() => true)
  }

  function onMessage (msg: Extract<Message, { verb: 'ASSIGN' | 'ACK' }>): void {
    if (msg.verb === 'ACK') onAck(msg.body.seq)
    else takeAssignPage(msg.body)
  }

  /** Collects an ASSIGN's pages and applies the whole list at its last page. A page out of
   *  order means one was lost: the pages collected so far are dropped, and the tasks stay as
   *  they were until the next complete ASSIGN (the leader sends one at the next READY). */
  function takeAssignPage (body: Extract<Message, { verb: 'ASSIGN' }>['body']): void {
    const page = body.page ?? 0
    if (page === 0) {
      assignPages = []
    } else if (page !== assignPagesSeen) {
      log.warn({ page, expected: assignPagesSeen }, 'an ASSIGN page was lost; keeping the current tasks')
      assignPages = []
      assignPagesSeen = 0
      return
    }
    for (const task of body.tasks) assignPages.push(task)
    assignPagesSeen = page + 1
    if (body.more === true) return
    const tasks = assignPages
    assignPages = []
    assignPagesSeen = 0
    applyAssign(tasks)
  }

  function applyAssign (tasks: Task[]): void {
    const watched = liveness.assign(tasks, clock())
    const checked = checks.assign(tasks)
    // Observations of providers now watched elsewhere (or from a previous endpoint) are not
    // ours to report any more.
    for (const id of watched.restarted) unacked.delete(id)
    for (const id of unacked.keys()) if (!liveness.has(id) && !checks.has(id)) unacked.delete(id)
    for (const id of checked.stop) stopProbing(id)
    for (const job of checked.start) scheduleProbe(job, 0)
    // The leader's view of these differs from ours (for one, it just took them out of
    // maintenance): tell it ours, or they would stay as it says until their next transition.
    for (const obs of [...watched.report, ...checked.report]) report(obs)
    syncEndpoints()
    armExpiry()
    // Every rebalance sends one; the leader's 'worker joined' and 'worker is silent' lines say why.
    log.debug({ tasks: tasks.length, endpoints: connectedCount(), checks: checks.size }, 'applied ASSIGN')
  }

  /** Wraps a LeaderLink callback: a bug here must not end the link's read loop. */
  function guarded<A extends unknown[]> (name: string, fn: (...args: A) => void): (...args: A) => void {
    return (...args) => {
      try {
        fn(...args)
      } catch (err) {
        log.error({ err }, `worker ${name} handler failed`)
      }
    }
  }

  // ---- heartbeats --------------------------------------------------------------------------

  /** The lane an endpoint belongs in: ZMTP heartbeats only where they beat the silence rule. */
  function laneOf (endpoint: string): HeartbeatLane {
    return liveness.longestInterval(endpoint) * misses > ZMTP_HEARTBEAT_TIMEOUT_MS ? 'pinged' : 'plain'
  }

  function syncEndpoints (): void {
    if (lanes.plain === null || lanes.pinged === null) return
    const want = new Map<string, HeartbeatLane>()
    for (const endpoint of liveness.endpoints()) want.set(endpoint, laneOf(endpoint))
    for (const name of ['plain', 'pinged'] as const) {
      const lane = lanes[name]
      for (const endpoint of [...lane?.endpoints() ?? []]) {
        if (want.get(endpoint) === name) continue
        lane?.disconnect(endpoint)
        liveness.closed(endpoint)
      }
    }
    for (const [endpoint, name] of want) {
      const lane = lanes[name]
      if (lane === null || lane.has(endpoint)) continue
      if (allow !== null) {
        const refusal = verdictOn(endpoint)
        if (refusal === undefined) continue // being looked up; syncEndpoints runs again then
        if (refusal !== null) {
          // An Observation's detail is at most REASON_MAX_LENGTH characters (a longer one would
          // make the whole REPORT a bad frame); a long list of ranges is cut short.
          for (const obs of liveness.refused(endpoint, refusal.slice(0, REASON_MAX_LENGTH), clock())) transition(obs)
          continue
        }
      }
      try {
        lane.connect(endpoint)
      } catch (err) {
        // The task stays assigned: it never comes up (or goes silent), which is the truth.
        log.warn({ endpoint, err }, 'cannot connect to a heartbeat endpoint')
      }
    }
  }

  /** Whether the worker may connect to `endpoint`: null (yes), the refusal detail, or undefined
   *  while its host is being looked up (a lookup is started). An IP literal is decided at once. */
  function verdictOn (endpoint: string): string | null | undefined {
    if (allow === null) return null
    const { host } = endpointTarget(endpoint)
    if (isIP(host) !== 0) return firstOutside(allow, [host]) === null ? null : notAllowedDetail(host, host, allow)
    const known = verdicts.get(host)
    if (known !== undefined && clock() - known.at < TARGET_VERDICT_TTL_MS) return known.refusal
    if (!resolving.has(host)) {
      resolving.add(host)
      void decideHost(allow, host)
    }
    return undefined
  }

  async function decideHost (allowed: AllowedTargets, host: string): Promise<void> {
    let refusal: string | null
    try {
      const found = await Promise.race([
        lookup(host, { all: true, verbatim: true }),
        sleep(TARGET_LOOKUP_TIMEOUT_MS, undefined, { ref: false }).then(() => { throw Object.assign(new Error('timeout'), { code: 'ETIMEOUT' }) })
      ])
      const outside = firstOutside(allowed, found.map((a) => a.address))
      refusal = outside === null ? null : notAllowedDetail(host, outside, allowed)
    } catch (err) {
      const code = (err as { code?: unknown }).code
      refusal = `target not checked: ${host} does not resolve (${typeof code === 'string' ? code : 'no address'})`
    }
    resolving.delete(host)
    verdicts.set(host, { refusal, at: clock() })
    if (refusal !== null) log.warn({ host, refusal }, 'not connecting to a heartbeat endpoint outside --allow-targets')
    if (running) syncEndpoints()
  }

  /** Forgets expired verdicts and, if any host was refused, looks at the endpoints again: a
   *  name may have moved into the allowed ranges. Called from the resend tick. */
  function sweepVerdicts (): void {
    const now = clock()
    if (allow === null || now - verdictsSweptAt < TARGET_VERDICT_TTL_MS) return
    verdictsSweptAt = now
    let refused = false
    for (const [host, v] of verdicts) {
      if (now - v.at >= TARGET_VERDICT_TTL_MS) {
        verdicts.delete(host)
        refused ||= v.refusal !== null
      }
    }
    if (refused) syncEndpoints()
  }

  /** A message over `endpoint`'s own connection. */
  function onHeartbeat (endpoint: string, frames: Buffer[]): void {
    const reason = badFrameReason(frames)
    if (reason !== null) {
      badHeartbeats.drop(reason, { frames: frames.length, head: frames[0]?.subarray(0, 16).toString('hex') })
      return
    }
    const providerId = (frames[1] as Buffer).toString('utf8')
    if (!liveness.has(providerId)) {
      counters.unknownProviders++
      logUnknown((suppressed) => log.debug({ providerId, suppressed }, 'heartbeat from a provider this worker does not watch'))
      return
    }
    if (!liveness.heard(providerId, endpoint)) {
      counters.unconnectedHeartbeats++
      logUnconnected((suppressed) => log.debug({ providerId, endpoint, suppressed }, 'heartbeat for a provider that did not come over its own endpoint\'s connection; ignored'))
      return
    }
    counters.heartbeats++
    const obs = liveness.heartbeat(providerId, clock())
    if (obs === null) return
    transition(obs)
    armExpiry()
  }

  /** A ZMTP handshake completed: the provider(s) at that endpoint may be heard from now on. */
  function onHandshake (endpoint: string): void {
    counters.connects++
    liveness.connected(endpoint)
  }

  function onDisconnect (endpoint: string): void {
    counters.disconnects++
    const now = clock()
    for (const obs of liveness.disconnected(endpoint, now)) transition(obs)
  }

  // ---- checks ------------------------------------------------------------------------------

  /** Runs a provider's probe after `delayMs`, then again every interval (counted from each run's
   *  start; a run always ends within its timeout, which is below the interval) for as long as its
   *  generation is current. */
  function scheduleProbe (job: ProbeJob, delayMs: number): void {
    if (!running) return
    stopProbing(job.providerId)
    probeTimers.set(job.providerId, setTimeout(() => {
      probeTimers.delete(job.providerId)
      probeOnce(job).catch((err: unknown) => {
        log.error({ err, providerId: job.providerId }, 'check run failed; retrying at its next interval')
        if (running && checks.current(job.providerId, job.generation)) scheduleProbe(job, job.probe.intervalMs)
      })
    }, delayMs))
  }

  function stopProbing (providerId: string): void {
    const timer = probeTimers.get(providerId)
    if (timer !== undefined) clearTimeout(timer)
    probeTimers.delete(providerId)
  }

  async function probeOnce (job: ProbeJob): Promise<void> {
    if (!running || !checks.current(job.providerId, job.generation)) return
    const startedAt = clock()
    const { signal } = probeAbort
    const outcome = await runProbe(job.probe, signal, allow)
    // Race: the task may have been removed or changed, or the worker stopped (even restarted),
    // while the probe ran; such a result decides nothing, and nothing is rescheduled.
    if (!running || signal.aborted || !checks.current(job.providerId, job.generation)) return
    counters.probes++
    if (!outcome.ok) counters.probeFailures++
    const obs = checks.result(job.providerId, job.generation, outcome, clock())
    if (obs !== null) transition(obs)
    scheduleProbe(job, Math.max(0, startedAt + job.probe.intervalMs - clock()))
  }

  // ---- silence -----------------------------------------------------------------------------

  /** Keeps one timer at the earliest possible deadline. Heartbeats only push deadlines later,
   *  so the timer is moved only when a newly armed deadline is earlier than it. */
  function armExpiry (): void {
    if (!running) return
    const next = liveness.nextDeadline()
    if (next === null || (expiryAt !== null && expiryAt <= next)) return
    if (expiryTimer !== null) clearTimeout(expiryTimer)
    expiryAt = next
    expiryTimer = setTimeout(onExpiry, Math.max(0, next - clock()))
  }

  /** The silence timer decides after the turn's socket reads (common/after-reads.ts): heartbeats
   *  that came in time during a stall are read first, or the whole fleet would look silent. */
  function onExpiry (): void {
    expiryTimer = null
    expiryImmediate = afterReads(expireSilent)
  }

  function expireSilent (): void {
    expiryImmediate = null
    expiryAt = null
    try {
      for (const obs of liveness.expire(clock())) transition(obs)
    } catch (err) {
      log.error({ err }, 'expiring silent providers failed')
    }
    armExpiry()
  }

  // ---- lanes ------------------------------------------------------------------------------

  function openLane (name: HeartbeatLane): HeartbeatConns {
    return createHeartbeatConns({
      topic: HB_TOPIC,
      maxFrameBytes: HEARTBEAT_SUB_MAX_BYTES,
      maxMessageBytes: HEARTBEAT_SUB_MAX_MESSAGE_BYTES,
      connectTimeoutMs: SUB_CONNECT_TIMEOUT_MS,
      handshakeTimeoutMs: ZMTP_HANDSHAKE_TIMEOUT_MS,
      reconnectMs: SUB_RECONNECT_MS,
      reconnectMaxMs: SUB_RECONNECT_MAX_MS,
      ...(name === 'pinged'
        ? { ping: { intervalMs: ZMTP_HEARTBEAT_INTERVAL_MS, timeoutMs: ZMTP_HEARTBEAT_TIMEOUT_MS, ttlMs: ZMTP_HEARTBEAT_TIMEOUT_MS } }
        : { keepaliveIdleMs: TCP_KEEPALIVE_IDLE_MS }),
      log,
      onHandshake: guarded('handshake', onHandshake),
      onDisconnect: guarded('disconnect', onDisconnect),
      onMessage: guarded('heartbeat', onHeartbeat)
    })
  }

  async function doStop (): Promise<void> {
    running = false
    if (expiryTimer !== null) clearTimeout(expiryTimer)
    if (expiryImmediate !== null) clearImmediate(expiryImmediate)
    if (resendTimer !== null) clearInterval(resendTimer)
    if (seenTimer !== null) clearInterval(seenTimer)
    seenTimer = null
    if (flushHandle !== null) clearImmediate(flushHandle)
    expiryTimer = resendTimer = flushHandle = expiryImmediate = null
    expiryAt = null
    for (const timer of probeTimers.values()) clearTimeout(timer)
    probeTimers.clear()
    probeAbort.abort()
    if (link !== null) {
      sendReports((p) => p.seq === 0)
      if (link.leader !== null) link.send('BYE', { workerId })
      await link.stop() // drains the queue (READY, REPORTs, BYE) before closing the DEALER
    }
    for (const name of ['plain', 'pinged'] as const) {
      for (const endpoint of lanes[name]?.endpoints() ?? []) liveness.closed(endpoint)
      lanes[name]?.close()
      lanes[name] = null
    }
    link = null
  }

  return {
    workerId,
    async start () {
      if (running) return
      if (stopping !== null) await stopping
      stopping = null
      running = true
      lanes.plain = openLane('plain')
      lanes.pinged = openLane('pinged')
      link = createLeaderLink({
        candidates: opts.leaders,
        peerId: workerId,
        role: 'worker',
        inbound: ['ASSIGN', 'ACK'],
        onLeader: guarded('onLeader', onLeader),
        onLost: guarded('onLost', () => log.warn({ unacked: unacked.size }, 'leader lost; still watching')),
        onMessage: guarded('onMessage', onMessage),
        log,
        maxMessageBytes: WORKER_DEALER_MAX_BYTES,
        ...(opts.clusterKeys !== undefined ? { clusterKeys: opts.clusterKeys } : {}),
        ...(opts.pingIntervalMs !== undefined ? { pingIntervalMs: opts.pingIntervalMs } : {})
      })
      link.start()
      resendTimer = setInterval(() => {
        try {
          const cutoff = clock() - resendMs
          sendReports((p) => p.seq === 0 || p.sentAt <= cutoff)
          sweepVerdicts()
        } catch (err) {
          log.error({ err }, 'resending reports failed; retrying at the next tick')
        }
      }, Math.max(1, Math.floor(resendMs / RESEND_TICK_DIVISOR)))
      seenTimer = setInterval(guarded('summary', sendSeen), SEEN_INTERVAL_MS)
      // After a stop/start the tasks are still known: watch them again at once.
      probeAbort = new AbortController()
      for (const job of checks.jobs()) scheduleProbe(job, 0)
      syncEndpoints()
      armExpiry()
      log.info({ workerId, leaders: opts.leaders }, 'worker started')
    },
    async stop () {
      if (!running) return await (stopping ?? Promise.resolve())
      stopping = doStop()
      await stopping
      log.info({ workerId }, 'worker stopped')
    },
    stats
  }
}
