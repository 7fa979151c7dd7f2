// CPU time and memory of any process, read from /proc by pid, so that a benchmark measures
// Roster's processes as they are, without a line of code added to them for the purpose. Linux
// only (the benchmarks run on Linux; elsewhere these throw with a clear message).
import { readFile } from 'node:fs/promises'

/** USER_HZ: /proc/PID/stat counts CPU time in these ticks. 100 on every Linux ABI Node runs on
 *  (sysconf(_SC_CLK_TCK) is fixed at 100 by the kernel's exported ABI), so 10 ms resolution:
 *  a window of a few seconds measures CPU to well under 1 %. */
const TICKS_PER_SECOND = 100

async function read (pid: number, file: string): Promise<string> {
  try {
    return await readFile(`/proc/${pid}/${file}`, 'utf8')
  } catch (err) {
    throw new Error(`cannot read /proc/${pid}/${file} (is process ${pid} running, is this Linux?): ${(err as Error).message}`)
  }
}

/** User + system CPU time the process has used so far, in milliseconds (all its threads). */
export async function cpuMs (pid: number): Promise<number> {
  const stat = await read(pid, 'stat')
  // Field 2, the command, is parenthesised and may hold spaces: count from after its ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // rest[0] is field 3 (state), so utime (field 14) is rest[11] and stime (field 15) rest[12].
  const utime = Number(rest[11])
  const stime = Number(rest[12])
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error(`unexpected /proc/${pid}/stat: ${stat.slice(0, 200)}`)
  return (utime + stime) * 1000 / TICKS_PER_SECOND
}

/** Resident set size now and its peak so far (VmRSS, VmHWM), in bytes. */
export async function rss (pid: number): Promise<{ rssBytes: number, peakBytes: number }> {
  const status = await read(pid, 'status')
  const kb = (key: string): number => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)
    if (m === null) throw new Error(`no ${key} in /proc/${pid}/status`)
    return Number(m[1]) * 1024
  }
  return { rssBytes: kb('VmRSS'), peakBytes: kb('VmHWM') }
}

export const MiB = 1024 * 1024
