// Maps the address in a ZeroMQ monitor event back to the heartbeat endpoints the worker connected
// to. libzmq 4.3.5 (zeromq 6.8.0) reports a connecting socket's first connection under the
// endpoint exactly as given (`tcp://localhost:9100`), but every reconnection under the address it
// resolved, and with the `ipv6` option on, an IPv4 one in mapped form (`tcp://[::ffff:127.0.0.1]:9100`,
// even for a `tcp://127.0.0.1:9100` endpoint), so without this table every drop after the first
// would go unattributed. It owns only that table and the DNS lookups that fill it; it never connects.
import { lookup as dnsLookup } from 'node:dns/promises'
import { isIP } from 'node:net'
import type { Log } from '../shared/log.js'

export type LookupAll = (host: string) => Promise<Array<{ address: string, family: number }>>

export interface EndpointAliases {
  /** Starts answering for `endpoint`, and for the addresses its host resolves to. */
  add: (endpoint: string) => void
  remove: (endpoint: string) => void
  /** The watched endpoints a monitor event's `address` stands for (empty if none). */
  resolve: (address: string) => string[]
}

const TCP_ENDPOINT = /^tcp:\/\/(\[[^\]]+\]|[^:/]+):([0-9]{1,5})$/
const MAPPED_IPV4 = /^::ffff:([0-9]+\.[0-9]+\.[0-9]+\.[0-9]+)$/i

/** One spelling per address: IPv4-mapped IPv6 as plain IPv4, IPv6 canonical (`[0:0::1]` →
 *  `[::1]`, as inet_ntop prints it), anything else (a host name, a non-TCP string) unchanged. */
export function canonicalAddress (address: string): string {
  const m = TCP_ENDPOINT.exec(address)
  if (m === null) return address
  let host = m[1] as string
  const port = m[2] as string
  let bare = host.startsWith('[') ? host.slice(1, -1) : host
  bare = MAPPED_IPV4.exec(bare)?.[1] ?? bare
  const family = isIP(bare)
  if (family === 4) return `tcp://${bare}:${port}`
  if (family !== 6) return address
  try {
    host = new URL(`http://[${bare}]/`).hostname // WHATWG serialises IPv6 as RFC 5952 does
  } catch {
    return address // a scoped address (fe80::1%eth0) has no URL form; keep it as given
  }
  return `tcp://${host}:${port}`
}

export function createEndpointAliases (opts: { log: Log, lookup?: LookupAll }): EndpointAliases {
  const lookup: LookupAll = opts.lookup ?? ((host) => dnsLookup(host, { all: true, verbatim: true }))
  /** alias → endpoints; an endpoint is always an alias of itself. */
  const aliases = new Map<string, Set<string>>()
  /** endpoint → its aliases, and a token so a lookup that outlived a remove() is discarded. */
  const owned = new Map<string, { forms: Set<string>, token: object }>()

  function link (alias: string, endpoint: string, forms: Set<string>): void {
    let set = aliases.get(alias)
    if (set === undefined) aliases.set(alias, (set = new Set()))
    set.add(endpoint)
    forms.add(alias)
  }

  return {
    add (endpoint) {
      if (owned.has(endpoint)) return
      const entry = { forms: new Set<string>(), token: {} }
      owned.set(endpoint, entry)
      link(canonicalAddress(endpoint), endpoint, entry.forms)
      const m = TCP_ENDPOINT.exec(endpoint)
      const host = m?.[1]
      const port = m?.[2]
      if (host === undefined || port === undefined || host.startsWith('[') || isIP(host) !== 0) return
      lookup(host).then(
        (addrs) => {
          if (owned.get(endpoint)?.token !== entry.token) return
          for (const { address, family } of addrs) {
            link(canonicalAddress(`tcp://${family === 6 ? `[${address}]` : address}:${port}`), endpoint, entry.forms)
          }
        },
        // libzmq resolves on its own and will keep retrying; only a reconnection's drop would
        // go unattributed, and the silence rule still catches that provider.
        (err: unknown) => opts.log.warn({ endpoint, err }, 'could not resolve a heartbeat host; its reconnections will be detected by silence only')
      )
    },

    remove (endpoint) {
      const entry = owned.get(endpoint)
      if (entry === undefined) return
      owned.delete(endpoint)
      for (const alias of entry.forms) {
        const set = aliases.get(alias)
        set?.delete(endpoint)
        if (set?.size === 0) aliases.delete(alias)
      }
    },

    resolve (address) {
      return [...(aliases.get(canonicalAddress(address)) ?? [])]
    }
  }
}
