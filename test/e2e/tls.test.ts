// TLS at the edge (issue 9, item 5): `roster up --tls-cert --tls-key` serves HTTPS and WSS with
// a self-signed certificate made here by openssl, says so in its banner, gives plain HTTP no
// data, and refuses half or broken TLS configurations at startup with exit 2.
import { execFileSync } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { request } from 'node:https'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { cleanUpAfterEachTest } from '../helpers/e2e-cleanup.js'
import { freeLeaderBind, freePort } from '../../harness/ports.js'
import { runRoster } from '../../harness/roster-process.js'
import { storageFlags, testStorage } from '../helpers/cluster.js'
import { waitFor } from '../../harness/wait-for.js'

cleanUpAfterEachTest()

const UP_TIMEOUT_MS = 60_000
const dirs: string[] = []
afterAll(async () => { for (const d of dirs) await rm(d, { recursive: true, force: true }) })

/** A self-signed certificate for 127.0.0.1 (its own CA) and its key, in a fresh directory. */
async function selfSigned (): Promise<{ dir: string, cert: string, key: string, ca: Buffer }> {
  const dir = await mkdtemp(join(tmpdir(), 'roster-tls-'))
  dirs.push(dir)
  const cert = join(dir, 'cert.pem')
  const key = join(dir, 'key.pem')
  execFileSync('/usr/bin/openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'
  ], { stdio: 'ignore' })
  const { readFile } = await import('node:fs/promises')
  return { dir, cert, key, ca: await readFile(cert) }
}

async function httpsJson (url: string, ca: Buffer, method = 'GET', body?: unknown): Promise<{ status: number, body: any }> {
  return await new Promise((resolve, reject) => {
    const req = request(url, { method, ca, headers: body === undefined ? {} : { 'content-type': 'application/json' } }, (res) => {
      let text = ''
      res.on('data', (d: Buffer) => { text += d.toString() })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text === '' ? undefined : JSON.parse(text) }))
    })
    req.on('error', reject)
    req.end(body === undefined ? undefined : JSON.stringify(body))
  })
}

describe('TLS at the edge', () => {
  it('serves HTTPS and WSS, says so in the banner, and gives plain HTTP no data', async () => {
    const { cert, key, ca } = await selfSigned()
    const port = await freePort()
    const storage = await testStorage('roster-tls-')
    const cmd = runRoster(['up', '--port', String(port), '--bind', await freeLeaderBind(), ...storageFlags(storage),
      '--tls-cert', cert, '--tls-key', key, '--log-level', 'warn'])
    await waitFor(() => cmd.stdout().includes('Roster is up') || cmd.child.exitCode !== null, { timeoutMs: UP_TIMEOUT_MS, what: '"Roster is up"' })
    const base = `https://127.0.0.1:${port}`
    // Piped, the banner is one JSON record (--log-format json when stdout is not a terminal).
    expect(cmd.stdout(), cmd.output()).toContain(`"rest":"${base}/v1/services"`)
    expect(cmd.stdout()).toContain(`"websocket":"wss://127.0.0.1:${port}/v1/watch"`)
    expect(cmd.stdout()).toContain(`"openapi":"${base}/openapi.json"`)

    // HTTPS, verified against the certificate as CA (no rejectUnauthorized: false anywhere).
    expect((await httpsJson(`${base}/v1/services`, ca)).status).toBe(200)

    // WSS: a snapshot, then the event of a write made over HTTPS.
    const ws = new WebSocket(`wss://127.0.0.1:${port}/v1/watch`, { ca })
    const messages: Array<{ type: string, event?: string, provider?: { id: string } }> = []
    ws.on('message', (d) => messages.push(JSON.parse(d.toString()) as (typeof messages)[number]))
    ws.on('error', () => {})
    await waitFor(() => messages.length >= 1, { what: 'the snapshot over WSS' })
    expect(messages[0]?.type).toBe('snapshot')
    const put = await httpsJson(`${base}/v1/services/orders/providers/orders-1`, ca, 'PUT', {
      host: '127.0.0.1', port: 8080, protocol: 'http', check: { type: 'ttl', ttlMs: 60_000 }
    })
    expect(put.status).toBe(201)
    await waitFor(() => messages.some((m) => m.type === 'event' && m.provider?.id === 'orders-1'), { what: 'the event over WSS' })
    ws.terminate()

    // Without the CA, the client refuses the server (the certificate is not trusted by default).
    await expect(httpsJson(`${base}/v1/services`, Buffer.alloc(0))).rejects.toThrow()

    // Plain HTTP to the port: no HTTP answer and no registry data, only a TLS alert or a close.
    const socket = connect(port, '127.0.0.1')
    let received = Buffer.alloc(0)
    socket.on('data', (d: Buffer) => { received = Buffer.concat([received, d]) })
    socket.on('error', () => {})
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
    socket.write('GET /v1/services HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
    await closed
    expect(received.toString('latin1')).not.toMatch(/HTTP\/1\.1|orders|revision/)
    await expect(fetch(`http://127.0.0.1:${port}/v1/services`)).rejects.toThrow()
  })

  describe('refuses a half or broken TLS configuration with exit 2', () => {
    async function refused (args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
      const cmd = runRoster(['gateway', '--port', String(await freePort()), ...args], { ROSTER_TLS_CERT: undefined, ROSTER_TLS_KEY: undefined, ...env })
      const { code } = await cmd.exited
      expect(code, cmd.output()).toBe(2)
      return cmd.stderr()
    }

    it('only one of the two files', async () => {
      const { cert, key } = await selfSigned()
      expect(await refused(['--tls-cert', cert])).toContain('--tls-cert and --tls-key go together')
      expect(await refused(['--tls-key', key])).toContain('--tls-cert and --tls-key go together')
      expect(await refused([], { ROSTER_TLS_CERT: cert })).toContain('--tls-cert and --tls-key go together')
    })

    it('an unreadable file, a file that is no certificate, and a key of another certificate', async () => {
      const { dir, cert, key } = await selfSigned()
      const other = await selfSigned()
      expect(await refused(['--tls-cert', join(dir, 'missing.pem'), '--tls-key', key])).toMatch(/--tls-cert .*missing\.pem: cannot read it \(ENOENT\)/)
      const junk = join(dir, 'junk.pem')
      await writeFile(junk, 'not a certificate\n')
      expect(await refused(['--tls-cert', junk, '--tls-key', key])).toMatch(/not a usable certificate and key/)
      const mismatch = await refused(['--tls-cert', cert, '--tls-key', other.key])
      expect(mismatch).toMatch(/not a usable certificate and key \(.*key values mismatch/)
      // The key's content never appears in the message.
      const { readFile } = await import('node:fs/promises')
      const keyBody = (await readFile(other.key, 'utf8')).split('\n')[1] as string
      expect(mismatch).not.toContain(keyBody)
    })
  })
})
