// Runs a TypeScript script in a child Node process (through tsx), for tests that need a second
// process. Resolves with its exit code and output; never rejects on a non-zero exit.
import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url))

export interface ChildRun {
  readonly child: ChildProcess
  readonly done: Promise<{ code: number | null, stdout: string, stderr: string }>
}

export function runTs (script: string, args: string[]): ChildRun {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const done = new Promise<{ code: number | null, stdout: string, stderr: string }>((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (code) => { resolve({ code, stdout, stderr }) })
  })
  return { child, done }
}

/** The last JSON line a child printed. */
export function lastJsonLine (stdout: string): unknown {
  const line = stdout.trim().split('\n').at(-1)
  if (line === undefined || line === '') throw new Error('the child printed nothing')
  return JSON.parse(line)
}
