// The embedded data directory is readable by Roster's user only (issue 9, item 7): `roster up`
// run as a real process on a fresh directory, and again on one whose modes were loosened, leaves
// every directory in it 0700 and every file 0600, while it runs and after it stops.
import { chmod, lstat, mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, expect, it } from 'vitest'
import { freeLeaderEndpoint, freePort } from '../../harness/ports.js'
import { killAllRoster, spawnRoster, waitForReady, type RosterProcess } from '../../harness/roster-process.js'

const parents: string[] = []
afterEach(async () => { await killAllRoster() })
afterAll(async () => { for (const p of parents) await rm(p, { recursive: true, force: true }) })

/** Every path under `dir` (itself included) with its permission bits, symlinks excepted. */
async function modes (dir: string): Promise<Map<string, number>> {
  const out = new Map<string, number>()
  const stack = [dir]
  for (let p = stack.pop(); p !== undefined; p = stack.pop()) {
    const info = await lstat(p).catch(() => null) // a file Postgres removed meanwhile
    if (info === null || info.isSymbolicLink()) continue
    out.set(p, info.mode & 0o7777)
    if (info.isDirectory()) for (const name of await readdir(p).catch(() => [])) stack.push(join(p, name))
  }
  return out
}

async function expectPrivate (dir: string): Promise<void> {
  const all = await modes(dir)
  const wrong: string[] = []
  for (const [p, m] of all) {
    const info = await lstat(p).catch(() => null)
    if (info === null) continue
    // The server's socket is 0700 like a directory: only its owner may connect.
    const want = info.isDirectory() || info.isSocket() ? 0o700 : 0o600
    if (m !== want) wrong.push(`${m.toString(8)} ${p}`)
  }
  expect(all.size).toBeGreaterThan(100) // a whole Postgres cluster, not an empty directory
  expect(wrong).toEqual([])
}

async function up (dataDir: string): Promise<{ proc: RosterProcess, url: string }> {
  const port = await freePort()
  const proc = spawnRoster(['up', '--data-dir', dataDir, '--port', String(port), '--bind', await freeLeaderEndpoint()], { ROSTER_DATABASE_URL: '', DATABASE_URL: '' })
  const url = `http://127.0.0.1:${port}`
  await waitForReady(url, 60_000).catch((err) => { throw new Error(`${String(err)}\n${proc.output()}`) })
  return { proc, url }
}

it('roster up makes a new data directory 0700 and every file in it 0600, and tightens a loose one it opens', async () => {
  const parent = await mkdtemp(join(tmpdir(), 'roster-modes-'))
  parents.push(parent)
  const dataDir = join(parent, 'data')

  let { proc, url } = await up(dataDir)
  const put = await fetch(`${url}/v1/services/orders/providers/o-1`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ host: '127.0.0.1', port: 8080, protocol: 'http', check: { type: 'ttl', ttlMs: 60_000 } })
  })
  expect(put.status).toBe(201)
  await expectPrivate(dataDir)
  await proc.kill('SIGTERM')
  await expectPrivate(dataDir)

  // As an older Roster (or a copy) left it: everything readable by everyone.
  for (const [p] of await modes(dataDir)) {
    const info = await lstat(p)
    await chmod(p, info.isDirectory() ? 0o777 : 0o666)
  }
  ;({ proc, url } = await up(dataDir))
  await expectPrivate(dataDir)
  const read = await fetch(`${url}/v1/services/orders/providers/o-1`)
  expect(read.status).toBe(200) // the same registry, only its modes changed
  await proc.kill('SIGTERM')
  await expectPrivate(dataDir)
}, 120_000)
