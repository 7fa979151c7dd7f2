// The flags of where workers may connect and of the write limits, as a user of the `roster`
// command meets them: bad values exit 2 naming the flag, the help lists them with their
// environment twins and defaults, and a real `roster up` applies the defaults and the twins
// (ROSTER_ALLOW_TARGETS, ROSTER_MIN_CHECK_INTERVAL_MS, ROSTER_WRITE_RATE).
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { connect } from 'node:net'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { freeLeaderBind, freePort } from '../../harness/ports.js'
import { CLEAN_ENV, http, killAllRoster, runRoster, runToExit } from '../../harness/roster-process.js'
import { storageFlags, testStorage, removeTestStorage } from '../helpers/cluster.js'
import { waitFor } from '../../harness/wait-for.js'

const dirs: string[] = []
afterEach(async () => { await killAllRoster() })
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true })
  await removeTestStorage()
})

describe('bad values exit 2 and name the flag', () => {
  it('for every new flag, given as a flag or through its environment twin', async () => {
    const dataDir = join(await mkdtemp(join(tmpdir(), 'roster-flags-')), 'never-created')
    dirs.push(dataDir)
    const cases: Array<{ args: string[], env?: NodeJS.ProcessEnv, names: string }> = [
      { args: ['gateway', '--allow-targets', '10.0.0.0/33'], names: '--allow-targets' },
      { args: ['worker', '--allow-targets', 'example.com'], names: '--allow-targets' },
      { args: ['up', '--data-dir', dataDir], env: { ROSTER_ALLOW_TARGETS: '10.0.0.0/8,' }, names: '--allow-targets' },
      { args: ['gateway', '--min-check-interval-ms', '49'], names: '--min-check-interval-ms' },
      { args: ['gateway', '--min-check-interval-ms', '60001'], names: '--min-check-interval-ms' },
      { args: ['gateway', '--write-rate', '0'], names: '--write-rate' },
      { args: ['gateway'], env: { ROSTER_WRITE_RATE: 'fast' }, names: '--write-rate' },
      { args: ['leader', '--max-providers', '-1', '--data-dir', dataDir], names: '--max-providers' },
      { args: ['leader', '--max-providers-per-service', '1.5', '--data-dir', dataDir], names: '--max-providers-per-service' },
      { args: ['leader', '--write-rate', '5', '--data-dir', dataDir], names: '--write-rate' },
      { args: ['gateway', '--max-providers', '5'], names: '--max-providers' },
      { args: ['gateway', '--http-headers-timeout-ms', '0'], names: '--http-headers-timeout-ms' },
      { args: ['gateway'], env: { ROSTER_HTTP_REQUEST_TIMEOUT_MS: 'soon' }, names: '--http-request-timeout-ms' },
      { args: ['gateway', '--http-connection-timeout-ms', '1.5'], names: '--http-connection-timeout-ms' },
      { args: ['worker', '--http-keep-alive-timeout-ms', '5000'], names: '--http-keep-alive-timeout-ms' }
    ]
    const results = []
    for (const c of cases) results.push({ ...c, ...await runToExit(c.args, c.env) })
    const wrong = results.filter((r) => r.code !== 2 || !r.stderr.includes(r.names) || r.stdout !== '')
    expect(wrong.map((r) => `${r.args.join(' ')} ${JSON.stringify(r.env ?? {})} → ${r.code}: ${r.stderr.split('\n')[0] ?? ''}`)).toEqual([])
  }, 240_000)

  it('the help lists them with defaults and environment twins', async () => {
    const { stdout } = await runToExit(['up', '--help'])
    expect(stdout).toMatch(/--allow-targets\b.*default any.*ROSTER_ALLOW_TARGETS/)
    expect(stdout).toMatch(/--max-providers-per-service\b.*default 100000.*ROSTER_MAX_PROVIDERS_PER_SERVICE/)
    expect(stdout).toMatch(/--max-providers\s.*default 500000.*ROSTER_MAX_PROVIDERS\]/)
    expect(stdout).toMatch(/--write-rate\b.*unset: off.*ROSTER_WRITE_RATE/)
    expect(stdout).toMatch(/--min-check-interval-ms\b.*default 1000.*ROSTER_MIN_CHECK_INTERVAL_MS/)
    expect(stdout).toMatch(/--http-headers-timeout-ms\b.*default 10000.*ROSTER_HTTP_HEADERS_TIMEOUT_MS/)
    expect((await runToExit(['worker', '--help'])).stdout).toMatch(/--allow-targets\b/)
  }, 60_000)
})

