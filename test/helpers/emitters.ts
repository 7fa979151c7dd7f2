// Heartbeat emitters (heartbeat-emitter.ts or .py) as child processes, for tests that need a
// provider that can really die: SIGKILL closes its TCP connections as a crash would. It owns
// every process it spawns and kills them in killAllEmitters() (call it in afterEach); it must
// never leave one running after the test run.
//
//   const e = await spawnEmitter({ id: 'p1', intervalMs: 100 })   // e.endpoint: tcp://127.0.0.1:PORT
//   await e.silence(); await e.resume(); e.kill('SIGKILL'); await e.exited
//   await spawnEmitter({ id: 'p1', intervalMs: 100, endpoint: e.endpoint })   // back on the same port
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url))
const TS_EMITTER = 'test/helpers/heartbeat-emitter.ts'
const PY_EMITTER = 'test/helpers/heartbeat-emitter.py'
/** The interpreter that has pyzmq here (the one first on PATH may not). */
const PYTHON = '/usr/bin/python3'

/** Whether Debian's pyzmq is there for the independent-peer tests (`apt-get install python3-zmq`). */
export const hasPyzmq = spawnSync(PYTHON, ['-c', 'import zmq']).status === 0
/** Starting node + tsx takes 0.3–1 s, more on a loaded machine. */
const READY_TIMEOUT_MS = 15_000
const COMMAND_TIMEOUT_MS = 5_000

export interface EmitterOptions {
  id: string
  intervalMs: number
  /** `tcp://HOST:PORT`; default `tcp://127.0.0.1:0` (a free port). */
  endpoint?: string
  /** Use the Python (pyzmq) implementation instead of the Node one. */
  python?: boolean
}

export interface Emitter {
  /** The bound endpoint, with the real port. */
  readonly endpoint: string
  readonly pid: number
  /** Stops sending heartbeats, keeping the socket (and its connections) open; resolves once
   *  the emitter confirmed, so nothing is sent after that. */
  silence: () => Promise<void>
  /** Sends a heartbeat at once, then every interval again. */
  resume: () => Promise<void>
  kill: (signal?: NodeJS.Signals) => void
  /** Resolves when the process has exited. */
  readonly exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
}

const live = new Set<ChildProcessWithoutNullStreams>()

export async function spawnEmitter (opts: EmitterOptions): Promise<Emitter> {
  const args = [
    '--endpoint', opts.endpoint ?? 'tcp://127.0.0.1:0',
    '--id', opts.id,
    '--interval-ms', String(opts.intervalMs)
  ]
  const child = opts.python === true
    ? spawn(PYTHON, [PY_EMITTER, ...args], { cwd: REPO_ROOT })
    : spawn(process.execPath, ['--import', 'tsx', TS_EMITTER, ...args], { cwd: REPO_ROOT })
  live.add(child)
  // Writing to a dead child's stdin must not crash the test process.
  child.stdin.on('error', () => {})
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr = (stderr + chunk).slice(-4000) })

  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(child)
      resolve({ code, signal })
    })
  })

  // Replies to silence/resume arrive in order, one per command.
  const waiting: Array<{ cmd: string, resolve: () => void, reject: (err: Error) => void }> = []
  let onReady: ((line: { endpoint: string, pid: number }) => void) | null = null
  createInterface({ input: child.stdout }).on('line', (text) => {
    let msg: { endpoint?: string, pid?: number, ok?: string, error?: string }
    try {
      msg = JSON.parse(text) as typeof msg
    } catch {
      return
    }
    if (msg.endpoint !== undefined && msg.pid !== undefined) onReady?.({ endpoint: msg.endpoint, pid: msg.pid })
    else if (msg.ok !== undefined || msg.error !== undefined) {
      const w = waiting.shift()
      if (msg.ok === w?.cmd) w?.resolve()
      else w?.reject(new Error(`emitter ${opts.id}: ${msg.error ?? `unexpected reply ${text}`}`))
    }
  })
  void exited.then(({ code, signal }) => {
    for (const w of waiting.splice(0)) w.reject(new Error(`emitter ${opts.id} exited (${signal ?? code}) before confirming ${w.cmd}`))
  })

  const ready = await new Promise<{ endpoint: string, pid: number }>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`emitter ${opts.id} did not bind within ${READY_TIMEOUT_MS} ms; stderr: ${stderr}`))
    }, READY_TIMEOUT_MS)
    onReady = (line) => { clearTimeout(timer); resolve(line) }
    void exited.then(({ code, signal }) => {
      clearTimeout(timer)
      reject(new Error(`emitter ${opts.id} exited (${signal ?? code}) before binding; stderr: ${stderr}`))
    })
  })

  function command (cmd: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`emitter ${opts.id} did not confirm ${cmd}`)), COMMAND_TIMEOUT_MS)
      waiting.push({
        cmd,
        resolve: () => { clearTimeout(timer); resolve() },
        reject: (err) => { clearTimeout(timer); reject(err) }
      })
      child.stdin.write(cmd + '\n')
    })
  }

  return {
    endpoint: ready.endpoint,
    pid: ready.pid,
    silence: () => command('silence'),
    resume: () => command('resume'),
    kill: (signal = 'SIGKILL') => { child.kill(signal) },
    exited
  }
}

/** SIGKILLs every emitter still running and waits until they are gone. */
export async function killAllEmitters (): Promise<void> {
  const children = [...live]
  await Promise.all(children.map(async (child) => {
    // Still in `live`, so its 'exit' event has not fired yet.
    const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    child.kill('SIGKILL')
    await gone
  }))
}

// A test process that dies without its afterEach still takes its emitters along.
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL')
})
