// What a benchmark is to the runner (bench/run.ts).
import type { Scope } from './processes.js'
import type { Table } from './stats.js'

export interface BenchContext {
  /** The command line's flags (only those the benchmark declares; unset ones are undefined). */
  flags: Record<string, string | undefined>
  /** Undoes what the benchmark set up; the runner closes it after success, failure or Ctrl-C. */
  scope: Scope
  /** A progress line on stderr. */
  log: (msg: string) => void
}

export interface BenchOutput {
  parameters: Record<string, unknown>
  tables: Table[]
  results: Record<string, unknown>
}

export interface Benchmark {
  name: string
  description: string
  flags: Record<string, { default: string, help: string }>
  /** The runner fails the benchmark (and cleans up) past this. */
  timeoutMs: number
  run: (ctx: BenchContext) => Promise<BenchOutput>
}
