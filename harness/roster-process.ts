// `roster` as child processes, for the tests and for the tools that run Roster outside vitest
// (bench/, chaos/): start one, run one to its exit, kill them all, wait until a gateway has a
// leader and answers reads, and a small JSON fetch. Nothing here imports vitest or test/.
import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { waitFor } from './wait-for.js'

const ROSTER_BIN = fileURLToPath(new URL('../bin/roster.js', import.meta.url))

export interface RosterProcess {
  child: ChildProcess
  output: () => string
  kill: (signal?: NodeJS.Signals) => Promise<void>
}

const running = new Set<ChildProcess>()

/** Starts `roster <args>` as a child process; its output is kept for failure messages. */
export function spawnRoster (args: string[], env: NodeJS.ProcessEnv = {}): RosterProcess {
  const child = spawn(process.execPath, [ROSTER_BIN, ...args, '--log-level', 'warn'], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  running.add(child)
  let output = ''
  child.stdout?.on('data', (d: Buffer) => { output += d.toString() })
  child.stderr?.on('data', (d: Buffer) => { output += d.toString() })
  const exited = new Promise<void>((resolve) => child.once('exit', () => { running.delete(child); resolve() }))
  return {
    child,
    output: () => output,
    kill: async (signal = 'SIGKILL') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      await exited
    }
  }
}

export interface RosterCommand extends RosterProcess {
  readonly pid: number
  stdout: () => string
  stderr: () => string
  /** Resolves when the process has exited and its output is complete. */
  readonly exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
}

/** Every environment twin of a flag (and ROSTER_BOOTSTRAP_TOKEN) unset, so that only what a test
 *  passes counts: a `roster` child otherwise inherits whatever the developer's shell exports. */
export const CLEAN_ENV: NodeJS.ProcessEnv = Object.fromEntries(
  [...Object.keys(process.env).filter((k) => k.startsWith('ROSTER_')), 'PORT', 'HOST', 'DATABASE_URL'].map((k) => [k, undefined])
)

/** Node + tsx start in about a second; a loaded 2-core machine can take many times that. */
const EXIT_TIMEOUT_MS = 60_000

/** Runs a `roster` command that is expected to exit by itself, in CLEAN_ENV plus `env`. */
export async function runToExit (args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null, stdout: string, stderr: string }> {
  const cmd = runRoster(args, { ...CLEAN_ENV, ...env })
  const timer = setTimeout(() => { void cmd.kill('SIGKILL') }, EXIT_TIMEOUT_MS)
  const { code } = await cmd.exited
  clearTimeout(timer)
  return { code, stdout: cmd.stdout(), stderr: cmd.stderr() }
}

/**
 * Runs `roster <args>` exactly as given (no `--log-level` added), with stdout and stderr kept
 * apart: for tests of the command line itself. Tracked like spawnRoster: killAllRoster kills it.
 */
export function runRoster (args: string[], env: NodeJS.ProcessEnv = {}): RosterCommand {
  const child = spawn(process.execPath, [ROSTER_BIN, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  running.add(child)
  let stdout = ''
  let stderr = ''
  child.stdout?.on('data', (d: Buffer) => { stdout += d.toString() })
  child.stderr?.on('data', (d: Buffer) => { stderr += d.toString() })
  child.once('exit', () => { running.delete(child) })
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (code, signal) => resolve({ code, signal }))
  })
  return {
    child,
    pid: child.pid as number,
    stdout: () => stdout,
    stderr: () => stderr,
    output: () => stdout + stderr,
    exited,
    kill: async (signal = 'SIGKILL') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      await exited
    }
  }
}

/** Kills every child process spawnRoster started that is still running. */
export async function killAllRoster (): Promise<void> {
  await Promise.all([...running].map(async (child) => {
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGKILL')
    await exited
  }))
}

export async function waitForLeader (url: string, timeoutMs = 15_000): Promise<void> {
  await waitFor(async () => {
    const res = await fetch(`${url}/v1/health`).catch(() => null)
    if (res === null || !res.ok) return false
    const body = await res.json() as { leader: string }
    return body.leader === 'connected'
  }, { timeoutMs, message: `gateway ${url} never reported a connected leader` })
}

/**
 * Waits until the gateway at `url` answers reads (GET /v1/services is 200): its replica holds a
 * snapshot. A gateway reports `leader: connected` a moment before that, and reads or a
 * `/v1/watch` upgrade in that moment get 503 ROSTER_ERR_NOT_READY.
 */
export async function waitForReady (url: string, timeoutMs = 15_000): Promise<void> {
  await waitFor(async () => {
    const res = await fetch(`${url}/v1/services`).catch(() => null)
    if (res === null) return false
    await res.arrayBuffer()
    return res.ok
  }, { timeoutMs, message: `gateway ${url} never answered GET /v1/services with 200` })
}

/** A fetch wrapper that returns status and parsed JSON body. */
export async function http (method: string, url: string, body?: unknown): Promise<{ status: number, body: any, headers: Headers }> {
  const res = await fetch(url, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  const text = await res.text()
  return { status: res.status, headers: res.headers, body: text === '' ? undefined : JSON.parse(text) }
}
