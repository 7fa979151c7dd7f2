// Runs one http or tcp check against a provider: the I/O half of checks.ts. An http check GETs
// http://host:port/path on a fresh connection and is healthy on a 2xx status line within the
// timeout (the body is not awaited); a tcp check is healthy when a connection is established
// within the timeout. A probe never throws and never outlives its timeout: every failure,
// including a bug in the provider's answer, is an outcome with a short detail. With an allow
// list (`--allow-targets`) the probe connects only to an address it has just checked: the name is
// resolved by the probe's own lookup, which refuses a target if any address is outside, so a
// name cannot resolve to an allowed address for the check and another one for the connection.
import { lookup as dnsLookup } from 'node:dns'
import { request } from 'node:http'
import { connect, isIP, type LookupFunction } from 'node:net'
import type { Probe } from '../protocol/messages.js'
import { bareHost, firstOutside, notAllowedDetail, type AllowedTargets } from '../protocol/targets.js'
import { toStorableText } from '../protocol/model.js'
import type { ProbeOutcome } from './checks.js'

const USER_AGENT = 'roster-check/1'
const DETAIL_MAX_LENGTH = 200

/** Runs `probe` once. `signal` ends it early (the worker is stopping) with a failed outcome that
 *  the caller is expected to drop. With `allow`, a target outside it is not connected to: the
 *  outcome is a failure whose detail starts with `target not allowed`. */
export async function runProbe (probe: Probe, signal?: AbortSignal, allow: AllowedTargets | null = null): Promise<ProbeOutcome> {
  if (signal?.aborted === true) return { ok: false, detail: 'aborted' }
  const host = bareHost(probe.host)
  if (allow !== null && isIP(host) !== 0 && firstOutside(allow, [host]) !== null) {
    return { ok: false, detail: notAllowedDetail(host, host, allow).slice(0, DETAIL_MAX_LENGTH) }
  }
  const lookup = allow === null ? undefined : allowedLookup(allow)
  return await (probe.type === 'http' ? httpProbe(probe, signal, lookup) : tcpProbe(probe, signal, lookup))
}

/** A lookup for net/http that fails, with the `target not allowed` detail as its message, when any
 *  address of the name is outside `allow`, and otherwise answers as dns.lookup would. */
function allowedLookup (allow: AllowedTargets): LookupFunction {
  return (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err !== null) { callback(err, ''); return }
      const outside = firstOutside(allow, addresses.map((a) => a.address))
      if (outside !== null) { callback(new Error(notAllowedDetail(hostname, outside, allow)), ''); return }
      const first = addresses[0]
      if (options.all === true || first === undefined) callback(null, addresses)
      else callback(null, first.address, first.family)
    })
  }
}

function failure (err: unknown): ProbeOutcome {
  const e = err as { code?: unknown, message?: unknown }
  const detail = typeof e.code === 'string' ? e.code : typeof e.message === 'string' ? e.message : String(err)
  // The leader refuses a REPORT whose detail Postgres could not store (protocol/model.ts), and
  // the cut may split a surrogate pair: made storable here, the report always goes through.
  return { ok: false, detail: toStorableText(detail.slice(0, DETAIL_MAX_LENGTH)) }
}

/** Settles with the first of: what `open` reports, the timeout, or `signal`'s abort. The
 *  connection `open` returns is destroyed exactly once, whichever came first. */
function bounded (
  timeoutMs: number,
  signal: AbortSignal | undefined,
  open: (settle: (outcome: ProbeOutcome) => void) => { destroy: () => void }
): Promise<ProbeOutcome> {
  return new Promise((resolve) => {
    let settled = false
    // eslint-disable-next-line prefer-const -- settle() reads it, and open() may call settle() before returning: a const would throw then
    let connection: { destroy: () => void } | undefined
    const onAbort = (): void => settle({ ok: false, detail: 'aborted' })
    const timer = setTimeout(() => settle({ ok: false, detail: `timeout after ${timeoutMs} ms` }), timeoutMs)
    function settle (outcome: ProbeOutcome): void {
      if (settled) return
      settled = true
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      connection?.destroy()
      resolve(outcome)
    }
    signal?.addEventListener('abort', onAbort)
    connection = open(settle)
  })
}

function httpProbe (probe: Extract<Probe, { type: 'http' }>, signal: AbortSignal | undefined, lookup: LookupFunction | undefined): Promise<ProbeOutcome> {
  return bounded(probe.timeoutMs, signal, (settle) => {
    // agent: false, so each check opens its own connection: a provider that stopped accepting
    // connections must fail its check, not pass it over an old keep-alive socket.
    const req = request({
      host: bareHost(probe.host),
      port: probe.port,
      path: probe.path,
      method: 'GET',
      agent: false,
      ...(lookup === undefined ? {} : { lookup }),
      headers: { 'user-agent': USER_AGENT, accept: '*/*', connection: 'close' }
    }, (res) => {
      const status = res.statusCode ?? 0
      // Destroying the request aborts the response, which then emits an error of its own.
      res.on('error', () => {})
      res.resume()
      settle(status >= 200 && status < 300 ? { ok: true } : { ok: false, detail: `HTTP ${status}` })
    })
    req.on('error', (err) => settle(failure(err)))
    req.end()
    return req
  })
}

function tcpProbe (probe: Extract<Probe, { type: 'tcp' }>, signal: AbortSignal | undefined, lookup: LookupFunction | undefined): Promise<ProbeOutcome> {
  return bounded(probe.timeoutMs, signal, (settle) => {
    const socket = connect({ host: bareHost(probe.host), port: probe.port, ...(lookup === undefined ? {} : { lookup }) })
    socket.once('connect', () => settle({ ok: true }))
    // After a settle, the destroyed socket may still report an error: nothing listens for it then.
    socket.on('error', (err) => settle(failure(err)))
    return socket
  })
}
