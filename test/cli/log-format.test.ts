// `roster up`'s output as a user sees it (server/common/log.ts, log-format.ts): on a terminal
// (a real pseudo-terminal from util-linux `script`) human-readable lines and then the banner,
// no JSON; piped, JSON lines only, the banner one record of them, at any --log-level; and
// --log-format to choose either way. A request with a hostile path, logged at debug, reaches
// the terminal escaped.
import { spawn, spawnSync } from 'node:child_process'
import { afterEach, describe, expect, it } from 'vitest'
import { freeLeaderBind, freePort } from '../../harness/ports.js'
import { CLEAN_ENV, killAllRoster, runRoster, runToExit } from '../../harness/roster-process.js'
import { storageFlags, testStorage } from '../helpers/cluster.js'
import { waitFor } from '../../harness/wait-for.js'
import { hasScript, NEEDS_SCRIPT } from '../helpers/requirements.js'
import { encodeRequest, rawExchange } from '../fuzz/raw-http.js'

const ROSTER_BIN = new URL('../../bin/roster.js', import.meta.url).pathname
const UP_TIMEOUT_MS = 60_000
const TEST_TIMEOUT_MS = 120_000
const ESC = '\u001b'

afterEach(async () => { await killAllRoster() })

interface OnTty { output: () => string, stop: () => Promise<string> }

/** `roster args` on a pseudo-terminal; stop() sends SIGINT to script's child and returns what the terminal got. */
function upOnTty (args: string[], env: NodeJS.ProcessEnv): OnTty {
  const command = ['exec', process.execPath, ROSTER_BIN, ...args].map((a, i) => i === 0 ? a : `'${a.replace(/'/g, "'\\''")}'`).join(' ')
  const child = spawn('script', ['-q', '-e', '-c', command, '/dev/null'], { env: { ...process.env, ...CLEAN_ENV, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString() })
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()))
  return {
    output: () => out.replaceAll('\r\n', '\n'),
    stop: async () => {
      // script runs roster (exec'd by its shell) as its one child: signal that, as Ctrl-C would.
      const kids = spawnSync('pgrep', ['-P', String(child.pid)], { encoding: 'utf8' }).stdout.trim().split('\n').filter((p) => p !== '')
      for (const pid of kids) process.kill(Number(pid), 'SIGINT')
      if (kids.length === 0) child.kill('SIGKILL')
      await closed
      return out.replaceAll('\r\n', '\n')
    }
  }
}

async function upFlags (prefix: string): Promise<{ port: number, flags: string[] }> {
  const port = await freePort()
  return { port, flags: ['up', '--port', String(port), '--bind', await freeLeaderBind(), ...storageFlags(await testStorage(prefix))] }
}

