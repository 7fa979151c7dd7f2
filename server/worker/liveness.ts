// The worker's liveness bookkeeping: for every provider it was assigned, the state (pending, up,
// down), the last heartbeat and the moment its silence becomes a `down`. Pure: no I/O, no timers,
// time comes in as numbers (ms since the epoch), so every rule of the heartbeat contract
// (README.md › The heartbeat protocol) is tested with a fake clock. It must never report a transition the contract does
// not call for: not a `down` because the watcher just started, nor a second `down` for one silence.
import type { Observation, Seen, Task } from '../protocol/messages.js'

/** Three missed intervals make a provider silent (README.md › The heartbeat protocol, "no heartbeat for three
 *  intervals"): one lost or late heartbeat is noise, three in a row is a hung or cut provider. */
export const LIVENESS_MISSES = 3

/** A heartbeat read within 100 ms after a `disconnect` is taken for one sent over the dead
 *  connection, and not counted: counting it would flap the provider up and, three intervals
 *  later, down again. With a libzmq SUB it could sit in the SUB's queue while the monitor event
 *  raced ahead of it; the worker's own connections (heartbeat-conns.ts) report a drop after
 *  everything read on it and reconnect no sooner than 100 ms later, so this is now a guard only. */
export const DISCONNECT_QUIET_MS = 100

type WatchState = Observation['state']
type DownReason = NonNullable<Observation['reason']>

export interface LivenessOptions {
  livenessMisses?: number
  disconnectQuietMs?: number
}

export interface AssignOutcome {
  /** Kept providers whose state here (up or down) differs from the task's: the leader does not
   *  know what this worker sees (it took the provider out of maintenance, or has not yet
   *  committed a report), so the caller reports it again. A task in maintenance is exempt. */
  report: Observation[]
  /** Kept providers that moved to a new endpoint and restarted from the task: an unacknowledged
   *  observation about their previous endpoint is no longer true and must not be resent. */
  restarted: string[]
  /** The endpoints whose set of providers changed: the only connections to add or drop. */
  touched: Set<string>
}

export interface Liveness {
  /** Replaces the watched set (an ASSIGN) with the tasks that have a heartbeat endpoint. New
   *  tasks continue from the leader's state and lastSeen; kept ones keep their bookkeeping,
   *  unless their endpoint changed (then they restart from the task, as new); missing ones are
   *  forgotten. See AssignOutcome for what the caller must report or drop. */
  assign: (tasks: readonly Task[], now: number) => AssignOutcome
  /** Changes the watched set by a delta ASSIGN: `tasks` are added or replace the provider's
   *  (kept ones as in assign), `removed` are forgotten. Costs the size of the delta. */
  update: (tasks: readonly Task[], removed: readonly string[], now: number) => AssignOutcome
  /** A heartbeat from `providerId`: the transition to `up`, or null (already up, or unknown).
   *  Updates lastSeen either way, except for a stale heartbeat read just after a disconnect,
   *  and except while the provider's endpoint is not connected (see `heard`). */
  heartbeat: (providerId: string, now: number) => Observation | null
  /**
   * Whether a heartbeat for `providerId` counts now: only while the connection to its own
   * registered endpoint is established (a ZMTP handshake completed there, and no disconnect
   * since), and, given `from` (the endpoint whose connection carried it), only if it came over
   * that connection. This is the rule that keeps a provider from being kept up by another
   * publisher sending its id: nothing heard over another connection counts for it.
   */
  heard: (providerId: string, from?: string) => boolean
  /** A ZMTP handshake with `endpoint` completed: heartbeats for its providers count again. */
  connected: (endpoint: string) => void
  /** The connection to `endpoint` dropped: every `up` provider there goes `down`, and
   *  heartbeats for its providers stop counting until it is connected again. */
  disconnected: (endpoint: string, now: number) => Observation[]
  /** The worker will not connect to `endpoint` (its address is outside `--allow-targets`): every
   *  provider there that is not already down goes `down`, reason `disconnected` with `detail`
   *  saying why, pending ones included (they would otherwise wait forever). */
  refused: (endpoint: string, detail: string, now: number) => Observation[]
  /** The worker closed its connection to `endpoint` itself (the endpoint moved to its other
   *  SUB, or the worker stopped): heartbeats stop counting, with no transition. */
  closed: (endpoint: string) => void
  /** Every `up` provider whose silence reached its deadline goes `down`. */
  expire: (now: number) => Observation[]
  /** The current view of every watched provider, for READY after a leader change. */
  observations: () => Observation[]
  /** `[id, lastSeen]` of every `up` provider whose lastSeen moved since the previous call: the
   *  worker's summary (SEEN). Heartbeats themselves are never reported one by one. */
  freshlySeen: () => Seen[]
  /** The heartbeat endpoints of the watched providers. */
  endpoints: () => Set<string>
  /** The longest heartbeat interval among the providers at `endpoint` (0 if none). */
  longestInterval: (endpoint: string) => number
  /** A lower bound of the next silence deadline (null: nothing can go silent). Calling expire()
   *  at that time is always safe; it may find nothing due yet and move the bound later. */
  nextDeadline: () => number | null
  has: (providerId: string) => boolean
  readonly size: number
}

