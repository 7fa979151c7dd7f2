// Checks where a registration would make a worker connect, before it reaches the leader: its
// heartbeat endpoint, or the host:port of its http or tcp check. The rule (protocol/targets.ts)
// is shared with the worker; this module is its I/O at the gateway: it resolves names (every
// address must be allowed) and knows which ports are Roster's own. A name is resolved only when
// the answer matters (an allow list is set, or the port is one of Roster's), so a default gateway
// makes no DNS query per registration.
import { lookup } from 'node:dns/promises'
import { isIP } from 'node:net'
import { networkInterfaces } from 'node:os'
import type { ProviderSpec } from '../protocol/model.js'
import {
  bareHost, endpointTarget, firstOutside, leaderReservedPorts, notAllowedDetail, reservedHit,
  type AllowedTargets, type ReservedPort
} from '../protocol/targets.js'
import { TargetNotAllowedError, TargetUnresolvedError } from './errors.js'

/** 2 s: a resolver answers in milliseconds or, when a server is down, after its own 5 s retry;
 *  the registration should not wait that long, and the client may retry (it gets a 503). */
export const TARGET_LOOKUP_TIMEOUT_MS = 2000

export interface TargetGuardOptions {
  /** `--allow-targets`; null: any address. */
  allow: AllowedTargets | null
  /** The leader candidates (`--leader`, or `--bind` in `roster up`): their ports are Roster's. */
  leaderCandidates: readonly string[]
  /** This gateway's HTTP port once it listens (null before). */
  ownPort: () => number | null
  /** This gateway's `--host`, if it is an address of its own beyond its interfaces'. */
  ownHost?: string
  lookupTimeoutMs?: number
}

interface Target { field: string, shown: string, host: string, port: number }

/** What a registration connects to: its heartbeat endpoint or its http/tcp check's host:port. A
 *  ttl check makes Roster connect nowhere. */
export function targetOf (spec: ProviderSpec): Target | null {
  if (spec.heartbeat !== undefined) {
    return { field: 'body/heartbeat', shown: spec.heartbeat, ...endpointTarget(spec.heartbeat) }
  }
  if (spec.check !== undefined && spec.check.type !== 'ttl') {
    return { field: 'body/host', shown: `${spec.host}:${spec.port}`, host: bareHost(spec.host), port: spec.port }
  }
  return null
}

/** Resolves `host` to every address it names (a literal is itself), within `timeoutMs`. */
export async function resolveAll (host: string, timeoutMs: number): Promise<string[]> {
  if (isIP(host) !== 0) return [host]
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEOUT' })), timeoutMs)
  })
  try {
    const found = await Promise.race([lookup(host, { all: true, verbatim: true }), timeout])
    return found.map((a) => a.address)
  } finally {
    clearTimeout(timer)
  }
}

function ownAddresses (ownHost: string | undefined): string[] {
  const out = Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address))
  if (ownHost !== undefined && isIP(bareHost(ownHost)) !== 0) out.push(bareHost(ownHost))
  return out
}

export type TargetGuard = (spec: ProviderSpec) => Promise<void>

export function createTargetGuard (opts: TargetGuardOptions): TargetGuard {
  const timeoutMs = opts.lookupTimeoutMs ?? TARGET_LOOKUP_TIMEOUT_MS
  const leaderPorts = new Set(opts.leaderCandidates.flatMap((c) => {
    const { port } = endpointTarget(c)
    return [port, port + 1]
  }))

  async function resolveField (t: Target, host: string): Promise<string[]> {
    try {
      return await resolveAll(host, timeoutMs)
    } catch (err) {
      const code = (err as { code?: unknown }).code
      // ETIMEOUT (ours) and EAI_AGAIN (the resolver's) are temporary; anything else means the
      // name does not exist.
      if (code === 'ETIMEOUT' || code === 'EAI_AGAIN') {
        throw new TargetUnresolvedError(`${t.field} host '${host}' could not be resolved in time (${String(code)}); retry shortly`, 503)
      }
      throw new TargetUnresolvedError(`${t.field} host '${host}' does not resolve (${typeof code === 'string' ? code : 'no address'})`, 400)
    }
  }

  /** Roster's own ports that `port` may be: the leaders' (their hosts resolved now, since a
   *  candidate may be a name) and this gateway's HTTP port on its own addresses. */
  async function reservedFor (t: Target): Promise<ReservedPort[]> {
    const out: ReservedPort[] = []
    if (leaderPorts.has(t.port)) {
      const hosts = [...new Set(opts.leaderCandidates.map((c) => endpointTarget(c).host))]
      const resolved = new Map(await Promise.all(hosts.map(async (h) => [h, await resolveAll(h, timeoutMs).catch(() => [])] as const)))
      out.push(...leaderReservedPorts(opts.leaderCandidates, (h) => resolved.get(h) ?? []))
    }
    const own = opts.ownPort()
    if (own !== null && own === t.port) out.push({ port: own, what: "this gateway's HTTP port", addresses: ownAddresses(opts.ownHost) })
    return out
  }

  return async (spec) => {
    const t = targetOf(spec)
    if (t === null) return
    const own = opts.ownPort()
    const onRosterPort = leaderPorts.has(t.port) || (own !== null && own === t.port)
    if (opts.allow === null && !onRosterPort) return
    const addresses = await resolveField(t, t.host)
    if (opts.allow !== null) {
      const outside = firstOutside(opts.allow, addresses)
      if (outside !== null) {
        throw new TargetNotAllowedError(`${t.field} ${t.shown}: ${notAllowedDetail(t.host, outside, opts.allow)}`)
      }
    }
    if (!onRosterPort) return
    const reserved = await reservedFor(t)
    for (const address of addresses) {
      const hit = reservedHit(reserved, address, t.port)
      if (hit !== null) {
        throw new TargetNotAllowedError(`${t.field} ${t.shown} is ${hit.what}: Roster's own ports are never a valid target`)
      }
    }
  }
}
