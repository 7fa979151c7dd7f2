// The worker's Prometheus metrics, on a registry of its own (common/metrics.ts), all read at
// scrape time from the counts the worker keeps anyway (worker.ts WorkerStats): its tasks, the
// heartbeats and checks it saw, the bad frames it dropped, its reports to the leader. Nothing
// is labelled with a provider id or an endpoint.
import type { Registry } from 'prom-client'
import { counterFrom, createRoleRegistry, gaugeFrom } from '../common/metrics.js'
import type { Worker } from './worker.js'

export function createWorkerMetrics (worker: Worker): Registry {
  const registry = createRoleRegistry('worker')
  const s = worker.stats
  gaugeFrom(registry, 'roster_worker_tasks', 'providers this worker watches (heartbeats and http/tcp checks)', () => s.watching)
  gaugeFrom(registry, 'roster_worker_heartbeat_connections', 'established connections to providers\' heartbeat endpoints', () => s.endpoints)
  gaugeFrom(registry, 'roster_worker_unacked_observations', 'observations reported to the leader and not yet acknowledged', () => s.unacked)
  counterFrom(registry, 'roster_worker_heartbeats_received_total', 'well-formed heartbeats from providers this worker watches', () => s.heartbeats)
  counterFrom(registry, 'roster_worker_heartbeats_ignored_total', 'well-formed heartbeats not counted, by why',
    ['reason'], () => [[{ reason: 'unknown-provider' }, s.unknownProviders], [{ reason: 'unconnected' }, s.unconnectedHeartbeats]])
  counterFrom(registry, 'roster_worker_checks_total', 'http/tcp check runs finished', () => s.probes)
  counterFrom(registry, 'roster_worker_checks_failed_total', 'http/tcp check runs that failed', () => s.probeFailures)
  counterFrom(registry, 'roster_worker_bad_frames_total', 'malformed messages dropped, by socket: heartbeat (from providers) or leader',
    ['socket'], () => [[{ socket: 'heartbeat' }, s.badFrames], [{ socket: 'leader' }, s.leaderBadFrames]])
  counterFrom(registry, 'roster_worker_transitions_total', 'provider state changes this worker observed', () => s.transitions)
  counterFrom(registry, 'roster_worker_reports_sent_total', 'REPORT messages sent to the leader (resends included)', () => s.reportsSent)
  counterFrom(registry, 'roster_worker_heartbeat_connects_total', 'handshakes completed with providers\' heartbeat endpoints', () => s.connects)
  counterFrom(registry, 'roster_worker_heartbeat_disconnects_total', 'heartbeat connections that dropped', () => s.disconnects)
  counterFrom(registry, 'roster_worker_leader_failovers_total', 'times this worker moved to another leader candidate', () => s.failovers)
  counterFrom(registry, 'roster_worker_assigns_lost_total', 'ASSIGNs from the leader found missing; each makes the worker ask for its complete task list', () => s.lostAssigns)
  return registry
}