interface Entry {
  readonly providerId: string
  endpoint: string
  intervalMs: number
  state: WatchState
  lastSeen: number | null
  /** The lastSeen the last summary (freshlySeen) carried. */
  summarized: number | null
  reason: DownReason | undefined
  /** Why it is down, beyond its reason (only for a refused endpoint). */
  detail: string | undefined
  /** When an `up` provider becomes silent; meaningless in the other states. */
  deadline: number
  /** The earliest heap key that refers to this entry, null when the heap holds none. */
  armedAt: number | null
  downAt: number
  removed: boolean
}

// Why a lazy min-heap rather than a scan: heartbeats only move an entry's `deadline` field (O(1),
// 10,000 providers at 20 Hz is 200,000 heartbeats a second), while the heap keeps a key that is
// a lower bound of that deadline. When a key comes due, expire() either finds the provider
// silent or re-inserts it at its real deadline, so each provider costs one O(log n) heap
// operation per three intervals instead of per heartbeat, and the shell's timer can sleep until
// exactly the next possible deadline. A scan would cost O(n) per timer tick, and with intervals
// from 50 ms to 60 s the ticks would have to be as frequent as the shortest one.
interface HeapItem { at: number, entry: Entry }

interface Heap {
  push: (item: HeapItem) => void
  pop: () => HeapItem | undefined
  peek: () => HeapItem | undefined
  readonly size: number
}

function createHeap (): Heap {
  const items: HeapItem[] = []
  const at = (i: number): number => (items[i] as HeapItem).at
  function swap (i: number, j: number): void {
    const t = items[i] as HeapItem
    items[i] = items[j] as HeapItem
    items[j] = t
  }
  return {
    push (item) {
      items.push(item)
      let i = items.length - 1
      while (i > 0) {
        const parent = (i - 1) >> 1
        if (at(parent) <= at(i)) break
        swap(i, parent)
        i = parent
      }
    },
    pop () {
      const top = items[0]
      const last = items.pop()
      if (top === undefined || last === undefined || items.length === 0) return top
      items[0] = last
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        const r = l + 1
        let min = i
        if (l < items.length && at(l) < at(min)) min = l
        if (r < items.length && at(r) < at(min)) min = r
        if (min === i) break
        swap(i, min)
        i = min
      }
      return top
    },
    peek: () => items[0],
    get size () { return items.length }
  }
}

/** What createLiveness's methods share; the functions below take it as their first argument. */
interface Book {
  readonly misses: number
  readonly quietMs: number
  readonly byId: Map<string, Entry>
  readonly byEndpoint: Map<string, Set<Entry>>
  /** Endpoints whose connection is established (handshake seen, no disconnect since). */
  readonly open: Set<string>
  readonly heap: Heap
}

