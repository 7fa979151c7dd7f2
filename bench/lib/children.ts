// The benchmark's own child processes (bench/emitter.ts, bench/reference-sub.ts) and the line
// protocol to talk to them: commands on stdin, one JSON object per stdout line, each stamped with
// its arrival time here. Both scripts are transpiled once per run to plain JavaScript in a temp
// directory, so that a (re)start is a bare `node` start rather than a tsx one.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'
import { exited, isRunning, track, withTimeout } from './processes.js'

export const now = (): number => performance.timeOrigin + performance.now()

const BENCH_DIR = fileURLToPath(new URL('../', import.meta.url))
const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url))
/** A bare node start is ~0.15 s; on a loaded two-core machine it can take seconds. */
const READY_TIMEOUT_MS = 15_000
const REPLY_TIMEOUT_MS = 5_000

export interface Scripts { emitter: string, referenceSub: string }

/** Transpiles one self-contained child script (`name`: its path under bench/, without `.ts`) into
 *  `outDir`, pointing its package imports (`zeromq`, `ws`, …) at this repo's node_modules, which
 *  a file in a temp directory would not find; returns the `.mjs` file to run with `node`. */
export async function compileScript (outDir: string, name: string): Promise<string> {
  const source = await readFile(join(BENCH_DIR, `${name}.ts`), 'utf8')
  const { outputText } = ts.transpileModule(source, {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
    fileName: `${name}.ts`
  })
  const file = join(outDir, `${name.replace(/\//g, '-')}.mjs`)
  const resolved = outputText.replace(/from\s+['"]([a-z@][^'":]*)['"]/g, (_m, pkg: string) => `from ${JSON.stringify(import.meta.resolve(pkg))}`)
  await writeFile(file, resolved)
  return file
}

/** Transpiles the emitter and the reference SUB (see compileScript). */
export async function compileScripts (outDir: string): Promise<Scripts> {
  return { emitter: await compileScript(outDir, 'emitter'), referenceSub: await compileScript(outDir, 'reference-sub') }
}

export type Line = Record<string, unknown>
export interface Arrival { msg: Line, at: number }

interface Waiter { match: (m: Line) => boolean, resolve: (a: Arrival) => void, reject: (e: Error) => void }

/** A child speaking the line protocol. */
export interface LineChild {
  readonly name: string
  readonly child: ChildProcessWithoutNullStreams
  readonly pid: number
  send: (line: string) => void
  /** Starts waiting now (call it before the action it awaits) for the first later line that
   *  matches; rejects after `timeoutMs` with `what` in the message, or if the child exits. */
  expect: (match: (m: Line) => boolean, timeoutMs: number, what: string) => Promise<Arrival>
  readonly stderr: () => string
  readonly exited: Promise<void>
  /** When this process's 'exit' event ran here (it has been reaped), or null. */
  readonly exitAt: () => number | null
}

export async function spawnLineChild (name: string, script: string, args: string[]): Promise<LineChild> {
  const child = track(spawn(process.execPath, [script, ...args], { cwd: REPO_ROOT, stdio: ['pipe', 'pipe', 'pipe'] }))
  child.stdin.on('error', () => {}) // writing to a dead child must not crash the runner
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr = (stderr + chunk).slice(-4000) })
  const waiters = new Set<Waiter>()
  let exitAt: number | null = null
  child.once('exit', () => { exitAt = now() })
  const done = exited(child)
  createInterface({ input: child.stdout }).on('line', (text) => {
    const at = now()
    let msg: Line
    try {
      msg = JSON.parse(text) as Line
    } catch {
      return
    }
    for (const w of waiters) {
      if (w.match(msg)) { waiters.delete(w); w.resolve({ msg, at }); break }
    }
  })
  void done.then(() => {
    for (const w of waiters) w.reject(new Error(`${name} (pid ${String(child.pid)}) exited (${String(child.signalCode ?? child.exitCode)}); stderr: ${stderr.trim() || '(empty)'}`))
    waiters.clear()
  })

  const lc: LineChild = {
    name,
    child,
    pid: child.pid ?? -1,
    send: (line) => { if (isRunning(child)) child.stdin.write(line + '\n') },
    expect (match, timeoutMs, what) {
      let waiter: Waiter | undefined
      const p = new Promise<Arrival>((resolve, reject) => {
        waiter = { match, resolve, reject }
        if (!isRunning(child)) reject(new Error(`${name} is not running; stderr: ${stderr.trim() || '(empty)'}`))
        else waiters.add(waiter)
      })
      const timed = withTimeout(p, timeoutMs, () => `${what}: nothing within ${timeoutMs} ms (${name}, pid ${String(child.pid)}; stderr: ${stderr.trim() || '(empty)'})`)
        .finally(() => { if (waiter !== undefined) waiters.delete(waiter) })
      timed.catch(() => {}) // awaited by the caller; never an unhandled rejection meanwhile
      return timed
    },
    stderr: () => stderr,
    exited: done,
    exitAt: () => exitAt
  }
  await lc.expect((m) => m.ready === true, READY_TIMEOUT_MS, `${name} ready`)
  return lc
}

