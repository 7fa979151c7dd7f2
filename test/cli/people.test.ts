// The people commands (`roster ls|get|watch|register|deregister|maintenance`) as a user runs
// them: the real bin/roster.js as a child process against real gateways, what it prints piped
// (plain, --json) and on a terminal (`script` from util-linux gives it a real pty), its exit codes,
// failover past a dead gateway, auth from the environment, hostile text from other users, and a
// watch that sees a provider whose heartbeat process is SIGKILLed go down and that moves to
// another gateway when its own stops.
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { silentLog } from '../../server/common/log.js'
import { startGateway } from '../../server/roles.js'
import { freeLeaderBind, freePort } from '../../harness/ports.js'
import { CLEAN_ENV, http, runRoster, runToExit, waitForReady, type RosterCommand } from '../../harness/roster-process.js'
import { startInProcess, storageFlags, testStorage, TEST_MIN_CHECK_INTERVAL_MS, type InProcessRoster } from '../helpers/cluster.js'
import { cleanUpAfterEachTest } from '../helpers/e2e-cleanup.js'
import { spawnEmitter } from '../helpers/emitters.js'
import { waitFor } from '../../harness/wait-for.js'
import { hasScript, NEEDS_SCRIPT } from '../helpers/requirements.js'

const ROSTER_BIN = fileURLToPath(new URL('../../bin/roster.js', import.meta.url))
/** Each child starts Node and loads the bundle: about half a second, many times that on a loaded
 *  2-core machine, and the first one may build the bundle. */
const TEST_TIMEOUT_MS = 120_000
const ESC = '\u001b'
/** Text another user may register: a screen clear, a colour, a window title, an 8-bit CSI and a
 *  right-to-left override. None of it may reach a terminal raw. */
const HOSTILE = `x${ESC}[2J${ESC}[31m${ESC}]0;owned\u0007\u009b1m\u202eevil`

cleanUpAfterEachTest()

let roster: InProcessRoster
beforeAll(async () => {
  roster = await startInProcess(await testStorage('roster-cli-people-'))
}, TEST_TIMEOUT_MS)
afterAll(async () => {
  await roster?.stop()
})

async function cli (args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null, stdout: string, stderr: string }> {
  return await runToExit(args, { ROSTER_URL: roster.url, ...env })
}

/** Runs commands two at a time (each is a Node start, about a core-second). */
async function cliAll (runs: string[][]): Promise<Array<{ args: string[], code: number | null, stdout: string, stderr: string }>> {
  const results: Array<{ args: string[], code: number | null, stdout: string, stderr: string }> = []
  const queue = [...runs]
  await Promise.all([0, 1].map(async () => {
    for (let args = queue.shift(); args !== undefined; args = queue.shift()) results.push({ args, ...await cli(args) })
  }))
  return results
}

