// Waiting for a condition in tests and tools, instead of sleeping for a guessed time. It polls a predicate
// and owns nothing else; it must never be used to wait for an absence (that needs a bound the
// test states itself).

export interface WaitForOptions {
  /** Give up after this long (default 5000 ms). */
  timeoutMs?: number
  /** Poll period (default 10 ms). */
  intervalMs?: number
  /** Says what was awaited, for the timeout error (default: the predicate's source). */
  what?: string
  /** The same as `what` (both spellings are in use). */
  message?: string
}

/**
 * Resolves with the predicate's first truthy result. A predicate that throws counts as "not
 * yet"; its last error is quoted if the wait times out. Rejects with
 * `waitFor: timed out after N ms waiting for <what>`.
 *
 * ```ts
 * const report = await waitFor(() => leader.reports().find((r) => r.state === 'up'), { timeoutMs: 3000, what: 'an up report' })
 * ```
 */
export async function waitFor<T> (
  predicate: () => T | Promise<T>,
  opts: WaitForOptions = {}
): Promise<NonNullable<T>> {
  const timeoutMs = opts.timeoutMs ?? 5000
  const intervalMs = opts.intervalMs ?? 10
  const deadline = Date.now() + timeoutMs
  let lastError: unknown
  for (;;) {
    try {
      const value = await predicate()
      if (value !== undefined && value !== null && value !== false && value !== 0 && value !== '') {
        return value as NonNullable<T>
      }
    } catch (err) {
      lastError = err
    }
    if (Date.now() >= deadline) {
      const what = opts.what ?? opts.message ?? predicate.toString().replace(/\s+/g, ' ').slice(0, 200)
      const cause = lastError instanceof Error ? ` (last error: ${lastError.message})` : ''
      throw new Error(`waitFor: timed out after ${timeoutMs} ms waiting for ${what}${cause}`)
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
}