export function createLiveness (opts: LivenessOptions = {}): Liveness {
  const misses = opts.livenessMisses ?? LIVENESS_MISSES
  const quietMs = opts.disconnectQuietMs ?? DISCONNECT_QUIET_MS
  if (!Number.isInteger(misses) || misses < 1) throw new RangeError(`livenessMisses must be a positive integer, got ${misses}`)
  const b: Book = { misses, quietMs, byId: new Map(), byEndpoint: new Map(), open: new Set(), heap: createHeap() }
  const { byId, byEndpoint, open } = b

  return {
    assign (tasks, now) {
      const listed = new Set(tasks.map((t) => t.providerId))
      return update(b, tasks, [...byId.keys()].filter((id) => !listed.has(id)), now)
    },
    update: (tasks, removed, now) => update(b, tasks, removed, now),
    heartbeat: (providerId, now) => heartbeat(b, providerId, now),
    heard (providerId, from) {
      const e = byId.get(providerId)
      return e !== undefined && open.has(e.endpoint) && (from === undefined || from === e.endpoint)
    },
    connected (endpoint) {
      if (byEndpoint.has(endpoint)) open.add(endpoint)
    },
    closed (endpoint) {
      open.delete(endpoint)
    },
    disconnected (endpoint, now) {
      open.delete(endpoint)
      const out: Observation[] = []
      for (const e of byEndpoint.get(endpoint) ?? []) {
        if (e.state === 'up') out.push(goDown(e, 'disconnected', now))
      }
      return out
    },
    refused (endpoint, detail, now) {
      const out: Observation[] = []
      for (const e of byEndpoint.get(endpoint) ?? []) {
        if (e.state !== 'down') out.push(goDown(e, 'disconnected', now, detail))
      }
      return out
    },
    expire: (now) => expire(b, now),
    observations: () => [...byId.values()].map(observation),
    freshlySeen: () => freshlySeen(byId.values()),
    endpoints: () => new Set(byEndpoint.keys()),
    longestInterval: (endpoint) => {
      let longest = 0
      for (const e of byEndpoint.get(endpoint) ?? []) longest = Math.max(longest, e.intervalMs)
      return longest
    },
    nextDeadline: () => b.heap.peek()?.at ?? null,
    has: (providerId) => byId.has(providerId),
    get size () { return byId.size }
  }
}

function observation (e: Entry): Observation {
  const obs: Observation = { providerId: e.providerId, state: e.state, lastSeen: e.lastSeen }
  if (e.state === 'down' && e.reason !== undefined) obs.reason = e.reason
  if (e.state === 'down' && e.detail !== undefined) obs.detail = e.detail
  return obs
}

/** Makes sure the heap holds a key ≤ `at` for `e`: the invariant expire() relies on. */
function arm (b: Book, e: Entry, at: number): void {
  if (e.armedAt !== null && e.armedAt <= at) return
  e.armedAt = at
  b.heap.push({ at, entry: e })
}

/** The takeover grace (protocol README §7): silence is counted from the later of
 *  the last heartbeat anyone saw and the moment this worker started watching, so a provider
 *  never goes down merely because its watcher changed (or the SUB is still joining). */
function rearm (b: Book, e: Entry, now: number): void {
  e.deadline = Math.max(e.lastSeen ?? now, now) + b.misses * e.intervalMs
  arm(b, e, e.deadline)
}

function attach (b: Book, e: Entry): void {
  let set = b.byEndpoint.get(e.endpoint)
  if (set === undefined) b.byEndpoint.set(e.endpoint, (set = new Set()))
  set.add(e)
}

function detach (b: Book, e: Entry): void {
  const set = b.byEndpoint.get(e.endpoint)
  if (set === undefined) return
  set.delete(e)
  if (set.size === 0) b.byEndpoint.delete(e.endpoint)
}

function goDown (e: Entry, reason: DownReason, now: number, detail?: string): Observation {
  e.state = 'down'
  e.reason = reason
  e.detail = detail
  e.downAt = now
  const obs = observation(e)
  if (e.lastSeen !== null) obs.detectedAfterMs = Math.max(0, Math.round(now - e.lastSeen))
  return obs
}

function update (b: Book, tasks: readonly Task[], removed: readonly string[], now: number): AssignOutcome {
  const outcome: AssignOutcome = { report: [], restarted: [], touched: new Set() }
  for (const id of removed) forget(b, id, outcome)
  for (const task of tasks) {
    const endpoint = task.heartbeat
    const kept = b.byId.get(task.providerId)
    // A provider now watched by a check (checks.ts) is no longer this book's.
    if (endpoint === undefined) { forget(b, task.providerId, outcome); continue }
    outcome.touched.add(endpoint)
    if (kept === undefined) { b.byId.set(task.providerId, added(b, task, endpoint, now)); continue }
    const before = kept.endpoint
    keep(b, kept, task, endpoint, now, outcome)
    outcome.touched.add(before)
    if (!b.byEndpoint.has(before)) b.open.delete(before)
  }
  return outcome
}

