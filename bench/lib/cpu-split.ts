// Where the CPU went during a load run's measured window: each named process's share (in cores,
// 1.0 = one core busy all along), read from /proc so the processes under test are measured as
// they are. The Postgres backends serving one database count as one entry, found by their
// pg_stat_activity rows once the warm-up is over (the connections are open by then).
import { adminQuery } from '../../test/helpers/postgres-admin.js'
import { sleep } from './processes.js'
import { cpuMs } from './proc-stat.js'

export type CpuSplit = Record<string, number>

/**
 * Waits `warmupMs`, then measures the named pids (and, with `databaseUrl`, that database's
 * backends) over `windowMs`. Backends that end inside the window are left out of the sum.
 */
export async function cpuSplit (named: Record<string, number>, databaseUrl: string | null, warmupMs: number, windowMs: number): Promise<CpuSplit> {
  await sleep(warmupMs)
  let backends: number[] = []
  if (databaseUrl !== null) {
    const db = new URL(databaseUrl).pathname.slice(1)
    const rows = await adminQuery<{ pid: number }>(databaseUrl, 'select pid from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()', [db])
    backends = rows.map((r) => r.pid)
  }
  const names = Object.keys(named)
  const pids = [...Object.values(named), ...backends]
  // A pid gone by either read reads NaN: a named process is then NaN (it died: the run fails
  // anyway); a backend that ended (an idle pool connection timing out) is left out of the sum.
  const read = async (): Promise<number[]> => await Promise.all(pids.map(async (pid) => await cpuMs(pid).catch(() => NaN)))
  const before = await read()
  const t0 = performance.now()
  await sleep(windowMs)
  const after = await read()
  const wallMs = performance.now() - t0
  const cores = after.map((a, i) => (a - (before[i] as number)) / wallMs)
  const out: CpuSplit = {}
  names.forEach((n, i) => { out[n] = round2(cores[i] as number) })
  if (databaseUrl !== null) out.postgres = round2(cores.slice(names.length).reduce((s, c) => (Number.isFinite(c) ? s + c : s), 0))
  return out
}

const round2 = (v: number): number => Math.round(v * 100) / 100
