// Free loopback TCP ports for processes a test or a tool starts (a gateway's --port, a leader's
// --bind and its PUB at PORT+1, a provider's heartbeat endpoint), for the tests and for the tools
// that run outside vitest (chaos/, bench/).
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'

async function portIsFree (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const srv = createServer()
    srv.once('error', () => resolve(false))
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)))
  })
}

/** The first port of the kernel's ephemeral range: outgoing connections take ports from there
 *  at any moment, so a port chosen inside it can be gone by the time a child process binds it. */
function ephemeralLow (): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0])
    return Number.isInteger(low) && low > 21_000 ? low : 32_768
  } catch {
    return 32_768
  }
}

/** A TCP port on 127.0.0.1 that is free right now (for a gateway's --port), below the
 *  ephemeral range. Another process may still take it before it is bound: callers that start
 *  a child on it should retry on EADDRINUSE. */
export async function freePort (): Promise<number> {
  const span = ephemeralLow() - 20_000
  for (let i = 0; i < 200; i++) {
    const port = 20_000 + Math.floor(Math.random() * span)
    if (await portIsFree(port)) return port
  }
  throw new Error('no free port found')
}

/** Like freeLeaderEndpoint, but below the ephemeral port range (see freePort), so that an
 *  outgoing connection cannot take the port before the leader binds it. */
export async function freeLeaderBind (): Promise<string> {
  const span = ephemeralLow() - 1 - 20_000
  for (let i = 0; i < 200; i++) {
    const port = 20_000 + Math.floor(Math.random() * span)
    if (await portIsFree(port) && await portIsFree(port + 1)) return `tcp://127.0.0.1:${port}`
  }
  throw new Error('no free port pair found')
}

/** A leader endpoint whose port and port + 1 (the event PUB) are both free right now; below the
 *  ephemeral range, like freeLeaderBind. */
export async function freeLeaderEndpoint (): Promise<string> {
  return await freeLeaderBind()
}

/** Two leader endpoints (standbys of one another) whose port pairs (ROUTER, PUB) do not overlap. */
export async function twoLeaderBinds (): Promise<[string, string]> {
  const port = (endpoint: string): number => Number(endpoint.slice(endpoint.lastIndexOf(':') + 1))
  const a = await freeLeaderBind()
  for (let i = 0; i < 20; i++) {
    const b = await freeLeaderBind()
    if (Math.abs(port(b) - port(a)) > 1) return [a, b]
  }
  throw new Error('no second leader endpoint found')
}

/** The port of a `tcp://HOST:PORT` endpoint. */
export function portOf (endpoint: string): number {
  return Number(endpoint.slice(endpoint.lastIndexOf(':') + 1))
}
