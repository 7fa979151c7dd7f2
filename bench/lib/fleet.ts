// Many heartbeating providers for the capacity and footprint benchmarks: hosted by bench/emitter.ts
// processes (never more than PER_PROCESS sockets each), registered with Roster over REST, and
// waited for until Roster's registry says they are all `up`. The detection benchmark needs
// per-provider processes to kill and keeps its own layout.
import { spawnEmitterProc, type EmitterProc, type Scripts } from './children.js'
import { sleep } from './processes.js'
import type { Registration } from './register.js'

/** libzmq's default context allows 1,023 sockets (ZMQ_MAX_SOCKETS), and the emitter uses the
 *  default context: 1,000 providers a process keeps clear of it. */
const PER_PROCESS = 1000
const ADDS_IN_FLIGHT = 50

export interface Fleet {
  procs: EmitterProc[]
  /** Provider id → its PUB endpoint. */
  endpoints: Map<string, string>
}

/** Starts ⌈ids / 1000⌉ emitter processes beating every `intervalMs` and binds one PUB per id. */
export async function startFleet (scripts: Scripts, ids: readonly string[], intervalMs: number, label: string): Promise<Fleet> {
  const chunks: string[][] = []
  for (let i = 0; i < ids.length; i += PER_PROCESS) chunks.push(ids.slice(i, i + PER_PROCESS))
  const procs = await Promise.all(chunks.map(async (_c, i) => await spawnEmitterProc(scripts, intervalMs, `${label}-${i}`)))
  const endpoints = new Map<string, string>()
  await Promise.all(chunks.map(async (chunk, i) => {
    const proc = procs[i] as EmitterProc
    // A few binds in flight per process: each reply must come within the line protocol's 5 s,
    // which 1,000 queued at once on a loaded machine did not.
    for (let j = 0; j < chunk.length; j += ADDS_IN_FLIGHT) {
      const part = chunk.slice(j, j + ADDS_IN_FLIGHT)
      const bound = await Promise.all(part.map(async (id) => await proc.add(id)))
      part.forEach((id, k) => endpoints.set(id, bound[k] as string))
    }
  }))
  return { procs, endpoints }
}

/** The registrations of a fleet's providers in `service` (heartbeat endpoint and interval). */
export function fleetRegistrations (service: string, fleet: Fleet, intervalMs: number): Registration[] {
  return [...fleet.endpoints].map(([id, endpoint]) => ({
    service,
    id,
    body: { host: '127.0.0.1', port: 8080, protocol: 'http', heartbeat: endpoint, heartbeatIntervalMs: intervalMs }
  }))
}

/** Resolves when GET /v1/services counts at least `up` providers up in `service`. */
export async function waitUp (url: string, service: string, up: number, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs
  let last = 0
  for (;;) {
    const res = await fetch(`${url}/v1/services`)
    const body = await res.json() as { services: Array<{ name: string, up: number }> }
    last = body.services.find((s) => s.name === service)?.up ?? 0
    if (last >= up) return
    if (performance.now() > deadline) {
      const list = await (await fetch(`${url}/v1/services/${service}/providers`)).json() as { providers: Array<{ state: string, reason?: string }> }
      const states: Record<string, number> = {}
      for (const pr of list.providers) { const k = `${pr.state}${pr.reason === undefined ? '' : ` (${pr.reason})`}`; states[k] = (states[k] ?? 0) + 1 }
      throw new Error(`only ${last} of ${up} providers of ${service} up after ${timeoutMs} ms; states: ${JSON.stringify(states)}`)
    }
    await sleep(250)
  }
}
