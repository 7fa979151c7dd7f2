// CurveZMQ between the roles (`roster keys generate`, `--cluster-keys`), through real processes:
// a keyed cluster works end to end (a separate gateway process included), and an outsider's
// DEALER or SUB, zeromq.js or pyzmq, without the keys, with a random keypair, or with the right
// server key but an unknown client key, gets no reply and no event and changes nothing. Also the
// key file's modes and shape, and the refusal to start a keyless leader on a non-loopback bind.
import { execFile } from 'node:child_process'
import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { curveKeyPair, Dealer, Subscriber } from 'zeromq'
import { curveClientOptions, type ClusterKeys } from '../../server/protocol/cluster-keys.js'
import { pubEndpoint } from '../../server/protocol/endpoints.js'
import { freeLeaderBind, freePort } from '../../harness/ports.js'
import { http, killAllRoster, runRoster, spawnRoster, waitForLeader, waitForReady } from '../../harness/roster-process.js'
import { readFeed, removeTestStorage, storageFlags, testStorage, type FeedReader } from '../helpers/cluster.js'
import { hasPyzmq, killAllEmitters, spawnEmitter } from '../helpers/emitters.js'
import { NEEDS_PYZMQ } from '../helpers/requirements.js'

/** Node + tsx start in about a second, the embedded Postgres in about 1 more; a loaded machine takes longer. */
const START_TIMEOUT_MS = 60_000
/** How long an outsider listens for an answer or an event that must never come. A keyed
 *  follower gets its PONG within milliseconds (the positive control below). */
const SILENCE_MS = 1500

const dirs: string[] = []
const sockets: Array<{ close: () => void }> = []
const feeds: FeedReader[] = []

async function tempDir (): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'roster-keys-'))
  dirs.push(d)
  return d
}

afterEach(async () => {
  for (const s of sockets.splice(0)) s.close()
  for (const f of feeds.splice(0)) f.close()
  await killAllRoster()
  await killAllEmitters()
})
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true })
  await removeTestStorage()
})

async function generate (file: string, ...extra: string[]): Promise<{ code: number | null, stdout: string, stderr: string }> {
  const cmd = runRoster(['keys', 'generate', file, ...extra])
  const { code } = await cmd.exited
  return { code, stdout: cmd.stdout(), stderr: cmd.stderr() }
}

describe('roster keys generate', () => {
  it('writes a leader and a follower keypair in Z85, mode 0600, and refuses to overwrite without --force', async () => {
    const file = join(await tempDir(), 'cluster.keys')
    const first = await generate(file)
    expect(first.code).toBe(0)
    expect(first.stdout).toContain('--cluster-keys')
    expect(statSync(file).mode & 0o777).toBe(0o600)
    const keys = JSON.parse(readFileSync(file, 'utf8')) as ClusterKeys
    expect(keys.version).toBe(1)
    for (const k of [keys.leader.publicKey, keys.leader.secretKey, keys.follower.publicKey, keys.follower.secretKey]) expect(k).toHaveLength(40)
    expect(keys.leader.publicKey).not.toBe(keys.follower.publicKey)

    const again = await generate(file)
    expect(again.code).toBe(2)
    expect(again.stderr).toContain('already exists')
    expect(readFileSync(file, 'utf8')).toBe(JSON.stringify(keys, null, 2) + '\n')

    chmodSync(file, 0o644)
    const forced = await generate(file, '--force')
    expect(forced.code).toBe(0)
    expect(statSync(file).mode & 0o777).toBe(0o600)
    expect((JSON.parse(readFileSync(file, 'utf8')) as ClusterKeys).leader.publicKey).not.toBe(keys.leader.publicKey)
  })

  it('every role refuses a key file that others can read, or that is not a key file, with exit 2', async () => {
    const dir = await tempDir()
    const file = join(dir, 'cluster.keys')
    expect((await generate(file)).code).toBe(0)
    chmodSync(file, 0o640)
    for (const role of ['leader', 'worker', 'gateway']) {
      const cmd = runRoster([role, '--cluster-keys', file])
      expect((await cmd.exited).code).toBe(2)
      expect(cmd.stderr()).toContain(`cluster key file ${file} is readable by others (mode 0640); run chmod 600`)
    }
    const bad = join(dir, 'bad.keys')
    writeFileSync(bad, JSON.stringify({ version: 1, leader: { publicKey: 'x', secretKey: 'y' } }), { mode: 0o600 })
    const cmd = runRoster(['worker'], { ROSTER_CLUSTER_KEYS: bad })
    expect((await cmd.exited).code).toBe(2)
    expect(cmd.stderr()).toContain('is not a Roster key file')
  })

  it('a leader on a non-loopback --bind without keys refuses to start (exit 2, naming both flags)', async () => {
    const port = await freePort()
    const cmd = runRoster(['leader', '--bind', `tcp://0.0.0.0:${port}`])
    expect((await cmd.exited).code).toBe(2)
    expect(cmd.stderr()).toContain('--cluster-keys')
    expect(cmd.stderr()).toContain('--insecure-no-auth')
  })
})

