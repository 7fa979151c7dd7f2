// The worker's bookkeeping for providers watched through an http or tcp check instead of a
// heartbeat: for each one its probe, its state and its last success, and which probe run is
// current. Pure: no I/O, no timers, time comes in as numbers, so the rules are tested with a
// fake clock; probe-loops.ts runs the probes (probes.ts) on their timers. It must never let the
// result of a probe that belongs to a previous assignment decide anything.
import type { Observation, Probe, Seen, Task } from '../protocol/messages.js'
import { freshlySeen } from './liveness.js'

/** One failed run makes a provider `down`, one success makes it `up` again: detection within one
 *  interval plus the timeout, like a dropped heartbeat connection, rather than Consul's usual
 *  three. A provider whose check fails intermittently is caught by the leader's flap damping,
 *  which holds it down instead of publishing every bounce. */
export const CHECK_FAILURES_TO_DOWN = 1

export type ProbeOutcome = { ok: true } | { ok: false, detail: string }

/** A probe run to start: the shell runs `probe` and hands its outcome back with `generation`. */
export interface ProbeJob { providerId: string, probe: Probe, generation: number }

export interface CheckAssignOutcome {
  /** New providers and providers whose probe changed: start probing them now. */
  start: ProbeJob[]
  /** Providers no longer probed here (removed, or their probe changed): stop their timers. */
  stop: string[]
  /** Kept providers whose state here differs from the task's (see liveness.ts AssignOutcome). */
  report: Observation[]
}

export interface CheckBook {
  /** Replaces the probed set with the tasks that carry a check. */
  assign: (tasks: readonly Task[]) => CheckAssignOutcome
  /** Changes the probed set by a delta ASSIGN: `tasks` are added or replace the provider's,
   *  `removed` are dropped (liveness.ts update). */
  update: (tasks: readonly Task[], removed: readonly string[]) => CheckAssignOutcome
  /** The outcome of a probe run that finished at `now`: the transition it causes, or null (no
   *  change, or a run of a previous generation, whose result is dropped). */
  result: (providerId: string, generation: number, outcome: ProbeOutcome, now: number) => Observation | null
  /** Whether `generation` is still the provider's current one (its probe loop should go on). */
  current: (providerId: string, generation: number) => boolean
  observations: () => Observation[]
  /** `[id, lastSeen]` of every `up` provider whose last success moved since the previous call
   *  (liveness.ts freshlySeen). */
  freshlySeen: () => Seen[]
  /** A probe job for every provider, for restarting the probe loops after a stop/start. */
  jobs: () => ProbeJob[]
  has: (providerId: string) => boolean
  readonly size: number
}

interface Entry {
  readonly providerId: string
  probe: Probe
  key: string
  generation: number
  state: Observation['state']
  lastSeen: number | null
  summarized: number | null
  detail: string | undefined
  failures: number
}

export function createCheckBook (): CheckBook {
  const byId = new Map<string, Entry>()
  let generations = 0

  function observation (e: Entry): Observation {
    const obs: Observation = { providerId: e.providerId, state: e.state, lastSeen: e.lastSeen }
    if (e.state === 'down') {
      obs.reason = 'check-failed'
      if (e.detail !== undefined) obs.detail = e.detail
    }
    return obs
  }

  function update (tasks: readonly Task[], removed: readonly string[]): CheckAssignOutcome {
    const out: CheckAssignOutcome = { start: [], stop: [], report: [] }
    const drop = (id: string): void => { if (byId.delete(id)) out.stop.push(id) }
    for (const id of removed) drop(id)
    for (const task of tasks) {
      const probe = task.check
      // A provider now watched by its heartbeat (liveness.ts) is no longer probed.
      if (probe === undefined) { drop(task.providerId); continue }
      const key = JSON.stringify(probe)
      const kept = byId.get(task.providerId)
      if (kept !== undefined && kept.key === key) {
        if (task.maintenance !== true && kept.state !== 'pending' && kept.state !== task.state) out.report.push(observation(kept))
        continue
      }
      // A new provider, or a changed check (the leader made it pending): start from the task.
      drop(task.providerId)
      const e: Entry = {
        providerId: task.providerId,
        probe,
        key,
        generation: ++generations,
        state: task.state,
        lastSeen: task.lastSeen,
        summarized: task.lastSeen,
        detail: undefined,
        failures: 0
      }
      byId.set(task.providerId, e)
      out.start.push({ providerId: e.providerId, probe, generation: e.generation })
    }
    return out
  }

  return {
    assign (tasks) {
      const listed = new Set(tasks.map((t) => t.providerId))
      return update(tasks, [...byId.keys()].filter((id) => !listed.has(id)))
    },
    update,

    result (providerId, generation, outcome, now) {
      const e = byId.get(providerId)
      if (e === undefined || e.generation !== generation) return null
      if (outcome.ok) {
        e.lastSeen = now
        e.failures = 0
        if (e.state === 'up') return null
        e.state = 'up'
        e.detail = undefined
        return observation(e)
      }
      e.failures++
      if (e.state === 'down' || e.failures < CHECK_FAILURES_TO_DOWN) return null
      e.state = 'down'
      e.detail = outcome.detail
      const obs = observation(e)
      if (e.lastSeen !== null) obs.detectedAfterMs = Math.max(0, Math.round(now - e.lastSeen))
      return obs
    },

    current: (providerId, generation) => byId.get(providerId)?.generation === generation,
    observations: () => [...byId.values()].map(observation),
    freshlySeen: () => freshlySeen(byId.values()),
    jobs: () => [...byId.values()].map((e) => ({ providerId: e.providerId, probe: e.probe, generation: e.generation })),
    has: (providerId) => byId.has(providerId),
    get size () { return byId.size }
  }
}
