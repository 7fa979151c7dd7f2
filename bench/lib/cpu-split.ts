// Where the CPU went during a load run's measured window: each named process's share (in cores,
// 1.0 = one core busy all along), read from /proc so the processes under test are measured as
// they are. A group of processes counts as one entry: the Postgres backends serving one database
// (found by their pg_stat_activity rows), or all of a process's descendants (an embedded
// database's postmaster and backends).
import { adminQuery } from '../../harness/postgres-admin.js'
import { sleep } from './processes.js'
import { cpuMs, descendants } from './proc-stat.js'

export type CpuSplit = Record<string, number>

/** The Postgres backends serving `databaseUrl`'s database right now (the admin connection that
 *  asks excluded), as a cpuSplit group. */
export function backendsOf (databaseUrl: string): () => Promise<number[]> {
  return async () => {
    const db = new URL(databaseUrl).pathname.slice(1)
    const rows = await adminQuery<{ pid: number }>(databaseUrl, 'select pid from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()', [db])
    return rows.map((r) => r.pid)
  }
}

/** Every descendant of `pid` right now (an embedded database's processes), as a cpuSplit group. */
export function descendantsOf (pid: number): () => Promise<number[]> {
  return async () => await descendants(pid)
}

/**
 * Waits `warmupMs`, then measures the named pids and each group (its pids listed once the
 * warm-up is over: connections are open by then) until `warmupMs + windowMs` after the call. A
 * group's processes that end inside the window are left out of its sum. Called as the load run
 * is sent, it ends before that run's window does (the generator connects before its warm-up
 * starts), so the run's own connections, closed after its window, are still there to be read:
 * the listing and the first reading shorten the measured window instead.
 */
export async function cpuSplit (named: Record<string, number>, groups: Record<string, () => Promise<number[]>>, warmupMs: number, windowMs: number): Promise<CpuSplit> {
  const end = performance.now() + warmupMs + windowMs
  await sleep(warmupMs)
  const groupNames = Object.keys(groups)
  const members = await Promise.all(Object.values(groups).map(async (list) => await list()))
  const names = Object.keys(named)
  const pids = [...Object.values(named), ...members.flat()]
  // A pid gone by either read reads NaN: a named process is then NaN (it died: the run fails
  // anyway); a group member that ended (an idle pool connection timing out) is left out.
  const read = async (): Promise<number[]> => await Promise.all(pids.map(async (pid) => await cpuMs(pid).catch(() => NaN)))
  const before = await read()
  const t0 = performance.now()
  await sleep(end - t0)
  const after = await read()
  const wallMs = performance.now() - t0
  const cores = after.map((a, i) => (a - (before[i] as number)) / wallMs)
  const out: CpuSplit = {}
  names.forEach((n, i) => { out[n] = round2(cores[i] as number) })
  let at = names.length
  groupNames.forEach((g, k) => {
    const n = (members[k] as number[]).length
    out[g] = round2(cores.slice(at, at + n).reduce((s, c) => (Number.isFinite(c) ? s + c : s), 0))
    at += n
  })
  return out
}

const round2 = (v: number): number => Math.round(v * 100) / 100
