// `--auth`, the bootstrap secret and `roster token …` as a user runs them: real `roster up`
// processes, real gateways refusing to start, the token commands against a live server, their
// exit codes and what they print. No secret may appear in a process's output but the one answer
// that creates it.
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { freeLeaderBind, freePort } from '../../harness/ports.js'
import { CLEAN_ENV, killAllRoster, runRoster, runToExit, type RosterCommand } from '../../harness/roster-process.js'
import { removeTestStorage, storageFlags, testStorage } from '../helpers/cluster.js'
import { waitFor } from '../../harness/wait-for.js'

const UP_TIMEOUT_MS = 60_000
const BOOTSTRAP = 'cli-bootstrap-secret-0123456789abcdefghij'

/** Each `roster` child starts through tsx in 1–3 s here, several times that on a loaded machine;
 *  the tests that run a dozen commands get minutes. */

afterEach(async () => { await killAllRoster() })
afterAll(async () => { await removeTestStorage() })

async function rosterUp (extra: string[], env: NodeJS.ProcessEnv = {}): Promise<{ cmd: RosterCommand, url: string }> {
  const storage = await testStorage('roster-cli-auth-')
  for (let attempt = 1; ; attempt++) {
    const port = await freePort()
    const cmd = runRoster(['up', '--port', String(port), '--bind', await freeLeaderBind(), ...storageFlags(storage), '--log-level', 'warn', ...extra], { ...CLEAN_ENV, ...env })
    await waitFor(() => cmd.stdout().includes('Roster is up') || cmd.child.exitCode !== null, { timeoutMs: UP_TIMEOUT_MS, what: '"Roster is up"' })
      .catch((err: Error) => { throw new Error(`${err.message}\n${cmd.output()}`) })
    if (cmd.stdout().includes('Roster is up')) return { cmd, url: `http://127.0.0.1:${port}` }
    await cmd.exited
    if (cmd.stderr().includes('EADDRINUSE') && attempt < 5) continue
    throw new Error(`roster up exited early:\n${cmd.output()}`)
  }
}

async function get (url: string, token?: string): Promise<number> {
  const res = await fetch(url, { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } })
  await res.arrayBuffer()
  return res.status
}

