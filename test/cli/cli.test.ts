// The `roster` command as a user runs it: `node bin/roster.js …` child processes, their exit
// codes and what they print, real ports, a real data directory, and the data surviving a
// graceful stop on both storage backends.
import { existsSync, readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { freeLeaderBind, freePort } from '../../harness/ports.js'
import { CLEAN_ENV, http, killAllRoster, runRoster, runToExit, waitForLeader, waitForReady, type RosterCommand } from '../../harness/roster-process.js'
import { adminQuery } from '../../harness/postgres-admin.js'
import { freshDatabaseUrl } from '../helpers/postgres.js'
import { waitFor } from '../../harness/wait-for.js'

/** Node + tsx start in about a second; the embedded Postgres's first start (initdb) about one
 *  more; a loaded 2-core machine can take several times that. */
const EXIT_TIMEOUT_MS = 60_000
const UP_TIMEOUT_MS = 60_000

const tempDirs: string[] = []
async function tempDir (): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'roster-cli-'))
  tempDirs.push(d)
  return d
}

afterEach(async () => {
  await killAllRoster()
})
afterAll(async () => {
  for (const d of tempDirs) await rm(d, { recursive: true, force: true })
})

interface Up { cmd: RosterCommand, url: string, bind: string }

/**
 * `roster up` on free ports (or, with `ports`, on those, passed through `env`); resolves once it
 * printed that it is up. Ports it chose itself are chosen again if another process took one
 * before `roster up` could bind it.
 */
async function rosterUp (storageFlags: string[], env: NodeJS.ProcessEnv = {}, ports?: { port: number, bind: string }): Promise<Up> {
  for (let attempt = 1; ; attempt++) {
    const port = ports?.port ?? await freePort()
    const bind = ports?.bind ?? await freeLeaderBind()
    const portFlags = ports === undefined ? ['--port', String(port), '--bind', bind] : []
    const cmd = runRoster(['up', ...portFlags, ...storageFlags, '--log-level', 'warn'], { ...CLEAN_ENV, ...env })
    await waitFor(() => cmd.stdout().includes('Roster is up') || cmd.child.exitCode !== null, {
      timeoutMs: UP_TIMEOUT_MS, what: '"Roster is up"'
    }).catch((err: Error) => { throw new Error(`${err.message}\n${cmd.output()}`) })
    if (cmd.stdout().includes('Roster is up')) return { cmd, url: `http://127.0.0.1:${port}`, bind }
    await cmd.exited
    if (ports === undefined && cmd.stderr().includes('EADDRINUSE') && attempt < 5) continue
    throw new Error(`roster up exited early:\n${cmd.output()}`)
  }
}

/** `roster up` on a fresh data directory, with one registration made (`orders-1`). */
async function upWithOneProvider (): Promise<{ dataDir: string, first: Up, put: Awaited<ReturnType<typeof http>> }> {
  const dataDir = await tempDir()
  const first = await rosterUp(['--data-dir', dataDir])
  await waitForReady(first.url)
  const put = await http('PUT', `${first.url}/v1/services/orders/providers/orders-1`, {
    host: '10.0.0.5', port: 8080, protocol: 'http', check: { type: 'ttl', ttlMs: 60_000 }
  })
  expect(put.status).toBe(201)
  return { dataDir, first, put }
}

/** `roster up` again on that data directory: it serves `orders-1` as it was stored. */
async function upAgainWithIt (dataDir: string, revision: number): Promise<Up> {
  const again = await rosterUp(['--data-dir', dataDir])
  await waitForReady(again.url)
  const read = await http('GET', `${again.url}/v1/services/orders/providers/orders-1`)
  expect(read.status).toBe(200)
  expect(read.body.revision).toBe(revision)
  return again
}

const FLAGS_BY_ROLE: Record<string, { has: string[], not: string[] }> = {
  up: { has: ['--port', '--host', '--database-url', '--data-dir', '--bind', '--log-level', '--help'], not: ['--leader'] },
  leader: { has: ['--database-url', '--data-dir', '--bind', '--log-level', '--help'], not: ['--port', '--host', '--leader'] },
  worker: { has: ['--leader', '--log-level', '--help'], not: ['--port', '--host', '--bind', '--data-dir', '--database-url'] },
  gateway: { has: ['--port', '--host', '--leader', '--log-level', '--help'], not: ['--bind', '--data-dir', '--database-url'] }
}