/** One bench/emitter.ts process, hosting any number of providers. */
export interface EmitterProc extends LineChild {
  add: (id: string, endpoint?: string) => Promise<string>
  /** Stops `id`'s heartbeats; resolves with when its last one was sent. */
  silence: (id: string) => Promise<{ lastBeatAt: number }>
  resume: (id: string) => Promise<void>
}

export async function spawnEmitterProc (scripts: Scripts, intervalMs: number, label: string): Promise<EmitterProc> {
  const lc = await spawnLineChild(`emitter ${label}`, scripts.emitter, ['--interval-ms', String(intervalMs)])
  async function command<T> (line: string, match: (m: Line) => boolean): Promise<T> {
    const reply = lc.expect((m) => match(m) || (m.error !== undefined && m.command === line), REPLY_TIMEOUT_MS, `reply to "${line}"`)
    lc.send(line)
    const { msg } = await reply
    if (typeof msg.error === 'string') throw new Error(`${lc.name}: "${line}" failed: ${msg.error}`)
    return msg as T
  }
  return Object.assign(lc, {
    async add (id: string, endpoint = 'tcp://127.0.0.1:0') {
      const r = await command<{ endpoint: string }>(`add ${id} ${endpoint}`, (m) => m.added === id)
      return r.endpoint
    },
    async silence (id: string) {
      const r = await command<{ lastBeatAt: number | null }>(`silence ${id}`, (m) => m.silenced === id)
      if (r.lastBeatAt === null) throw new Error(`${lc.name}: ${id} was silenced before its first heartbeat`)
      return { lastBeatAt: r.lastBeatAt }
    },
    async resume (id: string) {
      await command(`resume ${id}`, (m) => m.resumed === id)
    }
  })
}

/**
 * Ready, empty emitter processes, so that restarting a killed provider costs a bind, not a
 * process start. Spares are started only by `settled()`, which the caller runs before a sample
 * and never while one is measured: spawn() blocks this event loop for a fork + exec (tens of ms
 * on a busy machine), which would stamp frames already waiting to be read that much late, and a
 * starting Node process is a burst of CPU.
 */
export interface SparePool {
  /** A ready spare (starting one and waiting if there is none). */
  take: () => Promise<EmitterProc>
  /** Tops the pool up and resolves when every spare is ready. */
  settled: () => Promise<void>
  /** Spares started so far (for the report). */
  readonly started: number
}

export function createSparePool (scripts: Scripts, intervalMs: number, size: number): SparePool {
  const ready: EmitterProc[] = []
  let started = 0

  async function settled (): Promise<void> {
    for (let i = ready.length - 1; i >= 0; i--) if (!isRunning((ready[i] as EmitterProc).child)) ready.splice(i, 1)
    const missing = Math.max(0, size - ready.length)
    const fresh = await Promise.all(Array.from({ length: missing }, async () => await spawnEmitterProc(scripts, intervalMs, `spare-${++started}`)))
    ready.push(...fresh)
  }

  return {
    async take () {
      if (ready.length === 0) await settled()
      return ready.shift() as EmitterProc
    },
    settled,
    get started () { return started }
  }
}

/** bench/reference-sub.ts: a bare SUB reporting its monitor's disconnects. */
export async function spawnReferenceSub (scripts: Scripts): Promise<LineChild> {
  return await spawnLineChild('reference-sub', scripts.referenceSub, [])
}