describe('--auth', () => {
  it('refuses to serve a non-loopback host without auth (exit 2, naming --auth on and --insecure-no-auth)', async () => {
    for (const args of [['gateway', '--host', '0.0.0.0'], ['gateway', '--host', '0.0.0.0', '--auth', 'off'], ['up', '--host', '10.1.2.3']]) {
      const { code, stderr } = await runToExit([...args, '--port', String(await freePort())])
      expect(code, args.join(' ')).toBe(2)
      expect(stderr).toContain('--auth on')
      expect(stderr).toContain('--insecure-no-auth')
    }
    const bad = await runToExit(['gateway', '--auth', 'maybe'])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('--auth must be on or off')
    const weak = await runToExit(['leader', '--bind', await freeLeaderBind()], { ROSTER_BOOTSTRAP_TOKEN: 'short' })
    expect(weak.code).toBe(2)
    expect(weak.stderr).toContain('ROSTER_BOOTSTRAP_TOKEN must be 32–256')
    expect(weak.stderr).not.toContain('short')
  }, 120_000)

  it('starts a non-loopback gateway with --insecure-no-auth, and says auth is off on loopback', async () => {
    const port = await freePort()
    const open = runRoster(['gateway', '--host', '0.0.0.0', '--port', String(port), '--insecure-no-auth', '--leader', await freeLeaderBind()], CLEAN_ENV)
    await waitFor(async () => (await get(`http://127.0.0.1:${port}/v1/health`).catch(() => 0)) === 200, { timeoutMs: UP_TIMEOUT_MS, what: 'the open gateway' })
      .catch((err: Error) => { throw new Error(`${err.message}\n${open.output()}`) })
    // Open: no token asked for (it has no leader, so not ready: 503, never 401).
    expect(await get(`http://127.0.0.1:${port}/v1/services`)).toBe(503)
    const { cmd } = await rosterUp([])
    expect(cmd.stdout()).toMatch(/"auth":"off","authNote":"off: anyone who can reach this loopback address/)
  }, 120_000)
})

describe('bootstrap and `roster token`', () => {
  it('installs ROSTER_BOOTSTRAP_TOKEN as admin; create, list and revoke work against a live roster up', async () => {
    const { cmd, url } = await rosterUp(['--auth', 'on'], { ROSTER_BOOTSTRAP_TOKEN: BOOTSTRAP })
    expect(cmd.stdout()).toMatch(/"auth":"on","authNote":"on: every request/)
    expect(await get(`${url}/v1/services`)).toBe(401)
    expect(await get(`${url}/v1/services`, BOOTSTRAP)).toBe(200)
    const env = { ROSTER_URL: url, ROSTER_TOKEN: BOOTSTRAP }

    const created = await runToExit(['token', 'create', '--name', 'ci', '--scope', 'read', '--scope', 'write:pay*', '--expires-in', '30d'], env)
    expect(created.code, created.stderr).toBe(0)
    const answer = JSON.parse(created.stdout) as { token: { id: string, scopes: string[], expiresAt: string }, secret: string }
    expect(answer.token.scopes).toEqual(['read', 'write:pay*'])
    expect(Date.parse(answer.token.expiresAt) - Date.now()).toBeGreaterThan(29 * 86_400_000)
    expect(await get(`${url}/v1/services`, answer.secret)).toBe(200)

    // --url and --token as flags, the same as their environment twins.
    const listed = await runToExit(['token', 'list', '--url', url, '--token', BOOTSTRAP])
    expect(listed.code).toBe(0)
    expect(listed.stdout).toContain(answer.token.id)
    expect(listed.stdout).toMatch(/bootstrap\tadmin\t/)
    expect(listed.stdout).not.toContain(answer.secret)

    expect(await runToExit(['token', 'revoke', answer.token.id], env)).toMatchObject({ code: 0, stdout: `revoked ${answer.token.id}\n` })
    expect(await get(`${url}/v1/services`, answer.secret)).toBe(401)
    const again = await runToExit(['token', 'revoke', answer.token.id], env)
    expect(again.code).toBe(1)
    expect(again.stderr).toContain(`no token with id '${answer.token.id}' (ROSTER_ERR_TOKEN_NOT_FOUND)`)

    // Error answers: exit 1 with the server's message.
    const noToken = await runToExit(['token', 'list', '--url', url])
    expect(noToken.code).toBe(1)
    expect(noToken.stderr).toContain('a bearer token is required')
    const badScope = await runToExit(['token', 'create', '--name', 'x', '--scope', 'write'], env)
    expect(badScope.code).toBe(1)
    expect(badScope.stderr).toContain('body/scopes/0')
    const unreachable = await runToExit(['token', 'list', '--url', `http://127.0.0.1:${await freePort()}`, '--token', BOOTSTRAP])
    expect(unreachable.code).toBe(1)
    expect(unreachable.stderr).toContain('could not reach')

    // Bad usage: exit 2.
    for (const args of [['token'], ['token', 'frobnicate'], ['token', 'create', '--scope', 'read'], ['token', 'create', '--name', 'x'],
      ['token', 'create', '--name', 'x', '--scope', 'read', '--expires-in', '30 days'], ['token', 'revoke'], ['token', 'list', '--bogus'], ['token', 'list', '--url', 'ftp://x']]) {
      const r = await runToExit(args, env)
      expect(r.code, args.join(' ')).toBe(2)
      expect(r.stderr).toContain('Usage:')
    }
    expect((await runToExit(['token', '--help'])).code).toBe(0)

    // The bootstrap secret reached no output of the server's.
    await cmd.kill('SIGTERM')
    expect(cmd.output()).not.toContain(BOOTSTRAP)
    expect(cmd.output()).not.toContain(answer.secret)
  }, 240_000)

  it('without a bootstrap secret, refuses every request and says how to bootstrap', async () => {
    const { cmd, url } = await rosterUp(['--auth', 'on'])
    expect(await get(`${url}/v1/services`, BOOTSTRAP)).toBe(401)
    await waitFor(() => cmd.output().includes('ROSTER_BOOTSTRAP_TOKEN'), { what: 'the bootstrap hint in the log' })
    // Both the leader and the gateway say so.
    const hints = cmd.output().split('\n').filter((l) => l.includes('ROSTER_BOOTSTRAP_TOKEN'))
    expect(hints.map((l) => (JSON.parse(l) as { role: string }).role).sort()).toEqual(['gateway', 'leader'])
  }, 120_000)
})