describe('roster up on a terminal', () => {
  it('writes human-readable lines, then the banner after them, and no JSON; a hostile path at debug arrives escaped', async ({ skip }) => {
    skip(!hasScript, NEEDS_SCRIPT)
    const { port, flags } = await upFlags('roster-log-tty-')
    const up = upOnTty([...flags, '--log-level', 'debug'], {})
    await waitFor(() => up.output().includes('Press Ctrl-C to stop.'), { timeoutMs: UP_TIMEOUT_MS, what: 'the banner' })
    // The debug request line quotes the Host header, here with a C1 CSI (U+009B) and a bidi
    // override in UTF-8, which Node reads as Latin-1: C1 controls either way.
    const answer = await rawExchange(port, encodeRequest({ method: 'GET', target: '/v1/%1b%5b2J', headers: [['Connection', 'close']] }, 'x\u009b2J\u202e'),
      { timeoutMs: 5000, awaitFrame: false, head: false })
    expect(answer.status).toBe(404)
    await waitFor(() => up.output().includes('/v1/%1b%5b2J'), { timeoutMs: 10_000, what: 'the request logged' })
    const out = await up.stop()
    const lines = out.split('\n').filter((l) => l !== '')
    const bannerAt = lines.findIndex((l) => l.startsWith('Roster is up. Storage: '))
    expect(bannerAt, out).toBeGreaterThan(0)
    // The banner's seven lines together, as one block.
    expect(lines.slice(bannerAt + 1, bannerAt + 7).map((l) => l.trim().split(/ {2,}/)[0])).toEqual(['REST', 'WebSocket', 'OpenAPI', 'leader', 'auth', 'Press Ctrl-C to stop.'])
    expect(lines[bannerAt + 1]).toBe(`  REST        http://127.0.0.1:${port}/v1/services`)
    // Every other line is a pretty log line: time, level, message; not one is JSON.
    const logLines = lines.filter((_, i) => i < bannerAt || i > bannerAt + 6).filter((l) => !l.startsWith('    '))
    for (const l of logLines) expect(l.replace(/\u001b\[\d+m/g, '')).toMatch(/^\d\d:\d\d:\d\d\.\d{3} (TRACE|DEBUG|INFO |WARN |ERROR|FATAL) /)
    expect(out).not.toContain('{"level"')
    // The startup said what it did before the banner, and the stop after it.
    expect(lines.slice(0, bannerAt).some((l) => l.includes('leader: active leader'))).toBe(true)
    expect(lines.slice(bannerAt + 7).some((l) => /INFO {2}shutting down signal=SIGINT/.test(l))).toBe(true)
    // Colour only on the level: the only escape sequences are the level's, for DEBUG lines grey.
    const withoutLevelColours = out.replace(/\u001b\[(90|33|31)m(TRACE|DEBUG|WARN |ERROR|FATAL)\u001b\[0m/g, '')
    expect(withoutLevelColours).not.toContain(ESC)
    expect(out).not.toMatch(/[\u0080-\u009f\u202e]/)
    expect(out).toContain('\\u009b2J')
  }, TEST_TIMEOUT_MS)

  it('--log-format json gives JSON there too (and NO_COLOR leaves pretty lines uncoloured)', async ({ skip }) => {
    skip(!hasScript, NEEDS_SCRIPT)
    const { flags } = await upFlags('roster-log-tty-json-')
    const up = upOnTty([...flags, '--log-format', 'json'], {})
    await waitFor(() => up.output().includes('"msg":"Roster is up. Storage: '), { timeoutMs: UP_TIMEOUT_MS, what: 'the banner record' })
    const out = await up.stop()
    for (const l of out.split('\n').filter((x) => x !== '')) expect(() => JSON.parse(l) as unknown, l).not.toThrow()

    const plain = await upFlags('roster-log-tty-plain-')
    const noColour = upOnTty([...plain.flags, '--log-level', 'debug'], { NO_COLOR: '1' })
    await waitFor(() => noColour.output().includes('Press Ctrl-C to stop.'), { timeoutMs: UP_TIMEOUT_MS, what: 'the banner' })
    const text = await noColour.stop()
    expect(text).toMatch(/ DEBUG /)
    expect(text).not.toContain(ESC)
  }, TEST_TIMEOUT_MS)
})

describe('roster up piped', () => {
  it('writes JSON lines only, the banner one record of them even at --log-level warn; --log-format pretty turns them human', async () => {
    const { port, flags } = await upFlags('roster-log-pipe-')
    const up = runRoster([...flags, '--log-level', 'warn'], CLEAN_ENV)
    await waitFor(() => up.stdout().includes('Roster is up') || up.child.exitCode !== null, { timeoutMs: UP_TIMEOUT_MS, what: 'Roster is up' })
    up.child.kill('SIGINT')
    expect((await up.exited).code, up.output()).toBe(0)
    const records = up.stdout().split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>)
    const banner = records.find((r) => typeof r.msg === 'string' && r.msg.startsWith('Roster is up. Storage: Postgres at '))
    expect(banner).toMatchObject({
      level: 30, rest: `http://127.0.0.1:${port}/v1/services`, websocket: `ws://127.0.0.1:${port}/v1/watch`, auth: 'off'
    })
    // At warn, nothing else: the banner is the one info record.
    expect(records.filter((r) => (r.level as number) < 40)).toEqual([banner])

    const pretty = await upFlags('roster-log-pipe-pretty-')
    const up2 = runRoster([...pretty.flags, '--log-format', 'pretty'], { ...CLEAN_ENV, ROSTER_LOG_FORMAT: 'json' })
    await waitFor(() => up2.stdout().includes('Press Ctrl-C to stop.') || up2.child.exitCode !== null, { timeoutMs: UP_TIMEOUT_MS, what: 'the banner' })
    up2.child.kill('SIGINT')
    expect((await up2.exited).code, up2.output()).toBe(0)
    expect(up2.stdout()).toMatch(/^\d\d:\d\d:\d\d\.\d{3} INFO {2}leader: active leader /m)
    expect(up2.stdout()).not.toContain('{"level"')
    expect(up2.stdout()).not.toContain(ESC) // piped: no colour
  }, TEST_TIMEOUT_MS)

  it('ROSTER_LOG_FORMAT chooses too; a bad value is exit 2 naming the flag', async () => {
    const bad = await runToExit(['gateway', '--log-format', 'yaml'])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toMatch(/^roster gateway: --log-format must be json or pretty, got "yaml"/)
    const badEnv = await runToExit(['worker'], { ROSTER_LOG_FORMAT: 'xml' })
    expect(badEnv.code).toBe(2)
    expect(badEnv.stderr).toMatch(/--log-format must be json or pretty, got "xml"/)
    const help = await runToExit(['up', '--help'])
    expect(help.stdout).toMatch(/^ {2}--log-format {2,}json \(one JSON object a line\) or pretty .*\[ROSTER_LOG_FORMAT\]$/m)
  }, TEST_TIMEOUT_MS)
})