describe('roster register, ls, get, maintenance, deregister', () => {
  it('prints aligned plain text when piped and the API\'s JSON with --json; exit 0', async () => {
    const reg = await cli(['register', 'orders', 'orders-1', '--host', '127.0.0.1', '--port', '8080', '--protocol', 'http',
      '--heartbeat', 'tcp://127.0.0.1:9', '--tag', 'blue', '--tag', 'eu', '--meta', 'version=1.4.2', '--meta', 'eq=a=b'])
    expect(reg).toMatchObject({ code: 0, stderr: '' })
    expect(reg.stdout).toMatch(/^registered orders\/orders-1 \(pending\), revision \d+\n$/)
    const again = await cli(['register', 'orders', 'orders-2', '--host', '10.0.0.2', '--port', '9090', '--protocol', 'rpc', '--check-ttl', '600000', '--json'])
    expect(again.code).toBe(0)
    const api = (await http('GET', `${roster.url}/v1/services/orders/providers/orders-2`)).body
    expect(JSON.parse(again.stdout)).toEqual({ provider: api, revision: api.revision })

    const [services, providers, servicesJson, providersJson, filtered, one, oneJson] = await Promise.all([
      cli(['ls']), cli(['ls', 'orders']), cli(['ls', '--json']), cli(['ls', 'orders', '--json']),
      cli(['ls', 'orders', '--tag', 'blue', '--protocol', 'http']), cli(['get', 'orders', 'orders-1']), cli(['get', 'orders', 'orders-1', '--json'])
    ])
    for (const r of [services, providers, servicesJson, providersJson, filtered, one, oneJson]) {
      expect(r.code).toBe(0)
      expect(r.stderr).toBe('')
      expect(r.stdout).not.toContain(ESC)
    }
    expect(services.stdout).toBe('NAME     PROVIDERS   UP\norders   2           0\n')
    expect(providers.stdout.split('\n')).toEqual([
      'ID         STATE     ADDRESS          PROTOCOL   REASON   LAST SEEN   TAGS',
      'orders-1   pending   127.0.0.1:8080   http       -        never       blue,eu',
      'orders-2   pending   10.0.0.2:9090    rpc        -        never       -',
      ''
    ])
    expect(filtered.stdout.trim().split('\n')).toHaveLength(2)
    expect(filtered.stdout).toContain('orders-1')
    // --json is exactly what the API answers (the revision header aside, the same body).
    expect(JSON.parse(servicesJson.stdout)).toEqual((await http('GET', `${roster.url}/v1/services`)).body)
    expect(JSON.parse(providersJson.stdout)).toEqual((await http('GET', `${roster.url}/v1/services/orders/providers`)).body)
    expect(JSON.parse(oneJson.stdout)).toEqual((await http('GET', `${roster.url}/v1/services/orders/providers/orders-1`)).body)
    expect(one.stdout).toMatch(/^state +pending$/m)
    expect(one.stdout).toMatch(/^heartbeat +tcp:\/\/127\.0\.0\.1:9 every 1000 ms$/m)
    expect(one.stdout).toMatch(/^meta +version=1\.4\.2$/m)
    expect(one.stdout).toMatch(/^ +eq=a=b$/m)

    const on = await cli(['maintenance', 'orders', 'orders-1', 'on', '--reason', 'kernel upgrade'])
    expect(on).toMatchObject({ code: 0, stderr: '' })
    expect(on.stdout).toMatch(/^maintenance on for orders\/orders-1 \(maintenance\), revision \d+\n$/)
    expect((await cli(['ls', 'orders', '--state', 'maintenance'])).stdout).toMatch(/^orders-1 +maintenance +127\.0\.0\.1:8080 +http +kernel upgrade +never +blue,eu$/m)
    const off = await cli(['maintenance', 'orders', 'orders-1', 'off', '--json'])
    expect(JSON.parse(off.stdout).provider.state).toBe('pending')
    const gone = await cli(['deregister', 'orders', 'orders-1'])
    expect(gone).toMatchObject({ code: 0, stderr: '' })
    expect(gone.stdout).toMatch(/^deregistered orders\/orders-1, revision \d+\n$/)
    expect((await http('GET', `${roster.url}/v1/services/orders/providers/orders-1`)).status).toBe(404)
  }, TEST_TIMEOUT_MS)

  it('exit 1 with the server\'s message on an error answer (404, 400, 409)', async () => {
    const results = await cliAll([
      ['get', 'orders', 'no-such'],
      ['deregister', 'orders', 'no-such'],
      ['maintenance', 'orders', 'no-such', 'on'],
      ['register', 'bad', 'b-1', '--host', '127.0.0.1', '--port', '1', '--protocol', 'http', '--heartbeat', 'tcp://127.0.0.1:9', '--interval-ms', '10'],
      ['ls', 'Not_A_Service']
    ])
    for (const r of results) {
      expect({ args: r.args, code: r.code, stdout: r.stdout }).toEqual({ args: r.args, code: 1, stdout: '' })
    }
    const byArgs = (first: string, second: string): string => (results.find((r) => r.args[0] === first && r.args[1] === second) as { stderr: string }).stderr
    const notFound = await http('GET', `${roster.url}/v1/services/orders/providers/no-such`)
    expect(byArgs('get', 'orders')).toBe(`roster get: ${notFound.body.message as string} (404 ${notFound.body.code as string})\n`)
    expect(byArgs('deregister', 'orders')).toContain('(404 ROSTER_ERR_PROVIDER_NOT_FOUND)')
    expect(byArgs('register', 'bad')).toMatch(/^roster register: body\/heartbeatIntervalMs must be >= 50 \(400 /)
    expect(byArgs('ls', 'Not_A_Service')).toMatch(/^roster ls: .*service.* \(400 /)
  }, TEST_TIMEOUT_MS)

  it('exit 2 on bad usage, naming the flag or argument, with the usage line', async () => {
    const cases: Array<{ args: string[], names: string, usage: string }> = [
      { args: ['ls', '--frobnicate'], names: '--frobnicate', usage: 'Usage: roster ls [SERVICE]' },
      { args: ['get', 'orders'], names: 'SERVICE and ID', usage: 'Usage: roster get SERVICE ID' },
      { args: ['register', 'a', 'a-1', '--host', 'h', '--port', '99999', '--protocol', 'http', '--check-tcp'], names: '--port', usage: 'Usage: roster register' },
      { args: ['register', 'a', 'a-1', '--host', 'h', '--port', 'http', '--protocol', 'http', '--check-tcp'], names: '--port', usage: 'Usage: roster register' },
      { args: ['register', 'a', 'a-1', '--host', 'h', '--port', '1', '--protocol', 'http', '--check-tcp', '--meta', 'novalue'], names: '--meta', usage: 'Usage: roster register' },
      { args: ['register', 'a', 'a-1', '--host', 'h', '--port', '1', '--protocol', 'http'], names: '--heartbeat', usage: 'Usage: roster register' },
      { args: ['register', 'a', 'a-1', '--port', '1', '--protocol', 'http', '--check-tcp'], names: '--host', usage: 'Usage: roster register' },
      { args: ['register', 'a', 'a-1', '--host'], names: '--host', usage: 'Usage: roster register' },
      { args: ['watch', '--since', 'yesterday'], names: '--since', usage: 'Usage: roster watch' },
      { args: ['maintenance', 'a', 'a-1', 'maybe'], names: 'on or off', usage: 'Usage: roster maintenance' },
      { args: ['ls', '--state', 'up'], names: '--state', usage: 'Usage: roster ls' },
      { args: ['ls', 'a', '--state', 'sideways'], names: '--state', usage: 'Usage: roster ls' },
      { args: ['get', 'a', '..'], names: 'id', usage: 'Usage: roster get' },
      { args: ['ls', '--url', 'ftp://127.0.0.1'], names: '--url', usage: 'Usage: roster ls' }
    ]
    const results = await cliAll(cases.map((c) => c.args))
    for (const c of cases) {
      const r = results.find((x) => x.args === c.args) as { code: number | null, stdout: string, stderr: string }
      expect({ args: c.args, code: r.code, stdout: r.stdout }).toEqual({ args: c.args, code: 2, stdout: '' })
      expect(r.stderr, c.args.join(' ')).toContain(c.names)
      expect(r.stderr, c.args.join(' ')).toContain(c.usage)
    }
  }, TEST_TIMEOUT_MS)

  it('--help lists every command and every flag, aligned; exit 0', async () => {
    const top = await cli(['--help'])
    expect(top.code).toBe(0)
    for (const c of ['ls', 'get', 'watch', 'register', 'deregister', 'maintenance', 'up', 'leader', 'worker', 'gateway', 'token', 'keys']) {
      expect(top.stdout).toMatch(new RegExp(`^  ${c}\\b`, 'm'))
    }
    // One column for the descriptions, in both sections.
    const starts = new Set(top.stdout.split('\n').filter((l) => l.startsWith('  ')).map((l) => l.search(/(?<=\S) {2,}\S/) + l.slice(l.search(/(?<=\S) {2,}\S/)).search(/\S/)))
    expect(starts.size).toBe(1)
    const reg = await cli(['register', '--help'])
    expect(reg.code).toBe(0)
    for (const f of ['--host', '--port', '--protocol', '--heartbeat', '--check-http', '--check-tcp', '--check-ttl', '--tag', '--meta', '--url', '--token', '--json', '--help']) {
      expect(reg.stdout).toMatch(new RegExp(`^  ${f}\\b`, 'm'))
    }
    const flagLines = reg.stdout.split('\n').filter((l) => l.startsWith('  --'))
    expect(new Set(flagLines.map((l) => l.search(/(?<=\S) {2,}\S/) + l.slice(l.search(/(?<=\S) {2,}\S/)).search(/\S/))).size).toBe(1)
    expect((await cli(['watch', '-h'])).stdout).toContain('--since REVISION')
  }, TEST_TIMEOUT_MS)
})

describe('roster with other users\' hostile text', () => {
  it('never prints a control character raw: escaped in text, \\u escapes in JSON that parse back to the same value', async () => {
    const reg = await cli(['register', 'hostile', 'h-1', '--host', '127.0.0.1', '--port', '8080', '--protocol', 'http', '--check-ttl', '600000',
      '--tag', HOSTILE, '--meta', `note=${HOSTILE}`])
    expect(reg.code).toBe(0)
    const watch = runRoster(['watch', 'hostile', '--url', roster.url], CLEAN_ENV)
    await waitFor(() => watch.stdout().includes('snapshot'), { timeoutMs: 60_000, what: 'the watch snapshot' })
    expect((await cli(['maintenance', 'hostile', 'h-1', 'on', '--reason', HOSTILE])).code).toBe(0)
    await waitFor(() => watch.stdout().includes('maintenance hostile/h-1'), { timeoutMs: 30_000, what: 'the maintenance event' })
    const [ls, get, lsJson] = await Promise.all([cli(['ls', 'hostile']), cli(['get', 'hostile', 'h-1']), cli(['ls', 'hostile', '--json'])])
    const escaped = 'x\\u001b[2J\\u001b[31m\\u001b]0;owned\\u0007\\u009b1m\\u202eevil'
    for (const text of [ls.stdout, get.stdout, watch.stdout(), lsJson.stdout]) {
      expect(text).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/)
    }
    expect(ls.stdout).toContain(escaped)
    expect(get.stdout).toContain(`note=${escaped}`)
    expect(watch.stdout()).toContain(`maintenance hostile/h-1 maintenance ${escaped}`)
    const api = (await http('GET', `${roster.url}/v1/services/hostile/providers`)).body
    expect(JSON.parse(lsJson.stdout)).toEqual(api)
    expect(api.providers[0].reason).toBe(HOSTILE)
  }, TEST_TIMEOUT_MS)
})

describe('roster on a terminal', () => {
  /** `roster args` on a pseudo-terminal made by util-linux `script`; its output as the terminal got it. */
  async function onTty (args: string[], env: NodeJS.ProcessEnv): Promise<string> {
    const command = [process.execPath, ROSTER_BIN, ...args].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ')
    const child = spawn('script', ['-q', '-e', '-c', command, '/dev/null'], { env: { ...process.env, ...CLEAN_ENV, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d: Buffer) => { out += d.toString() })
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve))
    expect(code, out).toBe(0)
    return out
  }

  it('colours the states, unless NO_COLOR is set', async ({ skip }) => {
    skip(!hasScript, NEEDS_SCRIPT)
    expect((await cli(['register', 'tty', 'tty-1', '--host', '127.0.0.1', '--port', '8080', '--protocol', 'http', '--check-ttl', '600000', '--meta', `m=${HOSTILE}`])).code).toBe(0)
    const coloured = await onTty(['ls', 'tty', '--url', roster.url], {})
    expect(coloured).toContain(`${ESC}[33mpending${ESC}[0m`)
    const details = await onTty(['get', 'tty', 'tty-1', '--url', roster.url], {})
    expect(details).toContain(`${ESC}[33mpending${ESC}[0m`)
    // The colour is the only escape sequence: the hostile meta is still escaped.
    expect(details.replaceAll(`${ESC}[33m`, '').replaceAll(`${ESC}[0m`, '')).not.toContain(ESC)
    const plain = await onTty(['ls', 'tty', '--url', roster.url], { NO_COLOR: '1' })
    expect(plain).toMatch(/tty-1 +pending/)
    expect(plain).not.toContain(ESC)
  }, TEST_TIMEOUT_MS)
})

