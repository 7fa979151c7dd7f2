// Summary statistics and the plain-text tables the runner prints.

export interface Summary { n: number, p50: number, p90: number, p99: number, max: number, min: number, mean: number }

/** Percentile by linear interpolation between closest ranks (NumPy's default, "type 7"): with
 *  30 samples p99 lies between the two largest, so read it as "the tail", not as a 1 % figure. */
export function percentile (sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN
  const rank = (p / 100) * (sorted.length - 1)
  const lo = Math.floor(rank)
  const hi = Math.ceil(rank)
  const a = sorted[lo] as number
  const b = sorted[hi] as number
  return a + (b - a) * (rank - lo)
}

/** Non-finite values (a stage that could not be timed) are left out; `n` says how many remain. */
export function summarize (values: readonly number[]): Summary {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b)
  const n = sorted.length
  return {
    n,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    max: n === 0 ? NaN : sorted[n - 1] as number,
    min: n === 0 ? NaN : sorted[0] as number,
    mean: n === 0 ? NaN : sorted.reduce((s, v) => s + v, 0) / n
  }
}

export function ratio (a: number, b: number): number {
  return b > 0 ? a / b : NaN
}

/** Rounds every number in a summary for JSON (microsecond resolution is plenty). */
export function rounded<T extends object> (obj: T, digits = 3): T {
  const f = 10 ** digits
  return Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, typeof v === 'number' ? Math.round(v * f) / f : v])) as T
}

export interface Table {
  title: string
  columns: string[]
  rows: Array<Array<string | number>>
  notes?: string[]
}

export function fmt (v: number, digits = 2): string {
  if (!Number.isFinite(v)) return '–'
  return v.toFixed(digits)
}

export function renderTable (t: Table): string {
  const cells = [t.columns, ...t.rows.map((r) => r.map((c) => (typeof c === 'number' ? fmt(c) : c)))]
  const widths = t.columns.map((_c, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)))
  const line = (r: string[]): string => r.map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join('  ').trimEnd()
  const out = [t.title, line(t.columns), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)]
  for (const n of t.notes ?? []) out.push(n)
  return out.join('\n')
}
