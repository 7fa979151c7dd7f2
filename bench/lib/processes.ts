// Ownership of everything a benchmark starts: child processes, temp directories, databases.
// Every child process is tracked from the moment it is spawned until it has exited, and a Scope
// undoes what a benchmark set up in reverse order, whether it finished, failed or was
// interrupted. Last resort: when this process exits, whatever is still tracked gets SIGKILL.
import type { ChildProcess } from 'node:child_process'

const live = new Set<ChildProcess>()
const spawned: number[] = []
/** Set while a scope is closing: whatever a still-running benchmark spawns then dies at once. */
let refusing = false

/** Tracks `child` until it exits; returns it. */
export function track<C extends ChildProcess> (child: C): C {
  if (child.pid !== undefined) spawned.push(child.pid)
  if (child.exitCode === null && child.signalCode === null) {
    live.add(child)
    child.once('exit', () => live.delete(child))
    if (refusing) child.kill('SIGKILL')
  }
  return child
}

export function isRunning (child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null
}

/** Resolves once `child` has exited (at once if it already has). */
export async function exited (child: ChildProcess): Promise<void> {
  if (!isRunning(child)) return
  await new Promise<void>((resolve) => child.once('exit', () => resolve()))
}

/** Sends `signal`, waits up to `graceMs`, then SIGKILLs and waits for the exit. */
export async function stopProcess (child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL', graceMs = 3000): Promise<void> {
  if (!isRunning(child)) return
  child.kill(signal)
  if (signal !== 'SIGKILL') {
    const done = await Promise.race([exited(child).then(() => true), sleep(graceMs).then(() => false)])
    if (done) return
    child.kill('SIGKILL')
  }
  await exited(child)
}

/** SIGKILLs every tracked process still running and waits until they are all gone. */
export async function killAllTracked (): Promise<void> {
  await Promise.all([...live].map(async (child) => { await stopProcess(child, 'SIGKILL') }))
}

/** Every pid tracked so far, exited or not. */
export function spawnedPids (): readonly number[] {
  return spawned
}

/** The tracked pids that still exist as processes (0 after a clean shutdown). */
export function survivors (): number[] {
  return spawned.filter((pid) => {
    try {
      process.kill(pid, 0)
      return true
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'EPERM'
    }
  })
}

process.once('exit', () => {
  for (const child of live) {
    try { child.kill('SIGKILL') } catch { /* already gone */ }
  }
})

export async function sleep (ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms))
}

/** Undo actions, run once, last registered first; a failing one does not stop the others. */
export interface Scope {
  defer: (what: string, fn: () => Promise<void> | void) => void
  close: () => Promise<void>
}

export function createScope (): Scope {
  refusing = false
  const actions: Array<{ what: string, fn: () => Promise<void> | void }> = []
  let closing: Promise<void> | null = null
  return {
    defer (what, fn) { actions.push({ what, fn }) },
    close () {
      closing ??= (async () => {
        refusing = true
        for (const { what, fn } of actions.reverse()) {
          try {
            await fn()
          } catch (err) {
            process.stderr.write(`bench: cleanup "${what}" failed: ${(err as Error).message}\n`)
          }
        }
        await killAllTracked()
      })()
      return closing
    }
  }
}

/** Rejects with `message` if `promise` has not settled within `ms`. */
export async function withTimeout<T> (promise: Promise<T>, ms: number, message: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(message())), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}
