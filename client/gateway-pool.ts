// Which gateway the client tries next, and how long it pauses when every one has failed. Calls
// are spread round-robin over the gateways; a gateway that just failed goes to the back of the
// line for a while, so that a dead gateway costs one failed attempt per cooldown rather than one
// per call. Pure: the clock and the randomness are injected, nothing here does I/O.

/**
 * 5 s. A refused connection costs a millisecond, but a gateway that stopped answering (a frozen
 * host, a partition) costs a whole attempt timeout, which no call should pay twice in a row;
 * 5 s later it is tried again in its turn, so a restarted gateway gets its share back within
 * seconds. A gateway in its cooldown is still tried when all the others have failed too.
 */
export const GATEWAY_COOLDOWN_MS = 5000

/** The pause after the first round in which every gateway failed, doubled each round. */
export const BACKOFF_FIRST_MS = 100
/** 1 s at most: a leader failover leaves writes answering 503 for 0.2–2 s (README, What each
 *  failure looks like to a client), so a retry a second at the latest sees the new leader soon
 *  after it takes over, and at 1 s a long outage costs each waiting client one request a second. */
export const BACKOFF_MAX_MS = 1000

export class GatewayPool {
  readonly urls: readonly string[]
  private turn = 0
  /** Gateways that failed recently, and until when they are tried last. */
  private readonly coolingUntil = new Map<string, number>()
  private readonly now: () => number
  private readonly cooldownMs: number

  constructor (urls: readonly string[], now: () => number = Date.now, cooldownMs = GATEWAY_COOLDOWN_MS) {
    if (urls.length === 0) throw new TypeError('a gateway pool needs at least one URL')
    this.urls = urls
    this.now = now
    this.cooldownMs = cooldownMs
  }

  /**
   * The order in which one call (or one reconnection of a feed) tries the gateways: starting one
   * further round the ring than the previous call did, the gateways in good standing first, then
   * those cooling down, the one that comes back soonest first.
   */
  order (): string[] {
    const start = this.turn % this.urls.length
    this.turn = (this.turn + 1) % this.urls.length
    const ring = [...this.urls.slice(start), ...this.urls.slice(0, start)]
    const t = this.now()
    const until = (url: string): number => this.coolingUntil.get(url) ?? 0
    const ready = ring.filter((url) => until(url) <= t)
    const cooling = ring.filter((url) => until(url) > t).sort((a, b) => until(a) - until(b))
    return [...ready, ...cooling]
  }

  /** `url` failed: it is tried last for the cooldown. */
  failed (url: string): void {
    this.coolingUntil.set(url, this.now() + this.cooldownMs)
  }

  /** `url` answered: it is back in good standing at once. */
  succeeded (url: string): void {
    this.coolingUntil.delete(url)
  }
}

/**
 * The pause after `round` complete rounds (0 for the first) in which every gateway failed:
 * exponential from BACKOFF_FIRST_MS to BACKOFF_MAX_MS with jitter over its upper half, so that
 * the clients of a gateway that died together do not come back in step; never shorter than a
 * gateway's `Retry-After`.
 */
export function backoffMs (round: number, retryAfterMs: number | undefined, random: () => number = Math.random): number {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** Math.min(round, 16))
  const jittered = Math.round(ceiling / 2 + random() * ceiling / 2)
  return Math.max(jittered, retryAfterMs ?? 0)
}
