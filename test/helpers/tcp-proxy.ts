// A loopback TCP proxy that can cut a link and mend it: `blackhole()` keeps every connection
// open but silently drops the bytes in both directions (a partition, a half-open connection),
// `refuse()` resets every connection and refuses new ones (the far side stopped), `restore()`
// lets traffic through again, `close()` destroys everything. Used to prove that failures are
// detected and that both sides recover by themselves.
import net from 'node:net'

export interface TcpProxy {
  /** host:port to connect to instead of the target. */
  readonly host: string
  readonly port: number
  blackhole(): void
  refuse(): void
  /** Cuts some clients off and leaves the others' links alone: resets the connections whose
   *  client side has one of these (local) ports, and refuses new connections until restore(). */
  isolate(clientPorts: ReadonlySet<number>): void
  /** Ends a cut. Connections that lived through a blackhole lost bytes (their streams have
   *  holes that no protocol can parse across), so they are reset; new ones go through. */
  restore(): void
  close(): Promise<void>
}

const open = new Set<TcpProxy>()

/** Closes every proxy still open: for an afterEach, like killAllRoster and killAllEmitters. */
export async function closeAllProxies (): Promise<void> {
  for (const p of [...open]) await p.close()
}

export async function startTcpProxy (target: { host: string, port: number }, opts: { port?: number } = {}): Promise<TcpProxy> {
  const sockets = new Set<net.Socket>()
  const clients = new Set<net.Socket>()
  let mode: 'open' | 'blackhole' | 'refuse' = 'open'
  /** isolate(): new connections are refused while the links that survived it carry on. */
  let refusingNew = false

  const server = net.createServer((client) => {
    if (mode === 'refuse' || refusingNew) {
      client.resetAndDestroy()
      return
    }
    const upstream = net.connect(target.port, target.host)
    clients.add(client)
    client.on('close', () => clients.delete(client))
    for (const [from, to] of [[client, upstream], [upstream, client]] as const) {
      sockets.add(from)
      from.on('data', (chunk) => { if (mode === 'open') to.write(chunk) })
      from.on('error', () => { to.destroy() })
      from.on('close', () => {
        sockets.delete(from)
        // While blackholed a close must not reach the other side either.
        if (mode !== 'blackhole') to.destroy()
      })
    }
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(opts.port ?? 0, '127.0.0.1', resolve)
  })
  const address = server.address() as net.AddressInfo

  function resetAll (): void {
    for (const socket of sockets) socket.resetAndDestroy()
  }

  const proxy: TcpProxy = {
    host: '127.0.0.1',
    port: address.port,
    blackhole () { mode = 'blackhole' },
    refuse () {
      mode = 'refuse'
      resetAll()
    },
    isolate (clientPorts) {
      refusingNew = true
      for (const client of clients) if (clientPorts.has(client.remotePort ?? -1)) client.resetAndDestroy()
    },
    restore () {
      if (mode === 'blackhole') resetAll()
      mode = 'open'
      refusingNew = false
    },
    async close () {
      open.delete(proxy)
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve) => server.close(() => { resolve() }))
    }
  }
  open.add(proxy)
  return proxy
}

/** A proxy in front of the Postgres server of `databaseUrl`, and the same URL through it. */
export async function startPostgresProxy (databaseUrl: string): Promise<{ proxy: TcpProxy, url: string }> {
  const direct = new URL(databaseUrl)
  const proxy = await startTcpProxy({ host: direct.hostname, port: Number(direct.port || 5432) })
  const proxied = new URL(databaseUrl)
  proxied.port = String(proxy.port)
  return { proxy, url: proxied.toString() }
}
