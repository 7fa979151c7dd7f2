// Endpoint conventions shared by the roles: the leader's event PUB binds the address after its
// ROUTER, so followers need only the ROUTER endpoints (`--leader`) to find both.
import { endpointPort } from './model.js'

/** The PUB beside a ROUTER endpoint: tcp://HOST:PORT → tcp://HOST:PORT+1, and for the ipc
 *  endpoints of `roster up` (server/up/local-endpoint.ts) ipc://PATH → ipc://PATH.events. */
export function pubEndpoint (routerEndpoint: string): string {
  if (routerEndpoint.startsWith('ipc://')) return `${routerEndpoint}.events`
  const host = routerEndpoint.slice(0, routerEndpoint.lastIndexOf(':'))
  return `${host}:${endpointPort(routerEndpoint) + 1}`
}

/** Checks a `tcp://host:port` flag value, with a message that names the flag. */
export function parseTcpEndpoint (value: string, flag: string): string {
  const m = /^tcp:\/\/(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):([0-9]{1,5})$/.exec(value)
  const port = Number(m?.[2])
  if (m === null || port < 1 || port > 65534) {
    throw new Error(`${flag} must be tcp://HOST:PORT with PORT 1–65534 (the next port carries events), got ${JSON.stringify(value)}`)
  }
  return value
}

/** Whether `host` (a --host or --bind host, brackets allowed) is a loopback address: only this
 *  machine can connect, which is what lets a gateway run without auth and a leader without keys. */
export function isLoopbackHost (host: string): boolean {
  const h = host.toLowerCase().replace(/^\[(.*)\]$/, '$1')
  return h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h)
}