describe('roster --help', () => {
  it('the top level lists the four commands, exit 0', async () => {
    for (const args of [['--help'], ['-h']]) {
      const { code, stdout, stderr } = await runToExit(args)
      expect({ args, code, stderr }).toEqual({ args, code: 0, stderr: '' })
      expect(stdout).toContain('Usage: roster <command>')
      for (const role of ['up', 'leader', 'worker', 'gateway']) expect(stdout).toMatch(new RegExp(`^\\s+${role}\\s`, 'm'))
    }
  }, 120_000)

  it.each(Object.keys(FLAGS_BY_ROLE))('roster %s --help lists its flags with their environment twins, exit 0', async (role) => {
    const { code, stdout, stderr } = await runToExit([role, '--help'])
    expect(code).toBe(0)
    expect(stderr).toBe('')
    expect(stdout).toContain(`Usage: roster ${role} [flags]`)
    const { has, not } = FLAGS_BY_ROLE[role] as { has: string[], not: string[] }
    for (const flag of has) expect(stdout).toMatch(new RegExp(`^\\s+${flag}\\s`, 'm'))
    for (const flag of not) expect(stdout).not.toMatch(new RegExp(`^\\s+${flag}\\s`, 'm'))
    // README.md › Configuration: the environment twins and the defaults.
    if (has.includes('--port')) expect(stdout).toMatch(/--port\b.*default 7070.*\bPORT\b/)
    if (has.includes('--host')) expect(stdout).toMatch(/--host\b.*default 127\.0\.0\.1.*\bHOST\b/)
    if (has.includes('--database-url')) expect(stdout).toMatch(/--database-url\b.*\bDATABASE_URL\b/)
    if (has.includes('--data-dir')) expect(stdout).toMatch(/--data-dir\b.*default \.\/\.roster/)
    if (has.includes('--bind')) expect(stdout).toMatch(/--bind\b.*default tcp:\/\/127\.0\.0\.1:7071/)
    if (has.includes('--leader')) expect(stdout).toMatch(/--leader\b.*default tcp:\/\/127\.0\.0\.1:7071/)
    expect((await runToExit([role, '-h'])).stdout).toBe(stdout)
  }, 60_000)
})

describe('roster with bad arguments exits 2 and says what was wrong', () => {
  const cases: Array<{ args: string[], names: string }> = [
    { args: ['frobnicate'], names: 'frobnicate' },
    { args: ['--frobnicate'], names: '--frobnicate' },
    { args: ['up', '--frobnicate'], names: '--frobnicate' },
    { args: ['leader', '--frobnicate', 'x'], names: '--frobnicate' },
    { args: ['worker', '--frobnicate'], names: '--frobnicate' },
    { args: ['gateway', '--frobnicate'], names: '--frobnicate' },
    { args: ['worker', '--port', '7070'], names: '--port' },
    { args: ['leader', '--leader', 'tcp://127.0.0.1:7071'], names: '--leader' },
    { args: ['up', '--bind', 'nonsense'], names: '--bind' },
    { args: ['leader', '--bind', 'nonsense'], names: '--bind' },
    { args: ['leader', '--bind', 'tcp://127.0.0.1:65535'], names: '--bind' },
    { args: ['gateway', '--leader', 'nonsense'], names: '--leader' },
    { args: ['worker', '--leader', 'tcp://127.0.0.1:7071,nonsense'], names: '--leader' },
    { args: ['up', '--port', 'http'], names: '--port' },
    { args: ['gateway', '--port', '70000'], names: '--port' },
    { args: ['worker', '--log-level', 'loud'], names: '--log-level' }
  ]

  it('for unknown commands and flags, flags of another role, and bad values', async () => {
    const dataDir = join(await tempDir(), 'never-created')
    // Two at a time: each run starts Node and tsx, about a core-second apiece.
    const results: Array<{ args: string[], names: string, code: number | null, stdout: string, stderr: string }> = []
    const queue = [...cases]
    await Promise.all([0, 1].map(async () => {
      for (let c = queue.shift(); c !== undefined; c = queue.shift()) {
        // A data directory on every `up`/`leader`: a rejected command must not even create it.
        const args = c.args[0] === 'up' || c.args[0] === 'leader' ? [...c.args, '--data-dir', dataDir] : c.args
        results.push({ args: c.args, names: c.names, ...await runToExit(args) })
      }
    }))
    const wrong = results.filter((r) => r.code !== 2 || !r.stderr.includes(r.names) || r.stdout !== '')
    expect(wrong.map((r) => `${r.args.join(' ')} → ${r.code}: ${r.stderr.split('\n')[0] ?? ''} ${r.stdout}`)).toEqual([])
    expect(existsSync(dataDir)).toBe(false)
  }, 240_000)
})