describe('roster with several gateways and with auth', () => {
  it('--url with a dead gateway first fails over to the next; ROSTER_URL takes a list too', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`
    expect((await cli(['register', 'fo', 'fo-1', '--host', '127.0.0.1', '--port', '8080', '--protocol', 'http', '--check-ttl', '600000', '--url', `${dead},${roster.url}`])).code).toBe(0)
    const viaEnv = await runToExit(['ls', 'fo'], { ROSTER_URL: `${dead},${roster.url}` })
    expect(viaEnv).toMatchObject({ code: 0, stderr: '' })
    expect(viaEnv.stdout).toMatch(/^fo-1 +pending/m)
    const none = await runToExit(['ls'], { ROSTER_URL: dead })
    expect(none.code).toBe(1)
    expect(none.stderr).toContain(dead)
    expect(none.stderr).toContain('ECONNREFUSED')
  }, TEST_TIMEOUT_MS)

  it('with --auth on: ROSTER_TOKEN (or --token) is sent, without it exit 1 with the 401', async () => {
    const secret = 'people-bootstrap-secret-0123456789abcdefghij'
    const port = await freePort()
    const url = `http://127.0.0.1:${port}`
    const up = runRoster(['up', '--port', String(port), '--bind', await freeLeaderBind(), ...storageFlags(await testStorage('roster-cli-people-auth-')),
      '--auth', 'on', '--log-level', 'warn'], { ...CLEAN_ENV, ROSTER_BOOTSTRAP_TOKEN: secret })
    await waitFor(() => up.stdout().includes('Roster is up') || up.child.exitCode !== null, { timeoutMs: 60_000, what: 'roster up --auth on' })
    expect(up.stdout(), up.output()).toContain('Roster is up')
    const anonymous = await runToExit(['ls'], { ROSTER_URL: url })
    expect(anonymous.code).toBe(1)
    expect(anonymous.stderr).toMatch(/\(401 /)
    const register = await runToExit(['register', 'sec', 'sec-1', '--host', '127.0.0.1', '--port', '8080', '--protocol', 'http', '--check-ttl', '600000'], { ROSTER_URL: url, ROSTER_TOKEN: secret })
    expect(register).toMatchObject({ code: 0, stderr: '' })
    const ls = await runToExit(['ls', '--url', url, '--token', secret])
    expect(ls).toMatchObject({ code: 0, stdout: 'NAME   PROVIDERS   UP\nsec    1           0\n' })
    expect(ls.stdout + ls.stderr + register.stdout + register.stderr).not.toContain(secret)
    const refused = runRoster(['watch'], { ...CLEAN_ENV, ROSTER_URL: url, ROSTER_TOKEN: 'not-a-valid-token-0123456789' })
    expect((await refused.exited).code).toBe(1)
    expect(refused.stderr()).toMatch(/\(401 /)
  }, TEST_TIMEOUT_MS)
})

describe('roster watch', () => {
  /** Waits for a line of the watch's stdout that matches. */
  async function line (watch: RosterCommand, re: RegExp): Promise<string> {
    let found: string | undefined
    await waitFor(() => {
      found = watch.stdout().split('\n').find((l) => re.test(l))
      return found !== undefined
    }, { timeoutMs: 30_000, message: `no line ${String(re)} in:\n${watch.output()}` })
    return found as string
  }

  it('prints a snapshot line, then one line per event: up, and down when the heartbeat process is SIGKILLed; exit 0 on SIGINT', async () => {
    const watch = runRoster(['watch', 'beats', '--url', roster.url], CLEAN_ENV)
    const snapshot = await line(watch, /snapshot/)
    expect(snapshot).toMatch(/^\d+ snapshot 0 providers, 0 up$/)
    const emitter = await spawnEmitter({ id: 'beat-1', intervalMs: 100 })
    const reg = await cli(['register', 'beats', 'beat-1', '--host', '127.0.0.1', '--port', '8080', '--protocol', 'rpc', '--heartbeat', emitter.endpoint, '--interval-ms', '100'])
    expect(reg.code).toBe(0)
    await line(watch, /^\d+ registered beats\/beat-1 pending$/)
    await line(watch, /^\d+ up beats\/beat-1 up$/)
    emitter.kill('SIGKILL')
    await line(watch, /^\d+ down beats\/beat-1 down disconnected$/)
    const revisions = watch.stdout().trim().split('\n').map((l) => Number(l.split(' ')[0]))
    expect(revisions).toEqual(revisions.toSorted((a, b) => a - b))
    expect(watch.stdout()).not.toContain(ESC)
    watch.child.kill('SIGINT')
    expect((await watch.exited).code).toBe(0)
  }, TEST_TIMEOUT_MS)

  it('--json prints NDJSON, --since resumes, and it moves to the next gateway when its own stops; exit 0 on SIGTERM', async () => {
    const second = await startGateway({ port: 0, host: '127.0.0.1', minCheckIntervalMs: TEST_MIN_CHECK_INTERVAL_MS, candidates: [roster.bind] }, silentLog)
    await waitForReady(second.url)
    const first = await cli(['register', 'moves', 'm-1', '--host', '127.0.0.1', '--port', '8080', '--protocol', 'http', '--check-ttl', '600000', '--json'])
    const since = JSON.parse(first.stdout).revision as number
    // The second gateway first in the list: the watch starts there.
    const watch = runRoster(['watch', 'moves', '--json', '--since', String(since - 1), '--url', `${second.url},${roster.url}`], CLEAN_ENV)
    await line(watch, /"event":"registered"/)
    await second.stop()
    await waitFor(() => watch.stderr().includes('resuming'), { timeoutMs: 30_000, message: `no reconnect reported:\n${watch.output()}` })
    expect((await cli(['register', 'moves', 'm-2', '--host', '127.0.0.1', '--port', '8080', '--protocol', 'http', '--check-ttl', '600000'])).code).toBe(0)
    await line(watch, /"id":"m-2"/)
    const messages = watch.stdout().trim().split('\n').map((l) => JSON.parse(l) as { type: string, revision: number, event?: string, provider?: { id: string } })
    // Resumed from --since: no snapshot, every event once, in order, across the two gateways.
    expect(messages.map((m) => [m.type, m.event, m.provider?.id])).toEqual([['event', 'registered', 'm-1'], ['event', 'registered', 'm-2']])
    expect(messages[0]?.revision).toBe(since)
    watch.child.kill('SIGTERM')
    expect((await watch.exited).code).toBe(0)
  }, TEST_TIMEOUT_MS)
})
