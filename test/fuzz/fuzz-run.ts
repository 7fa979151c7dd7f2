// How every fuzz file runs its properties: the count (ROSTER_FUZZ_RUNS: 1000 in `npm test`,
// 10 000 in `npm run fuzz`), a seed printed before the run and replayed with ROSTER_FUZZ_SEED,
// and a bound on shrinking, since against a live system a failing case can cost seconds.
import fc from 'fast-check'

/** Generated requests (or frames) per fuzz file and target. */
export const FUZZ_RUNS = Number(process.env.ROSTER_FUZZ_RUNS ?? 1000)

/** The seed of this run: ROSTER_FUZZ_SEED replays a failure that fast-check reported. */
export const FUZZ_SEED = process.env.ROSTER_FUZZ_SEED !== undefined && process.env.ROSTER_FUZZ_SEED !== ''
  ? Number(process.env.ROSTER_FUZZ_SEED)
  : (Date.now() ^ Math.floor(Math.random() * 0x7fffffff)) | 0

/** Shrinking stops this long after the first failure (ROSTER_FUZZ_SHRINK_MS, default 60 s):
 *  a request that takes the leader's 4 s write timeout to fail would otherwise shrink for
 *  many minutes. fast-check then reports the smallest failing case found so far. */
export const SHRINK_BUDGET_MS = Number(process.env.ROSTER_FUZZ_SHRINK_MS ?? 60_000)

/**
 * fc.assert over `arb` with the run's seed. `check` throws to fail. After a failure, `resync`
 * runs before the next attempt (fast-check's shrinking tries smaller cases on the same live
 * system, whose bookkeeping the failure left behind); once the shrink budget is spent, the
 * remaining candidates pass untried.
 */
export async function fuzz<T> (
  arb: fc.Arbitrary<T>,
  numRuns: number,
  check: (value: T) => Promise<void>,
  resync: () => Promise<void> = async () => {}
): Promise<void> {
  let firstFailureAt: number | null = null
  let dirty = false
  await fc.assert(fc.asyncProperty(arb, async (value) => {
    if (firstFailureAt !== null && Date.now() - firstFailureAt > SHRINK_BUDGET_MS) return
    if (dirty) await resync()
    dirty = true
    try {
      await check(value)
    } catch (err) {
      firstFailureAt ??= Date.now()
      throw err
    }
    dirty = false
  }), { numRuns, seed: FUZZ_SEED })
}