describe('a cluster with --cluster-keys', () => {
  /** `roster up` with keys (leader, worker, gateway in one process) and a second gateway process
   *  with the same keys; returns its URLs once both serve reads. */
  async function keyedCluster (): Promise<{ keys: ClusterKeys, bind: string, url: string, url2: string }> {
    const file = join(await tempDir(), 'cluster.keys')
    expect((await generate(file)).code).toBe(0)
    const keys = JSON.parse(readFileSync(file, 'utf8')) as ClusterKeys
    const bind = await freeLeaderBind()
    const [port, port2] = [await freePort(), await freePort()]
    const storage = await testStorage('roster-keys-')
    const up = spawnRoster(['up', '--bind', bind, '--port', String(port), ...storageFlags(storage)], { ROSTER_CLUSTER_KEYS: file })
    const url = `http://127.0.0.1:${port}`
    await waitForReady(url, START_TIMEOUT_MS).catch((err: Error) => { throw new Error(`${err.message}\n${up.output()}`) })
    const gw = spawnRoster(['gateway', '--leader', bind, '--port', String(port2), '--cluster-keys', file])
    const url2 = `http://127.0.0.1:${port2}`
    await waitForLeader(url2, START_TIMEOUT_MS).catch((err: Error) => { throw new Error(`${err.message}\n${gw.output()}`) })
    await waitForReady(url2, START_TIMEOUT_MS)
    return { keys, bind, url, url2 }
  }

  async function revisionOf (url: string): Promise<number> {
    const res = await http('GET', `${url}/v1/services`)
    expect(res.status).toBe(200)
    return res.body.revision as number
  }

  /** Frames an outsider tries: liveness, a snapshot, a registration. */
  function attempts (tag: string): string[][] {
    const spec = { host: '10.0.0.66', port: 8080, protocol: 'http', heartbeat: 'tcp://127.0.0.1:9', heartbeatIntervalMs: 1000 }
    return [
      ['PING', JSON.stringify({ peerId: `outsider-${tag}`, role: 'worker' })],
      ['READY', JSON.stringify({ workerId: `outsider-${tag}`, observations: [] })],
      ['SNAPSHOT_REQ', JSON.stringify({ requestId: `snap-${tag}` })],
      ['WRITE', JSON.stringify({ writes: [{ requestId: `w-${tag}`, op: { type: 'register', service: 'evil', id: `evil-${tag}`, spec } }] })]
    ]
  }

  /** Sends every attempt from a zeromq.js DEALER with `options`; resolves with what came back
   *  within SILENCE_MS. A SUB with the same options listens on the PUB meanwhile. */
  async function outsider (bind: string, options: Record<string, unknown>, tag: string, duringSilence: () => Promise<void>): Promise<{ replies: string[], events: string[] }> {
    const dealer = new Dealer({ linger: 0, sendTimeout: 0, ...options })
    const sub = new Subscriber({ linger: 0, ...options })
    sockets.push(dealer, sub)
    sub.subscribe()
    sub.connect(pubEndpoint(bind))
    dealer.connect(bind)
    const replies: string[] = []
    const events: string[] = []
    void (async () => { for await (const [verb] of dealer) replies.push(String(verb)) })().catch(() => {})
    void (async () => { for await (const [verb] of sub) events.push(String(verb)) })().catch(() => {})
    // A DEALER with no connected peer may refuse to queue (sendTimeout 0): that is one more way
    // of getting nowhere, so it is not an error here.
    for (const msg of attempts(tag)) await dealer.send(msg).catch(() => {})
    await duringSilence()
    await new Promise((resolve) => setTimeout(resolve, SILENCE_MS))
    return { replies, events }
  }

  it('works end to end, and outsiders without the keys get no reply, no event, and change nothing', async () => {
    const { keys, bind, url, url2 } = await keyedCluster()
    const f = await readFeed(url2, '?service=orders')
    feeds.push(f)
    await f.next((m) => m.type === 'snapshot')

    // End to end: a provider registered on one gateway comes up through the (keyed) worker and
    // reaches the other gateway's feed.
    const e = await spawnEmitter({ id: 'o1', intervalMs: 100 })
    const reg = await http('PUT', `${url}/v1/services/orders/providers/o1`, { host: '127.0.0.1', port: 8080, protocol: 'http', heartbeat: e.endpoint, heartbeatIntervalMs: 100 })
    expect(reg.status).toBe(201)
    await f.next((m) => m.type === 'event' && m.provider?.id === 'o1' && m.provider.state === 'up', { timeoutMs: 15_000 })

    // Positive control: a socket holding the follower keys gets a PONG at once, so the silence
    // below is the outsiders' alone.
    const member = new Dealer({ linger: 0, receiveTimeout: 5000, ...curveClientOptions(keys) })
    sockets.push(member)
    member.connect(bind)
    await member.send(['PING', JSON.stringify({ peerId: 'member', role: 'gateway' })])
    expect(String((await member.receive())[0])).toBe('PONG')

    const stranger = curveKeyPair()
    const other = curveKeyPair()
    const cases: Record<string, Record<string, unknown>> = {
      'no keys': {},
      'a random keypair and server key': { curveServerKey: other.publicKey, curvePublicKey: stranger.publicKey, curveSecretKey: stranger.secretKey },
      'the server key and an unknown client key': { curveServerKey: keys.leader.publicKey, curvePublicKey: stranger.publicKey, curveSecretKey: stranger.secretKey }
    }
    let n = 0
    for (const [name, options] of Object.entries(cases)) {
      const before = await revisionOf(url)
      const tag = String(n++)
      // While the outsider listens, a legitimate write makes an event it would see if it could.
      const got = await outsider(bind, options, tag, async () => {
        expect((await http('PUT', `${url}/v1/services/orders/providers/fence-${tag}`, { host: '127.0.0.1', port: 8080, protocol: 'http', heartbeat: 'tcp://127.0.0.1:9' })).status).toBe(201)
      })
      expect(got, name).toEqual({ replies: [], events: [] })
      // Exactly the fence's revision: the outsider's WRITE and READY changed nothing.
      expect(await revisionOf(url), name).toBe(before + 1)
      expect((await http('GET', `${url}/v1/services/evil/providers/evil-${tag}`)).status, name).toBe(404)
    }
    // The keyed feed still works and saw the fences.
    await f.next((m) => m.type === 'event' && m.provider?.id === `fence-${n - 1}`)
    expect((await http('GET', `${url2}/v1/services/orders/providers/o1`)).body).toMatchObject({ state: 'up' })
  }, 180_000)

  it('a pyzmq outsider (no keys, random keys, unknown client key) gets nothing either', async ({ skip }) => {
    skip(!hasPyzmq, NEEDS_PYZMQ)
    const { keys, bind, url } = await keyedCluster()
    const before = await revisionOf(url)
    const script = `
import json, sys, zmq
bind, server_key = sys.argv[1], sys.argv[2].encode()
pub = bind.rsplit(':', 1)[0] + ':' + str(int(bind.rsplit(':', 1)[1]) + 1)
ctx = zmq.Context()
got = {}
for name in ['none', 'random', 'unknown-client']:
    d, s = ctx.socket(zmq.DEALER), ctx.socket(zmq.SUB)
    for sock in (d, s):
        sock.linger = 0
        if name != 'none':
            pk, sk = zmq.curve_keypair()
            sock.curve_serverkey = zmq.curve_keypair()[0] if name == 'random' else server_key
            sock.curve_publickey, sock.curve_secretkey = pk, sk
    s.setsockopt(zmq.SUBSCRIBE, b'')
    s.connect(pub)
    d.connect(bind)
    for verb, body in [('PING', {'peerId': 'py', 'role': 'worker'}), ('SNAPSHOT_REQ', {'requestId': 'py'}),
                       ('WRITE', {'writes': [{'requestId': 'py', 'op': {'type': 'deregister', 'service': 'orders', 'id': 'o-py'}}]})]:
        try:
            d.send_multipart([verb.encode(), json.dumps(body).encode()], flags=zmq.NOBLOCK)
        except zmq.Again:
            pass
    poller = zmq.Poller()
    poller.register(d, zmq.POLLIN)
    poller.register(s, zmq.POLLIN)
    got[name] = len(dict(poller.poll(${SILENCE_MS})))
    d.close(); s.close()
print(json.dumps(got))
`
    // The DEALER's WRITE would deregister this provider if it got through.
    expect((await http('PUT', `${url}/v1/services/orders/providers/o-py`, { host: '127.0.0.1', port: 8080, protocol: 'http', heartbeat: 'tcp://127.0.0.1:9' })).status).toBe(201)
    // An event every 50 ms meanwhile would reach any SUB that got in.
    let writing = true
    const writer = (async () => {
      for (let i = 0; writing && i < 200; i++) {
        await http('PUT', `${url}/v1/services/orders/providers/py-fence-${i}`, { host: '127.0.0.1', port: 8080, protocol: 'http', heartbeat: 'tcp://127.0.0.1:9' })
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
    })()
    const py = await promisify(execFile)('/usr/bin/python3', ['-c', script, bind, keys.leader.publicKey], { encoding: 'utf8', timeout: 30_000 })
      .finally(() => { writing = false })
    await writer
    expect(py.stderr).toBe('')
    expect(JSON.parse(py.stdout)).toEqual({ none: 0, random: 0, 'unknown-client': 0 })
    expect((await http('GET', `${url}/v1/services/orders/providers/o-py`)).status).toBe(200)
    expect(await revisionOf(url)).toBeGreaterThan(before)
  }, 180_000)
})