describe('roster up', () => {
  it('prints its URLs, serves, refuses a second instance on its data directory, and keeps the data across a SIGTERM (embedded Postgres)', async () => {
    const dataDir = await tempDir()
    const first = await rosterUp(['--data-dir', dataDir])
    const out = first.cmd.stdout()
    expect(out).toContain(`Storage: embedded Postgres in ${dataDir}`)
    expect(out).toContain(`${first.url}/v1/services`)
    expect(out).toContain(`${first.url.replace('http', 'ws')}/v1/watch`)
    expect(out).toContain(`${first.url}/openapi.json`)
    expect(out).toContain(first.bind)
    const health = await http('GET', `${first.url}/v1/health`)
    expect(health.status).toBe(200)
    expect(health.body.status).toBe('ok')

    await waitForLeader(first.url)
    await waitForReady(first.url)
    const put = await http('PUT', `${first.url}/v1/services/orders/providers/orders-1`, {
      host: '10.0.0.5', port: 8080, protocol: 'http', heartbeat: 'tcp://127.0.0.1:9', tags: ['blue']
    })
    expect(put.status).toBe(201)

    // A second `roster up` on the same data directory, on other ports, is refused…
    const second = runRoster(['up', '--data-dir', dataDir, '--port', String(await freePort()), '--bind', await freeLeaderBind()], CLEAN_ENV)
    const timer = setTimeout(() => { void second.kill('SIGKILL') }, EXIT_TIMEOUT_MS)
    const { code } = await second.exited
    clearTimeout(timer)
    expect(code, second.output()).not.toBe(0)
    expect(code).not.toBeNull()
    expect(second.stderr()).toContain('ROSTER_ERR_DATA_DIR_LOCKED')
    expect(second.stderr()).toContain(`in use by process ${first.cmd.pid}`)
    expect(second.stdout()).not.toContain('Roster is up')

    // …and the first one keeps serving, reads and writes.
    expect((await http('GET', `${first.url}/v1/services/orders/providers/orders-1`)).status).toBe(200)
    const put2 = await http('PUT', `${first.url}/v1/services/orders/providers/orders-2`, {
      host: '10.0.0.6', port: 8080, protocol: 'rpc', heartbeat: 'tcp://127.0.0.1:9'
    })
    expect(put2.status).toBe(201)
    const before = await http('GET', `${first.url}/v1/services/orders/providers?minRevision=${put2.body.revision}`)

    await first.cmd.kill('SIGTERM')
    expect(await first.cmd.exited).toEqual({ code: 0, signal: null })
    expect(first.cmd.stderr()).not.toMatch(/"level":(50|60)/)

    // Started again on the same directory, through the environment twins this time.
    const port = await freePort()
    const bind = await freeLeaderBind()
    const again = await rosterUp([], { ROSTER_DATA_DIR: dataDir, PORT: String(port), ROSTER_BIND: bind }, { port, bind })
    await waitForLeader(again.url)
    await waitForReady(again.url)
    const after = await http('GET', `${again.url}/v1/services/orders/providers`)
    expect(after.status).toBe(200)
    expect(after.body).toEqual(before.body)
    expect(after.headers.get('x-roster-revision')).toBe(String(put2.body.revision))
    await again.cmd.kill('SIGTERM')
    expect(await again.cmd.exited).toEqual({ code: 0, signal: null })
  }, 180_000)

  it('comes back after a SIGKILL: stops the Postgres the killed one left running and keeps every registration', async () => {
    const { dataDir, first, put } = await upWithOneProvider()
    const orphan = serverPid(dataDir)
    await first.cmd.kill('SIGKILL')
    await first.cmd.exited
    expect(isAlive(orphan), 'the killed roster up left its Postgres running').toBe(true)

    const again = await upAgainWithIt(dataDir, put.body.revision)
    expect(isAlive(orphan)).toBe(false)
    const server = serverPid(dataDir)
    await again.cmd.kill('SIGTERM')
    expect(await again.cmd.exited).toEqual({ code: 0, signal: null })
    // An orderly stop takes its Postgres with it.
    expect(isAlive(server)).toBe(false)
    expect(existsSync(join(dataDir, 'pg', 'postmaster.pid'))).toBe(false)
  }, 180_000)

  it('goes down with a clear message, exit 1, when its embedded Postgres dies, and the next start keeps every registration', async () => {
    const { dataDir, first, put } = await upWithOneProvider()
    const server = serverPid(dataDir)
    process.kill(server, 'SIGKILL')
    expect(await first.cmd.exited).toEqual({ code: 1, signal: null })
    expect(first.cmd.stderr()).toContain(`roster up: the embedded Postgres (pid ${server}) exited`)
    expect(first.cmd.stderr()).toContain(join(dataDir, 'postgres.log'))

    const again = await upAgainWithIt(dataDir, put.body.revision)
    await again.cmd.kill('SIGTERM')
    expect(await again.cmd.exited).toEqual({ code: 0, signal: null })
  }, 180_000)

  it('refuses a --bind that another Roster already uses, instead of joining that Roster', async () => {
    const first = await rosterUp(['--data-dir', await tempDir()])
    await waitForLeader(first.url)
    await waitForReady(first.url)
    expect((await http('PUT', `${first.url}/v1/services/mine/providers/first-1`, {
      host: '10.0.0.5', port: 8080, protocol: 'http', heartbeat: 'tcp://127.0.0.1:9'
    })).status).toBe(201)

    // Another data directory (another registry), another HTTP port, the same leader endpoint.
    const port = await freePort()
    const second = runRoster(['up', '--data-dir', await tempDir(), '--port', String(port), '--bind', first.bind, '--log-level', 'warn'], CLEAN_ENV)
    await waitFor(() => second.child.exitCode !== null || second.stdout().includes('Roster is up'), {
      timeoutMs: UP_TIMEOUT_MS, what: 'the second `roster up` to exit or to say it is up'
    })
    const leaked = second.stdout().includes('Roster is up')
      ? (await http('GET', `http://127.0.0.1:${port}/v1/services`).catch(() => null))?.body
      : undefined
    // Today it says it is up, serves the *first* Roster's registry through its gateway (its
    // own leader retries the bind every 500 ms forever), and its writes land in the first
    // Roster's database.
    expect(second.child.exitCode, `the second roster up did not exit; its gateway serves ${JSON.stringify(leaked)}\n${second.output()}`).not.toBeNull()
    const { code } = await second.exited
    expect(code).not.toBe(0)
    expect(second.stderr()).toContain(first.bind)
    expect((await http('GET', `${first.url}/v1/services/mine/providers/first-1`)).status).toBe(200)
  }, 180_000)

  it('says "Roster is up" only once it serves reads, also when its leader is slow to take over', async () => {
    const databaseUrl = await freshDatabaseUrl()
    // A session that holds the registry's metadata row stalls the leader's takeover (its epoch
    // claim waits for the row, as behind a slow disk or a long-running transaction).
    const blocker = new pg.Client({ connectionString: databaseUrl })
    await blocker.connect()
    let released = false
    const release = async (): Promise<void> => {
      if (released) return
      released = true
      await blocker.query('rollback')
    }
    try {
      await blocker.query('begin')
      await blocker.query('select * from roster_meta where id = 1 for update')
      const port = await freePort()
      const url = `http://127.0.0.1:${port}`
      const cmd = runRoster(['up', '--database-url', databaseUrl, '--port', String(port), '--bind', await freeLeaderBind(), '--log-level', 'error'], CLEAN_ENV)
      // Its leader is stuck as soon as a session of this database waits for our row lock.
      await waitFor(async () => {
        // From another session: inside the blocker's transaction pg_stat_activity is a snapshot.
        const rows = await adminQuery<{ n: number }>(databaseUrl,
          "select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'")
        return (rows[0]?.n ?? 0) > 0
      }, { timeoutMs: UP_TIMEOUT_MS, what: 'the leader to wait for the registry row' })
        .catch((err: Error) => { throw new Error(`${err.message}\n${cmd.output()}`) })
      // An observation window (not a wait for a condition): 8 s in which it may claim to be up.
      await waitFor(() => cmd.stdout().includes('Roster is up'), { timeoutMs: 8000 }).catch(() => {})
      if (cmd.stdout().includes('Roster is up')) {
        const read = await http('GET', `${url}/v1/services`)
        expect(read.status, `GET /v1/services right after "Roster is up": ${JSON.stringify(read.body)}`).toBe(200)
      }
      await release()
      await waitFor(() => cmd.stdout().includes('Roster is up'), { timeoutMs: UP_TIMEOUT_MS, what: '"Roster is up"' })
      expect((await http('GET', `${url}/v1/services`)).status).toBe(200)
      await cmd.kill('SIGTERM')
      expect(await cmd.exited).toEqual({ code: 0, signal: null })
    } finally {
      await release().catch(() => {})
      await blocker.end()
    }
  }, 180_000)

  it('keeps the data across a SIGTERM on server Postgres (--database-url)', async () => {
    const databaseUrl = await freshDatabaseUrl()
    const first = await rosterUp(['--database-url', databaseUrl])
    expect(first.cmd.stdout()).toContain('Storage: Postgres at ')
    await waitForLeader(first.url)
    await waitForReady(first.url)
    const puts = []
    for (let i = 0; i < 5; i++) {
      const res = await http('PUT', `${first.url}/v1/services/billing/providers/billing-${i}`, {
        host: '10.0.0.5', port: 8080 + i, protocol: 'pub', heartbeat: 'tcp://127.0.0.1:9', meta: { i: String(i) }
      })
      expect(res.status).toBe(201)
      puts.push(res.body.revision as number)
    }
    const del = await http('DELETE', `${first.url}/v1/services/billing/providers/billing-0`)
    expect(del.status).toBe(200)
    const before = await http('GET', `${first.url}/v1/services/billing/providers?minRevision=${del.body.revision}`)

    await first.cmd.kill('SIGTERM')
    expect(await first.cmd.exited).toEqual({ code: 0, signal: null })

    const again = await rosterUp(['--database-url', databaseUrl])
    await waitForLeader(again.url)
    await waitForReady(again.url)
    const after = await http('GET', `${again.url}/v1/services/billing/providers`)
    expect(after.body).toEqual(before.body)
    expect(after.body.providers.map((p: { id: string }) => p.id)).toEqual(['billing-1', 'billing-2', 'billing-3', 'billing-4'])
    // The revision sequence continues where it was: the next write is the next revision.
    const next = await http('PUT', `${again.url}/v1/services/billing/providers/billing-5`, {
      host: '10.0.0.5', port: 9000, protocol: 'http', heartbeat: 'tcp://127.0.0.1:9'
    })
    expect(next.body.revision).toBe(del.body.revision + 1)
    await again.cmd.kill('SIGTERM')
    expect(await again.cmd.exited).toEqual({ code: 0, signal: null })
  }, 180_000)
})

/** The embedded Postgres's postmaster pid, from its pid file in the data directory. */
function serverPid (dataDir: string): number {
  return Number(readFileSync(join(dataDir, 'pg', 'postmaster.pid'), 'utf8').split('\n')[0])
}

function isAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}
