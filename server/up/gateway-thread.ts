// What the gateway thread of `roster up` runs (server/up/threads.ts): the gateway, started from
// the configuration that the main thread validated (server/cli.ts), and stopped when the main
// thread says so: signals reach only the main thread, which stops the roles in order.
import { parentPort, workerData } from 'node:worker_threads'
import { parseAllowTargets } from '../protocol/targets.js'
import { createLog, type LogFormat } from '../common/log.js'
import { startGateway, type GatewayRoleConfig, type Stopper } from '../roles.js'

/** The thread's workerData: structured-cloned, so `--allow-targets` travels as its flag value. */
export interface GatewayThreadData {
  logLevel: string
  /** The main thread's --log-format and colour choice: a thread has no terminal of its own to ask. */
  logging: { format: LogFormat, colour: boolean }
  allowTargets: string | undefined
  gateway: Omit<GatewayRoleConfig, 'allowTargets'>
}

/** From the thread: the gateway listens at `url` and serves reads, or it has failed, to start
 *  or later, for `reason`. */
export type GatewayThreadMessage = { type: 'ready', url: string } | { type: 'failed', reason: string } | { type: 'metrics', id: number }

/** To the thread: stop, or the main thread's metrics text answering the request `id`. */
export type MainThreadMessage = 'stop' | { type: 'metrics', id: number, text: string }

/** A scrape waits this long for the main thread's text, then is served without it. */
const MAIN_METRICS_TIMEOUT_MS = 5_000

/** What a failure says: an error with a code (EADDRINUSE, ROSTER_ERR_…) names what is wrong;
 *  any other is a bug, whose stack is what helps. */
function reasonOf (err: unknown): string {
  const e = err as Error & { code?: unknown }
  return e.code === undefined ? (e.stack ?? String(err)) : e.message
}

if (parentPort === null) throw new Error('server/up/gateway-thread.ts runs only as a worker thread of `roster up`')
const port = parentPort
const data = workerData as GatewayThreadData
const post = (m: GatewayThreadMessage): void => port.postMessage(m)

// A failure is reported to the main thread, which stops every role in order, this one too; the
// thread is not left to die of it. Dying with ZeroMQ sockets open would abort the whole process
// (zeromq.js cannot tear a thread down while a socket still waits to receive), and the message
// naming the role would be lost.
process.on('uncaughtException', (err) => post({ type: 'failed', reason: reasonOf(err) }))
process.on('unhandledRejection', (err) => post({ type: 'failed', reason: reasonOf(err) }))

let stop: Stopper = async () => {}
/** GET /metrics's requests for the main thread's text, by id (the gateway coalesces scrapes, so
 *  there is about one at a time). */
const metricsWaiters = new Map<number, (text: string) => void>()
let metricsId = 0
const mainMetrics = async (): Promise<string> => await new Promise<string>((resolve) => {
  const id = ++metricsId
  const timer = setTimeout(() => { metricsWaiters.delete(id); resolve('') }, MAIN_METRICS_TIMEOUT_MS)
  metricsWaiters.set(id, (text) => { clearTimeout(timer); metricsWaiters.delete(id); resolve(text) })
  post({ type: 'metrics', id })
})
let stopping = false
port.on('message', async (m: MainThreadMessage) => {
  if (m !== 'stop') {
    metricsWaiters.get(m.id)?.(m.text)
    return
  }
  if (stopping) return
  stopping = true
  try {
    await stop()
  } catch (err) {
    post({ type: 'failed', reason: reasonOf(err) })
  }
  for (const resolve of metricsWaiters.values()) resolve('')
  // Nothing of the gateway is left: the thread ends once this port closes.
  port.close()
})
try {
  const gateway = await startGateway({ ...data.gateway, allowTargets: parseAllowTargets(data.allowTargets), metrics: { extra: mainMetrics } }, createLog({ level: data.logLevel, ...data.logging }))
  stop = gateway.stop
  await gateway.whenReady()
  post({ type: 'ready', url: gateway.url })
} catch (err) {
  // startGateway stops what it started before it throws.
  post({ type: 'failed', reason: reasonOf(err) })
}
