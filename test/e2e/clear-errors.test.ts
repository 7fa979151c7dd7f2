// What a client is told when it gets something wrong, through a real gateway: an unknown route is
// a 404 with a code that names the method and path (escaped and bounded, whatever was sent); a
// body that is not JSON is a 415 that says what to send; with --auth on an unknown route is a 401
// first, like every other request. And the examples in examples/, run as child processes, print
// the server's message (or why they could not connect) and exit 1, without a stack trace; the
// README's check example, run as printed, makes its providers up.
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { encodeRequest, rawExchange } from '../fuzz/raw-http.js'
import { silentLog } from '../../server/common/log.js'
import { startGateway, startLeader, startWorker, type Stopper } from '../../server/roles.js'
import { freeLeaderBind, freeLeaderEndpoint, freePort, portOf } from '../../harness/ports.js'
import { http, waitForLeader } from '../../harness/roster-process.js'
import { removeTestStorage, startInProcess, testStorage, type InProcessRoster } from '../helpers/cluster.js'
import { waitFor } from '../../harness/wait-for.js'

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url))
const SECRET = 'clear-errors-bootstrap-secret-0123456789abcdef'
/** Anything a terminal would act on. */
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/

let open: InProcessRoster
/** A leader with the bootstrap admin token and a gateway with --auth on. */
let authed: { url: string }
const stoppers: Stopper[] = []

beforeAll(async () => {
  open = await startInProcess(await testStorage('roster-clear-errors-'), await freeLeaderBind())
  const bind = await freeLeaderEndpoint()
  stoppers.push(await startLeader({ ...await testStorage('roster-clear-errors-auth-'), bind, bootstrapToken: SECRET }, silentLog))
  const gateway = await startGateway({ port: 0, host: '127.0.0.1', candidates: [bind], auth: true }, silentLog)
  stoppers.push(gateway.stop)
  stoppers.push(await startWorker([bind], silentLog))
  authed = { url: gateway.url }
  await waitForLeader(gateway.url)
  await waitFor(async () => (await fetch(`${gateway.url}/v1/services`, { headers: { authorization: `Bearer ${SECRET}` } })).ok, { timeoutMs: 15_000, what: 'the auth gateway serving reads' })
}, 60_000)

afterAll(async () => {
  await open?.stop()
  for (const s of stoppers.reverse()) await s()
  await removeTestStorage()
})

async function send (method: string, path: string, headers: Record<string, string>, body?: string): Promise<{ status: number, body: any }> {
  const res = await fetch(`${open.url}${path}`, { method, headers, body })
  return { status: res.status, body: await res.json() }
}

describe('an unknown route', () => {
  it('is a 404 with ROSTER_ERR_NOT_FOUND naming the method and the path, without its query', async () => {
    const res = await send('GET', '/v1/nowhere?token=s3cret', {})
    expect(res).toEqual({
      status: 404,
      body: { statusCode: 404, code: 'ROSTER_ERR_NOT_FOUND', error: 'Not Found', message: 'no route for GET /v1/nowhere; the API is described at /openapi.json' }
    })
    // A known path with a method it does not take (Fastify answers 404 for it, not 405).
    const wrongMethod = await send('DELETE', '/v1/services', {})
    expect(wrongMethod.status).toBe(404)
    expect(wrongMethod.body.message).toBe('no route for DELETE /v1/services; the API is described at /openapi.json')
  })

  it('quotes a hostile path as sent (percent-encoded) and cut to 120 characters', async () => {
    // Node's parser refuses raw control bytes in a request target (400 before any route), so
    // what reaches the router is percent-encoded; a long path is cut, so the answer stays small.
    const res = await send('GET', `/v1/%1b%5b2J%c2%9b${'x'.repeat(5000)}`, {})
    expect(res.status).toBe(404)
    expect(res.body.code).toBe('ROSTER_ERR_NOT_FOUND')
    expect(res.body.message).toMatch(/^no route for GET \/v1\/%1b%5b2J%c2%9bx{102}…; the API is described at \/openapi\.json$/)
  })

  it('with --auth on is refused 401 without a token, and named 404 with one', async () => {
    const anonymous = await fetch(`${authed.url}/v1/nowhere`)
    expect(anonymous.status).toBe(401)
    expect(((await anonymous.json()) as { code: string }).code).toBe('ROSTER_ERR_UNAUTHORIZED')
    const withToken = await fetch(`${authed.url}/v1/nowhere`, { headers: { authorization: `Bearer ${SECRET}` } })
    expect(withToken.status).toBe(404)
    expect(((await withToken.json()) as { code: string }).code).toBe('ROSTER_ERR_NOT_FOUND')
  })
})

