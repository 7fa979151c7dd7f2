// The one timer that expires silent providers: it sleeps until the earliest moment a watched
// provider can go silent (liveness.ts nextDeadline) and then asks liveness.ts who did. It owns
// that timer; liveness.ts decides. It must never decide before the turn's socket reads.
import { afterReads } from '../common/after-reads.js'
import type { Log } from '../common/log.js'
import type { Observation } from '../protocol/messages.js'
import type { Liveness } from './liveness.js'

export interface SilenceTimer {
  /** Lets the timer run (the worker started) and arms it. */
  open: () => void
  /** Moves the timer earlier if a deadline came that is earlier than it (after an ASSIGN, or a
   *  provider coming up). Heartbeats only push deadlines later, so it never moves later. */
  arm: () => void
  close: () => void
}

export function createSilenceTimer (liveness: Liveness, clock: () => number, log: Log, onSilent: (obs: Observation[]) => void): SilenceTimer {
  let running = false
  let timer: NodeJS.Timeout | null = null
  let armedAt: number | null = null
  let immediate: NodeJS.Immediate | null = null

  function arm (): void {
    if (!running) return
    const next = liveness.nextDeadline()
    if (next === null || (armedAt !== null && armedAt <= next)) return
    if (timer !== null) clearTimeout(timer)
    armedAt = next
    timer = setTimeout(fired, Math.max(0, next - clock()))
  }

  /** The decision waits for the turn's socket reads (common/after-reads.ts): heartbeats that
   *  came in time during a stall are read first, or the whole fleet would look silent. */
  function fired (): void {
    timer = null
    immediate = afterReads(expire)
  }

  function expire (): void {
    immediate = null
    armedAt = null
    try {
      onSilent(liveness.expire(clock()))
    } catch (err) {
      log.error({ err }, 'expiring silent providers failed')
    }
    arm()
  }

  return {
    open () {
      running = true
      arm()
    },
    arm,
    close () {
      running = false
      if (timer !== null) clearTimeout(timer)
      if (immediate !== null) clearImmediate(immediate)
      timer = immediate = armedAt = null
    }
  }
}