describe('roster up', () => {
  it('applies the default minimum check interval, and --allow-targets and --write-rate from their environment twins', async () => {
    const port = await freePort()
    const url = `http://127.0.0.1:${port}`
    const cmd = runRoster(['up', '--port', String(port), '--bind', await freeLeaderBind(), ...storageFlags(await testStorage()), '--log-level', 'warn'],
      { ...CLEAN_ENV, ROSTER_ALLOW_TARGETS: '127.0.0.0/8', ROSTER_WRITE_RATE: '3' })
    await waitFor(() => cmd.stdout().includes('Roster is up') || cmd.child.exitCode !== null, { timeoutMs: 60_000, what: '"Roster is up"' })
    expect(cmd.stdout(), cmd.output()).toContain('Roster is up')
    const provider = `${url}/v1/services/web/providers/web-1`
    const base = { host: '127.0.0.1', port: 8080, protocol: 'http' }

    const tooOften = await http('PUT', provider, { ...base, check: { type: 'tcp', intervalMs: 999, timeoutMs: 100 } })
    expect(tooOften).toMatchObject({ status: 400, body: { message: "body/check/intervalMs must be >= 1000 (this gateway's --min-check-interval-ms), got 999" } })
    const outside = await http('PUT', provider, { ...base, heartbeat: 'tcp://192.0.2.1:9100' })
    expect(outside).toMatchObject({ status: 400, body: { code: 'ROSTER_ERR_TARGET_NOT_ALLOWED', message: expect.stringContaining('127.0.0.0/8') } })
    // Two writes so far in this window, of a budget of 3: the next few reach the limit.
    const statuses: number[] = []
    for (let i = 0; i < 10 && !statuses.includes(429); i++) statuses.push((await http('PUT', provider, { ...base, check: { type: 'tcp', intervalMs: 1000, timeoutMs: 100 } })).status)
    expect(statuses).toContain(429)
    expect(statuses[0]).toBe(201)
  }, 120_000)

  it('closes a connection that dribbles its headers after --http-headers-timeout-ms, and keeps serving', async () => {
    const port = await freePort()
    const cmd = runRoster(['up', '--port', String(port), '--bind', await freeLeaderBind(), ...storageFlags(await testStorage()), '--log-level', 'warn',
      '--http-headers-timeout-ms', '1000'], CLEAN_ENV)
    await waitFor(() => cmd.stdout().includes('Roster is up') || cmd.child.exitCode !== null, { timeoutMs: 60_000, what: '"Roster is up"' })
    expect(cmd.stdout(), cmd.output()).toContain('Roster is up')
    // A slowloris client: a header line every 300 ms, never the blank line that ends them.
    const socket = connect(port, '127.0.0.1')
    const startedAt = Date.now()
    let closedAt: number | null = null
    socket.on('close', () => { closedAt = Date.now() })
    socket.on('error', () => {})
    socket.write('GET /v1/services HTTP/1.1\r\nHost: x\r\n')
    const dribble = setInterval(() => { if (!socket.destroyed) socket.write('X-Slow: 1\r\n') }, 300)
    try {
      await waitFor(() => closedAt !== null, { timeoutMs: 10_000, what: 'the gateway to close the slow connection' })
      // The default (10 s) would have kept it open far longer; the check runs every second.
      expect((closedAt ?? 0) - startedAt).toBeLessThan(4000)
      expect((await http('GET', `http://127.0.0.1:${port}/v1/health`)).status).toBe(200)
    } finally {
      clearInterval(dribble)
      socket.destroy()
    }
  }, 120_000)
})
