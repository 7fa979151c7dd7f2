// The leader's Prometheus metrics, on a registry of its own (common/metrics.ts): whether this
// process is the active leader, its epoch and takeovers, the workers and their load, and per
// commit the batch size, the events published and how long after the last good news each
// provider was declared down. Counters and gauges are read from the leader at scrape time; the
// histograms are fed by the leader's onCommitted. It never labels a series with a provider or
// worker id.
import { Histogram, type Registry } from 'prom-client'
import { counterFrom, createRoleRegistry, gaugeFrom } from '../common/metrics.js'
import type { Change } from '../protocol/model.js'
import type { Leader } from './leader.js'

/** Down reasons a detection is labelled with (protocol/model.ts Provider.reason); anything else
 *  is `other`, so that the label stays a closed set whatever a future reason is. */
const DOWN_REASONS = new Set(['disconnected', 'silent', 'check-failed', 'ttl-expired', 'flapping'])

/** Seconds, from 5 ms (a killed process: its TCP connection closes) through 3 × 50 ms (the
 *  shortest silence) to a minute (three intervals of the longest usual heartbeat or check). */
const DETECTION_BUCKETS_S = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]
/** Changes per commit: 1 when idle, up to term.ts MAX_BATCH (500) under load. */
const BATCH_BUCKETS = [1, 2, 5, 10, 25, 50, 100, 250, 500]

export function createLeaderMetrics (leader: Leader): Registry {
  const registry = createRoleRegistry('leader')
  gaugeFrom(registry, 'roster_leader_active', '1 while this process is the active leader, 0 while it is a standby or stopped', () => leader.term === null ? 0 : 1)
  gaugeFrom(registry, 'roster_leader_epoch', 'the epoch (fencing term) of the active leader; 0 while not active', () => leader.term?.epoch ?? 0)
  counterFrom(registry, 'roster_leader_takeovers_total', 'terms this process began as the active leader', () => leader.stats.takeovers)
  gaugeFrom(registry, 'roster_leader_workers', 'workers in the assignment (READY in this term and alive)', () => leader.term?.tasksPerWorker().length ?? 0)
  // Tasks per worker without a worker label: the count of workers, the sum, the extremes, from
  // which an alert sees an empty or overloaded worker; each worker's own count is its
  // roster_worker_tasks.
  gaugeFrom(registry, 'roster_leader_worker_tasks', 'tasks (watched providers) per worker in the assignment: min and max over the workers, and the sum',
    ['stat'], () => {
      const tasks = leader.term?.tasksPerWorker() ?? []
      if (tasks.length === 0) return [[{ stat: 'sum' }, 0]]
      return [[{ stat: 'min' }, Math.min(...tasks)], [{ stat: 'max' }, Math.max(...tasks)], [{ stat: 'sum' }, tasks.reduce((a, b) => a + b, 0)]]
    })
  counterFrom(registry, 'roster_leader_commits_total', 'transactions committed with at least one change', () => leader.stats.commits)
  counterFrom(registry, 'roster_leader_events_published_total', 'changes committed and then published on the event feed', () => leader.stats.changes)
  counterFrom(registry, 'roster_leader_unstorable_total', 'writes or observations the database refused for their data', () => leader.stats.unstorable)
  counterFrom(registry, 'roster_leader_bad_frames_total', 'malformed messages dropped, by socket', ['socket'], () => [[{ socket: 'router' }, leader.stats.badFrames]])
  const batch = new Histogram({ name: 'roster_leader_commit_batch_size', help: 'changes stored per commit', buckets: BATCH_BUCKETS, registers: [registry] })
  const detection = new Histogram({
    name: 'roster_leader_detection_seconds',
    help: 'on each down: seconds from the provider\'s last heartbeat, check success or renewal to the decision (detectedAfterMs), by reason',
    labelNames: ['reason'],
    buckets: DETECTION_BUCKETS_S,
    registers: [registry]
  })
  leader.onCommitted((changes: readonly Change[]) => {
    batch.observe(changes.length)
    for (const { event, provider } of changes) {
      if (event !== 'down' || provider.detectedAfterMs === undefined) continue
      const reason = provider.reason !== undefined && DOWN_REASONS.has(provider.reason) ? provider.reason : 'other'
      detection.observe({ reason }, provider.detectedAfterMs / 1000)
    }
  })
  return registry
}