function forget (b: Book, providerId: string, outcome: AssignOutcome): void {
  const e = b.byId.get(providerId)
  if (e === undefined) return
  // Its heap items are dropped lazily when they come due.
  e.removed = true
  detach(b, e)
  b.byId.delete(providerId)
  outcome.touched.add(e.endpoint)
  if (!b.byEndpoint.has(e.endpoint)) b.open.delete(e.endpoint)
}

/** A provider new to this worker: it continues from the leader's state and lastSeen. */
function added (b: Book, task: Task, endpoint: string, now: number): Entry {
  const e: Entry = {
    providerId: task.providerId,
    endpoint,
    intervalMs: task.heartbeatIntervalMs,
    state: task.state,
    lastSeen: task.lastSeen,
    // The leader knows the task's lastSeen: only a later one is news.
    summarized: task.lastSeen,
    reason: undefined,
    detail: undefined,
    deadline: 0,
    armedAt: null,
    downAt: -Infinity,
    removed: false
  }
  attach(b, e)
  if (e.state === 'up') rearm(b, e, now)
  return e
}

/** A provider this worker already watches: its own view is kept, unless its endpoint moved. */
function keep (b: Book, kept: Entry, task: Task, endpoint: string, now: number, outcome: AssignOutcome): void {
  const moved = kept.endpoint !== endpoint
  const retimed = kept.intervalMs !== task.heartbeatIntervalMs
  kept.intervalMs = task.heartbeatIntervalMs
  if (moved) {
    // The leader made the provider pending for its new endpoint, where nothing has been
    // seen yet: start over from the task, so that the first heartbeat there is an `up`.
    detach(b, kept)
    kept.endpoint = endpoint
    attach(b, kept)
    kept.state = task.state
    kept.lastSeen = task.lastSeen
    kept.summarized = task.lastSeen
    kept.reason = undefined
    kept.detail = undefined
    if (kept.state === 'up') rearm(b, kept, now)
    outcome.restarted.push(task.providerId)
    return
  }
  // The provider learns its new interval at a moment we cannot know, so its silence is
  // counted afresh from now; at worst one detection is late by one period.
  if (retimed && kept.state === 'up') rearm(b, kept, now)
  // Our own view is fresher than the leader's: keep it, and tell the leader when it
  // differs (after maintenance, a new interval, or a report it has not committed yet).
  if (task.maintenance !== true && kept.state !== 'pending' && kept.state !== task.state) {
    outcome.report.push(observation(kept))
  }
}

function heartbeat (b: Book, providerId: string, now: number): Observation | null {
  const e = b.byId.get(providerId)
  if (e === undefined || !b.open.has(e.endpoint)) return null
  if (e.state === 'down' && e.reason === 'disconnected' && now - e.downAt < b.quietMs) return null
  e.lastSeen = now
  e.deadline = now + b.misses * e.intervalMs
  if (e.state === 'up') return null
  e.state = 'up'
  e.reason = undefined
  e.detail = undefined
  arm(b, e, e.deadline)
  return observation(e)
}

function expire (b: Book, now: number): Observation[] {
  const out: Observation[] = []
  const { heap } = b
  for (let top = heap.peek(); top !== undefined && top.at <= now; top = heap.peek()) {
    heap.pop()
    const e = top.entry
    if (e.armedAt !== top.at) continue // a later duplicate; the earlier key was handled
    e.armedAt = null
    if (e.removed || e.state !== 'up') continue
    // `now >= deadline`: the silence has lasted the full misses × interval, not a ms less.
    if (e.deadline <= now) out.push(goDown(e, 'silent', now))
    else arm(b, e, e.deadline)
  }
  return out
}

/** The summary rule shared with checks.ts: `up` entries whose lastSeen moved since the last
 *  summary, each marked as summarized. A scan of every entry, ~0.1 ms for 10,000 providers at
 *  two summaries a second, which is cheaper than keeping a dirty set per heartbeat. */
export function freshlySeen (entries: Iterable<{ providerId: string, state: WatchState, lastSeen: number | null, summarized: number | null }>): Seen[] {
  const out: Seen[] = []
  for (const e of entries) {
    if (e.state !== 'up' || e.lastSeen === null || e.lastSeen === e.summarized) continue
    e.summarized = e.lastSeen
    out.push([e.providerId, e.lastSeen])
  }
  return out
}
