// What every role's Prometheus metrics share: one prom-client Registry per role instance (never
// the global default registry: `roster up` runs three roles in one process, the gateway on a
// thread of its own), labelled with the role, and the text that a scrape answers. Each role's
// own metrics module (leader/metrics.ts, worker/metrics.ts, gateway/metrics.ts) reads the
// counters the role already keeps (its `stats`) at scrape time; nothing here does I/O.
//
// Cardinality: no metric here or in the role modules is labelled with a provider id, a worker
// id, a token or a raw URL; the only open-ended label is `service`, on one gauge, bounded by the
// leader's quotas. A scrape therefore costs the same with 10 or 100,000 providers.
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client'

export type MetricsRole = 'leader' | 'worker' | 'gateway'

/** The Prometheus text format, version 0.0.4 (what every Prometheus scrapes). */
export const METRICS_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE

/** A registry whose every series carries `role`, so that series of roles served together
 *  (`roster up`) can be told apart in queries as well as by their `roster_<role>_` prefix. */
export function createRoleRegistry (role: MetricsRole): Registry {
  const registry = new Registry()
  registry.setDefaultLabels({ role })
  return registry
}

/** prom-client's process metrics (CPU, resident memory, open files, event-loop lag, heap,
 *  GC), without a role label: one set per process. In `roster up` the heap and event-loop
 *  figures are the main thread's (leader and worker); the gateway thread's are not collected. */
export function createProcessRegistry (): Registry {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  return registry
}

/** The scrape's text: the registries one after the other. Their metric names never overlap
 *  (each role's begin with roster_<role>_, process metrics are in one registry only), so the
 *  concatenation is one valid exposition. */
export async function renderMetrics (registries: readonly Registry[]): Promise<string> {
  const parts = await Promise.all(registries.map(async (r) => await r.metrics()))
  return parts.filter((p) => p.length > 0).map((p) => p.endsWith('\n') ? p : `${p}\n`).join('')
}

type LabelValues = Record<string, string>

/**
 * A counter whose value is read, at scrape time, from a count the role keeps anyway (a `stats`
 * field): the role's code stays as it is, and the counter is exactly as monotonic as the count.
 * `read` returns a number, or one number per label set.
 */
export function counterFrom (registry: Registry, name: string, help: string, read: () => number): Counter
export function counterFrom (registry: Registry, name: string, help: string, labelNames: readonly string[], read: () => Array<[LabelValues, number]>): Counter
export function counterFrom (registry: Registry, name: string, help: string, a: readonly string[] | (() => number), b?: () => Array<[LabelValues, number]>): Counter {
  const labelNames = typeof a === 'function' ? [] : a
  return new Counter({
    name,
    help,
    labelNames,
    registers: [registry],
    collect () {
      this.reset()
      if (typeof a === 'function') this.inc(a())
      else for (const [labels, value] of (b as () => Array<[LabelValues, number]>)()) this.inc(labels, value)
    }
  })
}

/** A gauge set at scrape time from the role's current state. */
export function gaugeFrom (registry: Registry, name: string, help: string, read: () => number): Gauge
export function gaugeFrom (registry: Registry, name: string, help: string, labelNames: readonly string[], read: () => Array<[LabelValues, number]>): Gauge
export function gaugeFrom (registry: Registry, name: string, help: string, a: readonly string[] | (() => number), b?: () => Array<[LabelValues, number]>): Gauge {
  const labelNames = typeof a === 'function' ? [] : a
  return new Gauge({
    name,
    help,
    labelNames,
    registers: [registry],
    collect () {
      if (typeof a === 'function') {
        this.set(a())
        return
      }
      // Label sets that vanished (a service whose last provider left) must not linger.
      this.reset()
      for (const [labels, value] of (b as () => Array<[LabelValues, number]>)()) this.set(labels, value)
    }
  })
}
