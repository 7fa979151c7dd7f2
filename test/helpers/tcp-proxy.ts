// A loopback TCP proxy that can cut a link without telling either side: `blackhole()` keeps every
// connection open but silently drops the bytes in both directions (a partition, a half-open
// connection), `close()` destroys everything. Used to prove that silent failures are detected.
import net from 'node:net'

export interface TcpProxy {
  /** host:port to connect to instead of the target. */
  readonly host: string
  readonly port: number
  blackhole(): void
  close(): Promise<void>
}

export async function startTcpProxy (target: { host: string, port: number }): Promise<TcpProxy> {
  const sockets = new Set<net.Socket>()
  let dropping = false

  const server = net.createServer((client) => {
    const upstream = net.connect(target.port, target.host)
    for (const [from, to] of [[client, upstream], [upstream, client]] as const) {
      sockets.add(from)
      from.on('data', (chunk) => { if (!dropping) to.write(chunk) })
      from.on('error', () => { to.destroy() })
      from.on('close', () => {
        sockets.delete(from)
        // While blackholed a close must not reach the other side either.
        if (!dropping) to.destroy()
      })
    }
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', resolve)
  })
  const address = server.address() as net.AddressInfo

  return {
    host: '127.0.0.1',
    port: address.port,
    blackhole () { dropping = true },
    async close () {
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve) => server.close(() => { resolve() }))
    }
  }
}