describe('a body that is not JSON', () => {
  const path = '/v1/services/orders/providers/o-1'
  const json = JSON.stringify({ host: '127.0.0.1', port: 8080, protocol: 'http', check: { type: 'ttl', ttlMs: 60000 } })

  it('is a 415 that says application/json is expected and what was sent (curl -d)', async () => {
    const res = await send('PUT', path, { 'content-type': 'application/x-www-form-urlencoded' }, json)
    expect(res).toEqual({
      status: 415,
      body: {
        statusCode: 415,
        code: 'FST_ERR_CTP_INVALID_MEDIA_TYPE',
        error: 'Unsupported Media Type',
        message: 'the body must be JSON, sent with Content-Type: application/json; this request\'s was "application/x-www-form-urlencoded"'
      }
    })
    expect((await http('GET', `${open.url}${path}`)).status).toBe(404)
  })

  it('without any Content-Type says so; a hostile one is escaped and cut', async () => {
    const none = await rawExchange(portOf(open.url), encodeRequest({ method: 'PUT', target: path, headers: [['Connection', 'close']], body: Buffer.from(json) }, '127.0.0.1'),
      { timeoutMs: 5000, awaitFrame: false, head: false })
    expect(none.status).toBe(415)
    expect(JSON.parse(none.body.toString()).message).toBe('the body must be JSON, sent with Content-Type: application/json; this request had no Content-Type')
    // Node refuses C0 controls in a header (400 before Fastify); a UTF-8 C1 control (U+009B, a
    // one-character CSI) and a bidi override pass, read as Latin-1.
    const hostile = `text/x\u009b2J\u202e${'y'.repeat(1000)}`
    const answer = await rawExchange(portOf(open.url), encodeRequest({ method: 'PUT', target: path, headers: [['Content-Type', hostile], ['Connection', 'close']], body: Buffer.from(json) }, '127.0.0.1'),
      { timeoutMs: 5000, awaitFrame: false, head: false })
    expect(answer.status).toBe(415)
    const message = JSON.parse(answer.body.toString()).message as string
    expect(message).toMatch(/^the body must be JSON, sent with Content-Type: application\/json; this request's was "text\/x/)
    expect(message).not.toMatch(UNSAFE)
    expect(message.length).toBeLessThan(300)
  })

  it('with --auth on is a 401 before the body is looked at', async () => {
    const res = await fetch(`${authed.url}${path}`, { method: 'PUT', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: json })
    expect(res.status).toBe(401)
  })
})

/** `node examples/<name> args` to its exit, within 20 s. */
async function example (name: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null, stdout: string, stderr: string }> {
  const child = spawn(process.execPath, [`examples/${name}`, ...args], { cwd: REPO_ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d })
  child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d })
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve))
  clearTimeout(timer)
  return { code, stdout, stderr }
}

