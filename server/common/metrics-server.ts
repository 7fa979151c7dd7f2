// The `--metrics-port` listener of `roster leader` and `roster worker`: a bare node:http server
// that answers GET /metrics with the process's metrics text and nothing else. It starts only
// when the flag is given, binds loopback unless --metrics-host says otherwise, and has no auth
// of its own (like etcd's --listen-metrics-urls): expose it beyond the machine only to your
// Prometheus. It must never serve anything but the metrics, nor keep a slow client for long.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { METRICS_CONTENT_TYPE } from './metrics.js'

/** A Prometheus server or two and an operator's curl: a few connections; beyond, new ones are
 *  closed as soon as they are accepted. */
const MAX_CONNECTIONS = 16
/** A scrape is one short GET: its headers come at once, and a whole request takes milliseconds. */
const HEADERS_TIMEOUT_MS = 5_000
const REQUEST_TIMEOUT_MS = 10_000

export interface MetricsServer { url: string, stop: () => Promise<void> }

export async function serveMetrics (host: string, port: number, render: () => Promise<string>): Promise<MetricsServer> {
  // Scrapes that arrive while one renders share its text.
  let rendering: Promise<string> | null = null
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const path = (req.url ?? '').split('?')[0]
    if (path !== '/metrics') return answer(res, 404, 'not found: this listener serves only GET /metrics\n')
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD')
      return answer(res, 405, `method ${req.method ?? ''} not allowed: GET /metrics\n`)
    }
    rendering ??= render().finally(() => { rendering = null })
    rendering.then(
      (text) => {
        res.writeHead(200, { 'Content-Type': METRICS_CONTENT_TYPE, 'Content-Length': Buffer.byteLength(text) })
        res.end(req.method === 'HEAD' ? undefined : text)
      },
      // A collector failed: a bug, but the listener keeps serving; the scrape sees 500.
      (err: Error) => answer(res, 500, `metrics failed: ${err.message}\n`)
    )
  }
  const server = createServer({ headersTimeout: HEADERS_TIMEOUT_MS, requestTimeout: REQUEST_TIMEOUT_MS }, handle)
  server.maxConnections = MAX_CONNECTIONS
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => { server.off('error', reject); resolve() })
  })
  const address = server.address() as AddressInfo
  const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address
  return {
    url: `http://${shownHost}:${address.port}/metrics`,
    stop: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}

function answer (res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text) })
  res.end(text)
}
