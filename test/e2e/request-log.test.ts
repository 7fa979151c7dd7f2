// Request logging by level (server/gateway/request-log.ts): at the default level `info` a
// gateway writes no line per request, whatever the request; at `debug` it writes Fastify's two
// lines for each; a 5xx is logged at error whatever the level. Real leader, real gateways, real
// HTTP; each gateway logs into its own capture.
import { Writable } from 'node:stream'
import { pino, type Logger } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startGateway, startLeader, type Stopper } from '../../server/roles.js'
import { silentLog } from '../../server/common/log.js'
import { freeLeaderEndpoint } from '../../harness/ports.js'
import { http, waitForLeader, waitForReady } from '../../harness/roster-process.js'
import { removeTestStorage, testStorage } from '../helpers/cluster.js'

interface Capture { lines: Array<Record<string, unknown>>, log: Logger }

function capture (level: string): Capture {
  const lines: Array<Record<string, unknown>> = []
  const log = pino({ level }, new Writable({
    write (chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n')) if (l !== '') lines.push(JSON.parse(l) as Record<string, unknown>)
      done()
    }
  }))
  return { lines, log }
}

const spec = { host: '127.0.0.1', port: 8080, protocol: 'http', heartbeat: 'tcp://127.0.0.1:9' }
const info = capture('info')
const debug = capture('debug')
let stoppers: Stopper[] = []
let atInfo: string
let atDebug: string

/** One of each kind of answer: a write (201), reads (200), an unknown route (404), a bad body (400). */
async function requests (url: string, id: string): Promise<number[]> {
  return [
    (await http('PUT', `${url}/v1/services/orders/providers/${id}`, spec)).status,
    (await http('GET', `${url}/v1/services/orders/providers/${id}`)).status,
    (await http('GET', `${url}/v1/services`)).status,
    (await http('GET', `${url}/v1/nowhere`)).status,
    (await http('PUT', `${url}/v1/services/orders/providers/${id}`, { ...spec, port: 'eighty' })).status
  ]
}

beforeAll(async () => {
  const storage = await testStorage('roster-request-log-')
  const bind = await freeLeaderEndpoint()
  stoppers.push(await startLeader({ ...storage, bind }, silentLog))
  for (const c of [info, debug]) {
    const g = await startGateway({ port: 0, host: '127.0.0.1', candidates: [bind] }, c.log)
    stoppers.push(g.stop)
    await waitForLeader(g.url)
    await waitForReady(g.url)
    if (c === info) atInfo = g.url
    else atDebug = g.url
  }
}, 60_000)

afterAll(async () => {
  for (const s of stoppers.reverse()) await s()
  stoppers = []
  await removeTestStorage()
})

describe('request logging', () => {
  it('writes no per-request line at info: only the audit line of the accepted write', async () => {
    const from = info.lines.length
    expect(await requests(atInfo, 'at-info')).toEqual([201, 200, 200, 404, 400])
    expect(info.lines.slice(from).map((l) => l.msg)).toEqual(['write accepted'])
  })

  it('writes an incoming and a completed line for every request at debug', async () => {
    const from = debug.lines.length
    expect(await requests(atDebug, 'at-debug')).toEqual([201, 200, 200, 404, 400])
    const lines = debug.lines.slice(from)
    const incoming = lines.filter((l) => l.msg === 'incoming request')
    const completed = lines.filter((l) => l.msg === 'request completed')
    expect(incoming.map((l) => (l.req as { method: string, url: string }).method)).toEqual(['PUT', 'GET', 'GET', 'GET', 'PUT'])
    expect(completed.map((l) => (l.res as { statusCode: number }).statusCode)).toEqual([201, 200, 200, 404, 400])
    // The same request id on both lines of each request.
    expect(completed.map((l) => l.reqId)).toEqual(incoming.map((l) => l.reqId))
    expect(lines.some((l) => l.msg === 'request rejected' && l.statusCode === 400)).toBe(true)
    expect(lines.some((l) => l.msg === 'write accepted')).toBe(true)
  })

  it('logs a failed request (5xx) at error at the default level', async () => {
    const lonely = capture('info')
    const g = await startGateway({ port: 0, host: '127.0.0.1', candidates: [await freeLeaderEndpoint()] }, lonely.log)
    try {
      expect((await http('PUT', `${g.url}/v1/services/orders/providers/no-leader`, spec)).status).toBe(503)
      const failed = lonely.lines.filter((l) => l.msg === 'request failed')
      expect(failed).toEqual([expect.objectContaining({ level: 50, role: 'gateway' })])
      expect(lonely.lines.some((l) => l.msg === 'incoming request' || l.msg === 'request completed')).toBe(false)
    } finally {
      await g.stop()
    }
  })
})
