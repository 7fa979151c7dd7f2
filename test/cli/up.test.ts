// `roster up` as one process with its gateway on a thread of its own (server/up/threads.ts): a
// real child process, a real heartbeat emitter, REST and the WebSocket feed. The leader and the
// worker run on the main thread; the worker and the gateway reach the leader over ipc sockets in
// a private directory (server/up/local-endpoint.ts). One SIGINT stops all of them, and a gateway
// that fails takes the process down with a message that names it.
import { readdir, readFile, stat } from 'node:fs/promises'
import { createServer } from 'node:net'
import { describe, expect, it } from 'vitest'
import { freeLeaderBind, freePort } from '../../harness/ports.js'
import { CLEAN_ENV, http, runRoster, type RosterCommand } from '../../harness/roster-process.js'
import { readFeed, storageFlags, testStorage } from '../helpers/cluster.js'
import { cleanUpAfterEachTest } from '../helpers/e2e-cleanup.js'
import { spawnEmitter } from '../helpers/emitters.js'
import { waitFor } from '../../harness/wait-for.js'

const UP_TIMEOUT_MS = 60_000
/** server/cli.ts STOP_DEADLINE_MS (3 s) plus the time to deliver a signal and reap a process. */
const EXIT_BOUND_MS = 3500
const INTERVAL_MS = 100

cleanUpAfterEachTest()

async function waitForUp (cmd: RosterCommand): Promise<void> {
  await waitFor(() => cmd.stdout().includes('Roster is up') || cmd.child.exitCode !== null, { timeoutMs: UP_TIMEOUT_MS, what: '"Roster is up"' })
  if (!cmd.stdout().includes('Roster is up')) throw new Error(`roster up exited early:\n${cmd.output()}`)
}

/** CPU time (clock ticks) of each thread of `pid`, by thread id. */
async function threadTicks (pid: number): Promise<Map<number, number>> {
  const out = new Map<number, number>()
  for (const tid of await readdir(`/proc/${pid}/task`)) {
    const stat = await readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8').catch(() => '')
    // After the command name in parentheses: state is field 3, utime and stime fields 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    if (fields.length > 13) out.set(Number(tid), Number(fields[11]) + Number(fields[12]))
  }
  return out
}

/** The paths of the Unix sockets that `pid` has open (bound or connected). */
async function unixSocketPaths (pid: number): Promise<string[]> {
  const text = await readFile(`/proc/${pid}/net/unix`, 'utf8')
  const paths = new Set<string>()
  for (const line of text.split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/)
    if (cols.length === 8 && cols[7]?.includes('/roster-') === true) paths.add(cols[7])
  }
  return [...paths]
}

describe('roster up', () => {
  it('serves with its gateway on a thread, its roles linked over ipc, and one SIGINT stops them all within the deadline', async () => {
    const port = await freePort()
    const bind = await freeLeaderBind()
    const cmd = runRoster(['up', '--port', String(port), '--bind', bind, ...storageFlags(await testStorage('roster-up-')), '--log-level', 'warn'], CLEAN_ENV)
    await waitForUp(cmd)
    const url = `http://127.0.0.1:${port}`

    // A provider with a real heartbeat: registered through the gateway thread, watched by the
    // worker, judged up by the leader, and seen over REST and on the feed.
    const feed = await readFeed(url)
    const emitter = await spawnEmitter({ id: 'orders-1', intervalMs: INTERVAL_MS })
    const put = await http('PUT', `${url}/v1/services/orders/providers/orders-1`, {
      host: '127.0.0.1', port: 8080, protocol: 'http', heartbeat: emitter.endpoint, heartbeatIntervalMs: INTERVAL_MS
    })
    expect(put.status).toBe(201)
    await feed.next((m) => m.event === 'up' && m.provider?.id === 'orders-1', { timeoutMs: 20_000 })
    await waitFor(async () => (await http('GET', `${url}/v1/services/orders/providers/orders-1`)).body.state === 'up', { timeoutMs: 10_000, what: 'orders-1 up over REST' })

    // The worker and the gateway reach the leader over ipc: the ROUTER and its PUB, bound in a
    // private directory, have connections (one per follower socket) besides their listeners.
    const sockets = await unixSocketPaths(cmd.pid)
    const router = sockets.find((p) => p.endsWith('/leader'))
    expect(router, JSON.stringify(sockets)).toBeDefined()
    expect(sockets).toContain(`${router as string}.events`)
    const dir = (router as string).slice(0, -'/leader'.length)
    expect((await stat(dir)).mode & 0o777).toBe(0o700)

    // The gateway answers on a thread of its own: a burst of requests costs CPU on a thread
    // other than the main one, where the leader runs.
    const before = await threadTicks(cmd.pid)
    await Promise.all(Array.from({ length: 8 }, async () => {
      for (let i = 0; i < 150; i++) await http('GET', `${url}/v1/services/orders/providers`)
    }))
    const after = await threadTicks(cmd.pid)
    const busiest = [...after].map(([tid, ticks]) => [tid, ticks - (before.get(tid) ?? 0)] as const).sort((a, b) => b[1] - a[1])[0]
    expect(busiest?.[0]).not.toBe(cmd.pid)
    expect(after.size).toBeGreaterThan(2)

    const t0 = Date.now()
    cmd.child.kill('SIGINT')
    const { code, signal } = await cmd.exited
    expect({ code, signal, stderr: cmd.stderr() }).toEqual({ code: 0, signal: null, stderr: '' })
    // Nothing went wrong on the way: no error was logged (pino writes to stdout).
    expect(cmd.stdout()).not.toMatch(/"level":(50|60)/)
    expect(Date.now() - t0).toBeLessThan(EXIT_BOUND_MS)
    // Stopped in order, the gateway first: the feed was closed with 1001 going away.
    await waitFor(() => feed.closed !== null, { timeoutMs: 2000, what: 'the feed closed' })
    expect(feed.closed?.code).toBe(1001)
    await expect(stat(dir)).rejects.toMatchObject({ code: 'ENOENT' })
  }, 120_000)

  it('a gateway thread that fails takes the whole process down with a message naming it, exit 1', async () => {
    // The gateway thread starts after the leader and the worker, and fails: its port is taken.
    // Both are then stopped in order, and the process exits with the gateway's reason.
    const taken = createServer()
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve))
    const port = (taken.address() as { port: number }).port
    try {
      const cmd = runRoster(['up', '--port', String(port), '--bind', await freeLeaderBind(), ...storageFlags(await testStorage('roster-up-')), '--log-level', 'warn'], CLEAN_ENV)
      const { code } = await cmd.exited
      expect(code, cmd.output()).toBe(1)
      expect(cmd.stderr()).toMatch(/^roster up: the gateway thread failed: .*EADDRINUSE/m)
      expect(cmd.stdout()).not.toContain('Roster is up')
    } finally {
      taken.close()
    }
  }, 120_000)
})