describe('examples/', () => {
  const ws = (r: { url: string }, query: string): string => `${r.url.replace(/^http/, 'ws')}/v1/watch${query}`

  it('watch.mjs prints the gateway\'s message and exits 1 on a refused feed', async () => {
    const bad = await example('watch.mjs', [ws(open, '?since=abc')])
    expect(bad).toEqual({ code: 1, stdout: '', stderr: 'watch.mjs: 400 FST_ERR_VALIDATION: querystring/since must be integer\n' })
    const anonymous = await example('watch.mjs', [ws(authed, '')])
    expect(anonymous.code).toBe(1)
    expect(anonymous.stderr).toMatch(/^watch\.mjs: 401 ROSTER_ERR_UNAUTHORIZED: a bearer token is required/)
  })

  it('watch.mjs says why it cannot connect and exits 1', async () => {
    const port = await freePort()
    const refused = await example('watch.mjs', [`ws://127.0.0.1:${port}/v1/watch`])
    expect(refused).toEqual({ code: 1, stdout: '', stderr: `watch.mjs: ws://127.0.0.1:${port}/v1/watch: ECONNREFUSED (connect ECONNREFUSED 127.0.0.1:${port})\n` })
    const notUrl = await example('watch.mjs', ['not a url'])
    expect(notUrl.code).toBe(1)
    expect(notUrl.stderr).toMatch(/^watch\.mjs: not a url: Invalid URL/)
  })

  it('heartbeat.mjs with watch.mjs: the provider goes up on the feed; with ROSTER_TOKEN on an auth gateway too', async () => {
    const hbPort = await freePort()
    const hb = spawn(process.execPath, ['examples/heartbeat.mjs', 'ex-1', `tcp://127.0.0.1:${hbPort}`, '100'], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
    const watch = spawn(process.execPath, ['examples/watch.mjs', ws(authed, '?service=ex')], { cwd: REPO_ROOT, env: { ...process.env, ROSTER_TOKEN: SECRET }, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    watch.stdout.setEncoding('utf8').on('data', (d: string) => { out += d })
    try {
      await waitFor(() => out.includes('"type":"snapshot"'), { timeoutMs: 15_000, what: 'the snapshot' })
      const put = await fetch(`${authed.url}/v1/services/ex/providers/ex-1`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${SECRET}` },
        body: JSON.stringify({ host: '127.0.0.1', port: 8080, protocol: 'http', heartbeat: `tcp://127.0.0.1:${hbPort}`, heartbeatIntervalMs: 100 })
      })
      expect(put.status).toBe(201)
      await waitFor(() => out.includes('"event":"up"'), { timeoutMs: 15_000, what: 'ex-1 up on the feed' })
    } finally {
      hb.kill('SIGKILL')
      watch.kill('SIGKILL')
    }
  })

  it('heartbeat.mjs says why it cannot bind, or what is wrong with its interval, and exits 1', async () => {
    const taken: Server = createServer()
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve))
    const port = (taken.address() as { port: number }).port
    try {
      expect(await example('heartbeat.mjs', ['a', `tcp://127.0.0.1:${port}`, '1000'])).toEqual({
        code: 1, stdout: '', stderr: `heartbeat.mjs: cannot bind tcp://127.0.0.1:${port}: Address already in use\n`
      })
    } finally {
      taken.close()
    }
    expect(await example('heartbeat.mjs', ['a', 'tcp://127.0.0.1:0', 'often'])).toEqual({
      code: 1, stdout: '', stderr: 'heartbeat.mjs: intervalMs must be an integer 50–60000 (the registration\'s heartbeatIntervalMs), got "often"\n'
    })
  })
})

describe('the README\'s check example', () => {
  it('works as printed: the one-line server makes web-1 up, the renewal job-1', async () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8')
    const from = readme.indexOf('An http check needs something that answers on its port')
    const block = /```sh\n([\s\S]*?)```/.exec(readme.slice(from))?.[1]
    expect(block).toBeDefined()
    // The block as printed, on this test's gateway and a free port instead of 7070 and 8088;
    // $! is then the one-line server, which the test stops.
    const port = await freePort()
    const script = `${(block as string).replaceAll('http://127.0.0.1:7070', open.url).replaceAll('8088', String(port))}\necho "server=$!"`
    // Until bash exits, not until its output closes: the server it left running holds that open.
    const bash = spawn('bash', ['-c', script], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    bash.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d })
    bash.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d })
    const status = await new Promise<number | null>((resolve) => bash.once('exit', resolve))
    await waitFor(() => stdout.includes('server='), { timeoutMs: 5000, what: 'the server\'s pid' })
    const pid = Number(/server=(\d+)/.exec(stdout)?.[1])
    try {
      expect(status, stderr).toBe(0)
      await waitFor(async () => (await http('GET', `${open.url}/v1/services/web/providers/web-1`)).body?.state === 'up', { timeoutMs: 15_000, what: 'web-1 up' })
      expect((await http('GET', `${open.url}/v1/services/jobs/providers/job-1`)).body.state).toBe('up')
    } finally {
      if (pid > 0) process.kill(pid, 'SIGKILL')
    }
  })
})
