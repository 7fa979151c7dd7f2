// One probe run against real servers on loopback: an http GET (2xx healthy, anything else or
// silence a failure with a short detail) and a tcp connect (refused or not answered in time).
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http'
import { createServer as createTcpServer, type AddressInfo, type Server } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { runProbe } from '../../server/worker/probes.js'

const servers: Array<HttpServer | Server> = []
afterEach(async () => {
  for (const s of servers.splice(0)) {
    (s as HttpServer).closeAllConnections?.()
    await new Promise<void>((resolve) => s.close(() => resolve()))
  }
})

async function listen<S extends HttpServer | Server> (server: S): Promise<{ server: S, port: number }> {
  servers.push(server)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { server, port: (server.address() as AddressInfo).port }
}

/** A port nothing listens on: bound, read, then closed. */
async function closedPort (): Promise<number> {
  const s = createTcpServer()
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  const { port } = s.address() as AddressInfo
  await new Promise<void>((resolve) => s.close(() => resolve()))
  return port
}

describe('http probe', () => {
  it('is healthy on a 2xx, and fails with the status otherwise; it asks for the registered path', async () => {
    let status = 204
    const paths: string[] = []
    const { port } = await listen(createHttpServer((req, res) => { paths.push(req.url ?? ''); res.writeHead(status).end('x') }))
    const probe = { type: 'http' as const, host: '127.0.0.1', port, path: '/health?deep=1', intervalMs: 1000, timeoutMs: 500 }
    expect(await runProbe(probe)).toEqual({ ok: true })
    status = 503
    expect(await runProbe(probe)).toEqual({ ok: false, detail: 'HTTP 503' })
    status = 302
    expect(await runProbe(probe)).toEqual({ ok: false, detail: 'HTTP 302' })
    expect(paths).toEqual(['/health?deep=1', '/health?deep=1', '/health?deep=1'])
  })

  it('fails with the error code when nothing listens, and with a timeout when the answer is late', async () => {
    const port = await closedPort()
    expect(await runProbe({ type: 'http', host: '127.0.0.1', port, path: '/', intervalMs: 1000, timeoutMs: 500 }))
      .toEqual({ ok: false, detail: 'ECONNREFUSED' })
    const { port: slow } = await listen(createHttpServer(() => { /* never answers */ }))
    const started = Date.now()
    expect(await runProbe({ type: 'http', host: '127.0.0.1', port: slow, path: '/', intervalMs: 1000, timeoutMs: 150 }))
      .toEqual({ ok: false, detail: 'timeout after 150 ms' })
    expect(Date.now() - started).toBeGreaterThanOrEqual(140)
    expect(Date.now() - started).toBeLessThan(1000)
  })

  it('ends at once when aborted', async () => {
    const { port } = await listen(createHttpServer(() => {}))
    const ac = new AbortController()
    const run = runProbe({ type: 'http', host: '127.0.0.1', port, path: '/', intervalMs: 60_000, timeoutMs: 59_000 }, ac.signal)
    ac.abort()
    expect(await run).toEqual({ ok: false, detail: 'aborted' })
  })
})

describe('tcp probe', () => {
  it('is healthy when a connection is accepted, and fails with ECONNREFUSED when none is', async () => {
    const { port } = await listen(createTcpServer((socket) => socket.end()))
    const probe = { type: 'tcp' as const, host: '127.0.0.1', port, intervalMs: 1000, timeoutMs: 500 }
    expect(await runProbe(probe)).toEqual({ ok: true })
    expect(await runProbe({ ...probe, port: await closedPort() })).toEqual({ ok: false, detail: 'ECONNREFUSED' })
  })
})
