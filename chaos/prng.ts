// A seeded pseudo-random generator (mulberry32) for the chaos run: every choice the run makes
// (victim, signal, timings, emitter churn, which gateway a writer tries) comes from one of
// these, so a printed seed replays the same schedule. Timing-dependent outcomes still differ
// between runs; the schedule does not.

export interface Prng {
  /** A float in [0, 1). */
  next: () => number
  /** An integer in [min, max], both included. */
  int: (min: number, max: number) => number
  /** True with probability p. */
  chance: (p: number) => boolean
  /** A uniformly chosen element; throws on an empty list (a caller's bug). */
  pick: <T>(items: readonly T[]) => T
  /** An independent generator derived from this one (for a concurrent actor, so its draws do
   *  not shift the main schedule's). */
  fork: () => Prng
}

export function createPrng (seed: number): Prng {
  let a = seed >>> 0
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const prng: Prng = {
    next,
    int: (min, max) => min + Math.floor(next() * (max - min + 1)),
    chance: (p) => next() < p,
    pick (items) {
      if (items.length === 0) throw new Error('pick from an empty list')
      return items[Math.floor(next() * items.length)] as (typeof items)[number]
    },
    fork: () => createPrng(Math.floor(next() * 4294967296))
  }
  return prng
}

/** A fresh seed for a run that was given none (printed, so that it can be replayed). */
export function randomSeed (): number {
  return Math.floor(Math.random() * 2 ** 31)
}
