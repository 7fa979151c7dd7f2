// With `--allow-targets`: whether the worker may connect to a heartbeat endpoint, decided per host
// and remembered for a while. It owns the DNS lookups and the verdicts; the worker asks before it
// connects and is called back when a lookup ends. It must never let a name through before all
// of its addresses were found inside the allowed ranges.
import { lookup } from 'node:dns/promises'
import { isIP } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { endpointTarget, firstOutside, notAllowedDetail, type AllowedTargets } from '../protocol/targets.js'
import type { Log } from '../common/log.js'

/** A host's verdict (allowed, or why not) is trusted for 30 s: it is asked again only for an
 *  endpoint not yet connected, so an allowed endpoint costs one lookup, and a refused one is
 *  looked up again at most twice a minute, which is also how soon a name moved into the allowed
 *  ranges is connected to. */
const TARGET_VERDICT_TTL_MS = 30_000
/** A resolver that has not answered in 2 s is retried at the next verdict expiry. */
const TARGET_LOOKUP_TIMEOUT_MS = 2000

export interface TargetVerdictsOptions {
  /** Null: any address is allowed, and nothing is looked up. */
  allow: AllowedTargets | null
  log: Log
  clock: () => number
  /** A lookup ended: the endpoints waiting for it can be looked at again. */
  onDecided: () => void
}

export interface TargetVerdicts {
  /** Whether the worker may connect to `endpoint`: null (yes), the refusal detail, or undefined
   *  while its host is being looked up (a lookup is started; onDecided follows). An IP literal is
   *  decided at once. */
  verdictOn: (endpoint: string) => string | null | undefined
  /** Forgets the verdicts older than their TTL (at most once a TTL); true if one of them was a
   *  refusal, when the endpoints should be looked at again: a name may have moved into the
   *  allowed ranges. */
  sweep: () => boolean
}

export function createTargetVerdicts (opts: TargetVerdictsOptions): TargetVerdicts {
  const { allow, log, clock } = opts
  /** Per host: null (allowed) or the refusal detail, and when it was decided. */
  const verdicts = new Map<string, { refusal: string | null, at: number }>()
  const resolving = new Set<string>()
  let sweptAt = 0

  async function decideHost (allowed: AllowedTargets, host: string): Promise<void> {
    let refusal: string | null
    try {
      const found = await Promise.race([
        lookup(host, { all: true, verbatim: true }),
        sleep(TARGET_LOOKUP_TIMEOUT_MS, undefined, { ref: false }).then(() => { throw Object.assign(new Error('timeout'), { code: 'ETIMEOUT' }) })
      ])
      const outside = firstOutside(allowed, found.map((a) => a.address))
      refusal = outside === null ? null : notAllowedDetail(host, outside, allowed)
    } catch (err) {
      const code = (err as { code?: unknown }).code
      refusal = `target not checked: ${host} does not resolve (${typeof code === 'string' ? code : 'no address'})`
    }
    resolving.delete(host)
    verdicts.set(host, { refusal, at: clock() })
    if (refusal !== null) log.warn({ host, refusal }, 'not connecting to a heartbeat endpoint outside --allow-targets')
    opts.onDecided()
  }

  return {
    verdictOn (endpoint) {
      if (allow === null) return null
      const { host } = endpointTarget(endpoint)
      if (isIP(host) !== 0) return firstOutside(allow, [host]) === null ? null : notAllowedDetail(host, host, allow)
      const known = verdicts.get(host)
      if (known !== undefined && clock() - known.at < TARGET_VERDICT_TTL_MS) return known.refusal
      if (!resolving.has(host)) {
        resolving.add(host)
        void decideHost(allow, host)
      }
      return undefined
    },
    sweep () {
      const now = clock()
      if (allow === null || now - sweptAt < TARGET_VERDICT_TTL_MS) return false
      sweptAt = now
      let refused = false
      for (const [host, v] of verdicts) {
        if (now - v.at >= TARGET_VERDICT_TTL_MS) {
          verdicts.delete(host)
          refused ||= v.refusal !== null
        }
      }
      return refused
    }
  }
}
