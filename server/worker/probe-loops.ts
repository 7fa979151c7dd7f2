// The loops that run the worker's http/tcp checks: one timer per checked provider, and the runs
// in flight (probes.ts). It owns those timers and runs; checks.ts decides what an outcome means.
// It must never let a run that outlived its assignment, or the worker's stop, decide anything.
import type { AllowedTargets } from '../protocol/targets.js'
import type { Observation } from '../protocol/messages.js'
import type { Log } from '../common/log.js'
import type { CheckBook, ProbeJob } from './checks.js'
import { runProbe } from './probes.js'

export interface ProbeLoopsOptions {
  checks: CheckBook
  allow: AllowedTargets | null
  log: Log
  clock: () => number
  /** A run's outcome made a provider change state. */
  onTransition: (obs: Observation) => void
}

export interface ProbeLoops {
  /** Lets loops run (the worker started); until then, and after close(), start() does nothing. */
  open: () => void
  /** Runs the job's probe after `delayMs`, then again every interval (counted from each run's
   *  start; a run always ends within its timeout, which is below the interval) for as long as
   *  its generation is current. Replaces the provider's pending run. */
  start: (job: ProbeJob, delayMs: number) => void
  stop: (providerId: string) => void
  /** Stops every loop and ends the runs in flight. */
  close: () => void
  readonly stats: { readonly probes: number, readonly probeFailures: number }
}

export function createProbeLoops (opts: ProbeLoopsOptions): ProbeLoops {
  const { checks, log, clock } = opts
  /** The pending timer of each checked provider's next run (absent while one runs). */
  const timers = new Map<string, NodeJS.Timeout>()
  /** Ends the runs in flight when the loops close; a fresh one at each open. */
  let abort = new AbortController()
  let running = false
  const stats = { probes: 0, probeFailures: 0 }

  function start (job: ProbeJob, delayMs: number): void {
    if (!running) return
    stop(job.providerId)
    timers.set(job.providerId, setTimeout(() => {
      timers.delete(job.providerId)
      runOnce(job).catch((err: unknown) => {
        log.error({ err, providerId: job.providerId }, 'check run failed; retrying at its next interval')
        if (running && checks.current(job.providerId, job.generation)) start(job, job.probe.intervalMs)
      })
    }, delayMs))
  }

  function stop (providerId: string): void {
    const timer = timers.get(providerId)
    if (timer !== undefined) clearTimeout(timer)
    timers.delete(providerId)
  }

  async function runOnce (job: ProbeJob): Promise<void> {
    if (!running || !checks.current(job.providerId, job.generation)) return
    const startedAt = clock()
    const { signal } = abort
    const outcome = await runProbe(job.probe, signal, opts.allow)
    // Race: the task may have been removed or changed, or the worker stopped (even restarted),
    // while the probe ran; such a result decides nothing, and nothing is rescheduled.
    if (!running || signal.aborted || !checks.current(job.providerId, job.generation)) return
    stats.probes++
    if (!outcome.ok) stats.probeFailures++
    const obs = checks.result(job.providerId, job.generation, outcome, clock())
    if (obs !== null) opts.onTransition(obs)
    start(job, Math.max(0, startedAt + job.probe.intervalMs - clock()))
  }

  return {
    open () {
      running = true
      abort = new AbortController()
    },
    start,
    stop,
    close () {
      running = false
      for (const timer of timers.values()) clearTimeout(timer)
      timers.clear()
      abort.abort()
    },
    stats
  }
}
