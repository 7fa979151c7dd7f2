// Where Roster may connect on a provider's behalf: the one rule, shared by the gateway (which
// checks a registration's heartbeat endpoint and check target) and the worker (which checks
// again before it connects, because a name may resolve elsewhere by then). Pure: it parses
// `--allow-targets` and matches addresses that the callers have already resolved; lookups are
// the callers' I/O. Matching is done by node:net's BlockList, which also matches IPv4-mapped
// IPv6 addresses (::ffff:10.0.0.1) against IPv4 ranges, so no spelling of an address escapes.
import { BlockList, isIP } from 'node:net'

/** The ranges of `--allow-targets`, as given (for messages) and as a matcher. */
export interface AllowedTargets {
  readonly ranges: readonly string[]
  readonly list: BlockList
}

/** The value that means "no restriction" (the default). */
export const ANY_TARGET = 'any'

/**
 * Parses `--allow-targets` (`CIDR[,CIDR…]`; a bare address is a single host; `any` or empty: no
 * restriction, returned as null). Throws an Error naming `flag` and the bad entry.
 */
export function parseAllowTargets (value: string | undefined, flag = '--allow-targets'): AllowedTargets | null {
  const trimmed = (value ?? '').trim()
  if (trimmed === '' || trimmed === ANY_TARGET) return null
  const list = new BlockList()
  const ranges: string[] = []
  for (const raw of trimmed.split(',')) {
    const entry = raw.trim()
    const slash = entry.indexOf('/')
    const address = slash === -1 ? entry : entry.slice(0, slash)
    const family = isIP(address)
    const bits = family === 6 ? 128 : 32
    const prefixText = slash === -1 ? String(bits) : entry.slice(slash + 1)
    const prefix = /^[0-9]{1,3}$/.test(prefixText) ? Number(prefixText) : NaN
    if (family === 0 || !(prefix >= 0 && prefix <= bits)) {
      throw new Error(`${flag} must be ${ANY_TARGET} or a comma-separated list of CIDR ranges (10.0.0.0/8, fd00::/8) or addresses, got ${JSON.stringify(entry)}`)
    }
    list.addSubnet(address, prefix, family === 6 ? 'ipv6' : 'ipv4')
    ranges.push(`${address}/${prefix}`)
  }
  return { ranges, list }
}

/** Registrations may bracket IPv6 literals ([::1]); sockets and matchers want them bare. */
export function bareHost (host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host
}

/** The host and port of a `tcp://host:port` heartbeat endpoint (its shape already validated). */
export function endpointTarget (endpoint: string): { host: string, port: number } {
  const rest = endpoint.slice('tcp://'.length)
  const colon = rest.lastIndexOf(':')
  return { host: bareHost(rest.slice(0, colon)), port: Number(rest.slice(colon + 1)) }
}

function contains (list: BlockList, address: string): boolean {
  const family = isIP(address)
  return family !== 0 && list.check(address, family === 6 ? 'ipv6' : 'ipv4')
}

/** The first of `addresses` outside `allowed` (an unparseable one counts as outside), or null
 *  when every one is inside. A target is allowed only if every address its name resolves to is:
 *  otherwise which one a connection uses would decide, and an attacker can order the answers. */
export function firstOutside (allowed: AllowedTargets, addresses: readonly string[]): string | null {
  return addresses.find((a) => !contains(allowed.list, a)) ?? null
}

/** The detail a worker reports (and the start of the gateway's message) for a target outside. */
export function notAllowedDetail (host: string, address: string, allowed: AllowedTargets): string {
  const via = host === address ? address : `${host} (${address})`
  return `target not allowed: ${via} is outside the allowed targets ${allowed.ranges.join(',')} (--allow-targets)`
}

/** Loopback and the unspecified ("any") addresses: connecting to 0.0.0.0 or :: reaches this
 *  host, so they are as much "this host" as 127.0.0.1 is. */
const LOCAL = new BlockList()
LOCAL.addSubnet('127.0.0.0', 8, 'ipv4')
LOCAL.addAddress('0.0.0.0', 'ipv4')
LOCAL.addAddress('::1', 'ipv6')
LOCAL.addAddress('::', 'ipv6')

/** A port of Roster's own that no provider may name: the leader's ROUTER and PUB, the gateway's
 *  HTTP. `addresses` are where it listens besides loopback and the unspecified address. */
export interface ReservedPort { port: number, what: string, addresses: readonly string[] }

/** The reserved ports of the leader candidates `tcp://host:port` (ROUTER, and PUB on port+1),
 *  their hosts given already resolved by the caller (`hostAddresses`). */
export function leaderReservedPorts (candidates: readonly string[], hostAddresses: (host: string) => readonly string[]): ReservedPort[] {
  return candidates.flatMap((c) => {
    const { host, port } = endpointTarget(c)
    const addresses = hostAddresses(host)
    return [
      { port, what: `the leader's ROUTER port (${c})`, addresses },
      { port: port + 1, what: `the leader's event (PUB) port (${c})`, addresses }
    ]
  })
}

/** The reserved port `address:port` hits, or null. */
export function reservedHit (reserved: readonly ReservedPort[], address: string, port: number): ReservedPort | null {
  for (const r of reserved) {
    if (r.port !== port) continue
    if (contains(LOCAL, address)) return r
    const own = new BlockList()
    for (const a of r.addresses) {
      const family = isIP(a)
      if (family !== 0) own.addAddress(a, family === 6 ? 'ipv6' : 'ipv4')
    }
    if (contains(own, address)) return r
  }
  return null
}
