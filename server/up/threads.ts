// `roster up` runs the gateway on a worker thread of its own, beside the leader and the worker on
// the main thread, so that the roles use two cores while sharing one process: one command, one
// log stream (every thread's pino writes to file descriptor 1), one Ctrl-C. The gateway is the
// role that keeps a core busy under load (HTTP, JSON, validation, the feed's fan-out); the
// leader mostly waits for Postgres and the worker for heartbeats. Each thread is a V8 heap with
// its modules: a thread for the worker too cost 15 MB more RSS at idle, for a role that needs
// little CPU. A child process per role would cost more still: every Node process pays for its
// own copy of Node (a bare `node` is about 40 MB of RSS).
//
// A gateway that fails (its start throws, an uncaught error, an exit nobody asked for) is not
// restarted: the caller takes the whole of `roster up` down with a message that names the role
// and the cause, after stopping the other roles in order. Restarting in place would hide a bug
// behind a loop, and whatever runs `roster up` (a terminal, systemd, an orchestrator) restarts a
// whole process better than a thread can be restarted inside one.
import { Worker } from 'node:worker_threads'
import type { Stopper } from '../roles.js'
import type { GatewayThreadData, GatewayThreadMessage, MainThreadMessage } from './gateway-thread.js'

/** The thread's entry: bin/roster.js bundles it as gateway-thread.js beside every other file of
 *  the bundle, which is the only way `roster up` runs. */
const ENTRY = new URL('./gateway-thread.js', import.meta.url)

/** The gateway's V8 young generation, in MB (V8's default lets it grow to 48): a request's
 *  garbage dies young, and a smaller nursery is collected sooner, while still in the CPU's
 *  caches. Measured against the default in the same runs (1,000 PUTs and 3,000 GETs at 16
 *  connections, load average 14–26): 10 MB less RSS idle, 30 MB less after the load, and no
 *  more process CPU per request (PUT 1.7–2.8 ms against 1.9–2.6 ms, GET 0.17–0.25 against
 *  0.23–0.35). */
const GATEWAY_YOUNG_GENERATION_MB = 8

export interface GatewayThread {
  /** Resolves with the gateway's URL once it serves, or with `null` if it failed first
   *  (onFailure has been called). */
  ready: Promise<string | null>
  /** Asks the gateway to stop as it would in-process and waits for its thread to end; rejects
   *  with what went wrong if it failed to stop. */
  stop: Stopper
}

/** Starts the gateway on a thread; `onFailure` is called at most once, with what went wrong, if
 *  it fails before it is asked to stop. `metrics` renders the main thread's metrics (leader,
 *  worker, process), which the gateway's GET /metrics asks for and serves after its own. */
export function startGatewayThread (data: GatewayThreadData, onFailure: (message: string) => void, metrics?: () => Promise<string>): GatewayThread {
  const thread = new Worker(ENTRY, { workerData: data, resourceLimits: { maxYoungGenerationSizeMb: GATEWAY_YOUNG_GENERATION_MB } })
  let stopRequested = false
  let failed = false
  let stopFailure: string | null = null
  let resolveReady: (url: string | null) => void = () => {}
  const ready = new Promise<string | null>((resolve) => { resolveReady = resolve })
  const exited = new Promise<void>((resolve) => thread.once('exit', () => resolve()))
  const fail = (reason: string): void => {
    if (stopRequested) {
      stopFailure ??= reason
      return
    }
    if (failed) return
    failed = true
    resolveReady(null)
    onFailure(`the gateway thread failed: ${reason}`)
  }
  thread.on('message', (m: GatewayThreadMessage) => {
    if (m.type === 'ready') resolveReady(m.url)
    else if (m.type === 'metrics') {
      // A failed render answers an empty text: the gateway's own metrics are still served.
      void (metrics?.() ?? Promise.resolve('')).catch(() => '').then((text) => {
        if (!stopRequested) thread.postMessage({ type: 'metrics', id: m.id, text } satisfies MainThreadMessage)
      })
    } else fail(m.reason)
  })
  // The thread reports its own failures (gateway-thread.ts); these are what it cannot report:
  // it ran out of memory, or died of an error thrown before its handlers were installed.
  thread.on('error', (err) => fail(err.stack ?? err.message))
  thread.on('exit', (code) => { if (!stopRequested) fail(`it exited with code ${code}`) })
  const stop = async (): Promise<void> => {
    if (stopRequested) return
    stopRequested = true
    thread.postMessage('stop')
    await exited
    if (stopFailure !== null) throw new Error(`the gateway thread failed to stop: ${stopFailure}`)
  }
  return { ready, stop }
}
