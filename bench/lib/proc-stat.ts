// CPU time and memory of any process, read from /proc by pid, so that a benchmark measures
// Roster's processes as they are, without a line of code added to them for the purpose. Linux
// only (the benchmarks run on Linux; elsewhere these throw with a clear message).
import { readdir, readFile } from 'node:fs/promises'

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

/** utime + stime of one /proc stat line, in milliseconds. */
function statCpuMs (stat: string, where: string): number {
  // Field 2, the command, is parenthesised and may hold spaces: count from after its ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // rest[0] is field 3 (state), so utime (field 14) is rest[11] and stime (field 15) rest[12].
  const utime = Number(rest[11])
  const stime = Number(rest[12])
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error(`unexpected ${where}: ${stat.slice(0, 200)}`)
  return (utime + stime) * 1000 / TICKS_PER_SECOND
}

/** User + system CPU time the process has used so far, in milliseconds (all its threads). */
export async function cpuMs (pid: number): Promise<number> {
  return statCpuMs(await read(pid, 'stat'), `/proc/${pid}/stat`)
}

/** CPU time per thread, in milliseconds: `main` (the JavaScript thread), then by thread name
 *  (`ZMQbg/IO/0`, `libuv-worker`, `node` for V8's helpers, …; threads sharing a name are summed):
 *  tells the JavaScript thread's share from libzmq's I/O thread's. */
export async function threadCpuMs (pid: number): Promise<Record<string, number>> {
  const out: Record<string, number> = {}
  const tids = await readdir(`/proc/${pid}/task`).catch((err: Error) => { throw new Error(`cannot list /proc/${pid}/task: ${err.message}`) })
  await Promise.all(tids.map(async (tid) => {
    const stat = await readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8').catch(() => null) // a thread that just ended
    if (stat === null) return
    const name = tid === String(pid) ? 'main' : stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))
    out[name] = (out[name] ?? 0) + statCpuMs(stat, `/proc/${pid}/task/${tid}/stat`)
  }))
  return out
}

/** A process's parent pid and short name (the kernel's `comm`, 15 characters) from its stat line. */
function statParent (stat: string): { ppid: number, comm: string } {
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // rest[0] is field 3 (state), rest[1] field 4 (ppid).
  return { ppid: Number(rest[1]), comm: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')) }
}

/**
 * Every living descendant of `root` (children, their children, …), found by walking the parent
 * pids of all of /proc: a child that moved to its own session or process group (a database
 * server started detached) is still found, as long as its parent has not exited.
 */
export async function descendants (root: number): Promise<number[]> {
  const pids = (await readdir('/proc')).filter((d) => /^\d+$/.test(d)).map(Number)
  const children = new Map<number, number[]>()
  await Promise.all(pids.map(async (pid) => {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null) // ended meanwhile
    if (stat === null) return
    const { ppid } = statParent(stat)
    children.set(ppid, [...(children.get(ppid) ?? []), pid])
  }))
  const out: number[] = []
  const queue = [root]
  for (let pid = queue.shift(); pid !== undefined; pid = queue.shift()) {
    for (const child of children.get(pid) ?? []) { out.push(child); queue.push(child) }
  }
  return out.sort((a, b) => a - b)
}

/** When the process started (field 22 of its stat line, in clock ticks since boot), or null if it
 *  is gone: with its pid, it names one process even after the pid is reused. */
export async function startTime (pid: number): Promise<number | null> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null)
  if (stat === null) return null
  // rest[0] is field 3, so field 22 is rest[19].
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19])
}

/** What a process is, to name it in a table: its `comm`, and its command line with every
 *  absolute path cut to its last component, cut to `max` characters. */
export async function describe (pid: number, max = 56): Promise<{ comm: string, cmdline: string }> {
  const { comm } = statParent(await read(pid, 'stat'))
  const args = (await read(pid, 'cmdline')).split('\0').filter((a) => a !== '')
  const cmdline = args.map((a) => (a.startsWith('/') ? a.slice(a.lastIndexOf('/') + 1) : a)).join(' ')
  return { comm, cmdline: cmdline.length > max ? `${cmdline.slice(0, max - 1)}…` : cmdline }
}

/**
 * Resident memory from /proc/PID/smaps_rollup, in bytes: RSS counts every page the process maps
 * in full, so pages shared by several processes (a database's shared buffers, the same binary's
 * code) count once per process in a sum of RSS; PSS divides each page by the number of processes
 * mapping it, so a sum of PSS counts it once.
 */
export async function rssPss (pid: number): Promise<{ rssBytes: number, pssBytes: number }> {
  const rollup = await read(pid, 'smaps_rollup')
  const kb = (key: string): number => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(rollup)
    if (m === null) throw new Error(`no ${key} in /proc/${pid}/smaps_rollup`)
    return Number(m[1]) * 1024
  }
  return { rssBytes: kb('Rss'), pssBytes: kb('Pss') }
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
