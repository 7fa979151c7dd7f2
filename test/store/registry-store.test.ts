// The registry store and the migrator, on Postgres, and the embedded server: what the leader relies
// on (atomic, fenced, strictly ordered commits; a resumable change log) and what an operator
// relies on (idempotent, concurrent-safe migrations; a data directory with a single owner).
import { spawn } from 'node:child_process'
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { Change, Provider } from '../../server/protocol/model.js'
import { openDb, type Db } from '../../server/store/db.js'
import { migrate } from '../../server/store/migrate.js'
import { createRegistryStore, FencedError } from '../../server/store/registry-store.js'
import { lastJsonLine, runTs } from '../helpers/child-process.js'
import { describeWithDatabase, dropDatabase, freshDatabaseUrl } from '../helpers/postgres.js'
import { waitFor } from '../../harness/wait-for.js'

const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url))
const SHIPPED = (await readdir(MIGRATIONS_DIR)).filter((f) => f.endsWith('.sql')).map((f) => f.slice(0, -4)).sort()
const STORE_CHILD = 'test/helpers/store-child.ts'

function provider (id: string, overrides: Partial<Provider> = {}): Provider {
  return {
    id,
    service: 'orders',
    host: '10.0.0.5',
    port: 8080,
    protocol: 'http',
    heartbeat: 'tcp://10.0.0.5:9100',
    heartbeatIntervalMs: 1000,
    tags: ['blue'],
    meta: { version: '1.4.2' },
    state: 'pending',
    stateSince: '2026-11-27T10:00:00.000Z',
    lastSeen: null,
    revision: 0,
    ...overrides
  }
}

/** A change whose provider carries the change's revision, as the leader builds them. */
function change (revision: number, event: Change['event'], p: Provider): Change {
  return { revision, event, provider: { ...p, revision } }
}

/** n registrations of distinct providers, revisions from+1 … from+n. */
function registrations (n: number, from = 0): Change[] {
  return Array.from({ length: n }, (_, i) => change(from + i + 1, 'registered', provider(`p-${from + i + 1}`)))
}

async function migrationIds (db: Db): Promise<string[]> {
  const rows = await db.query<{ id: string }>('select id from schema_migrations order by id')
  return rows.map((row) => row.id)
}

describeWithDatabase('migrate', (backend) => {
  it('applies every migration once; running it again applies nothing', async () => {
    const db = await backend.empty()
    expect(SHIPPED[0]).toBe('0001_registry')
    expect(await migrate(db)).toEqual(SHIPPED)
    expect(await migrate(db)).toEqual([])
    expect(await migrate(db)).toEqual([])
    expect(await migrationIds(db)).toEqual(SHIPPED)
    // The schema is usable: the one meta row exists.
    expect(await createRegistryStore(db).load()).toEqual({ revision: 0, epoch: 0, providers: [] })
  })

  it('serialises concurrent migrators, in this process and another', async () => {
    // More than one file, so that migrators can interleave between files; a file applied twice
    // would fail on its create table.
    const dir = await mkdtemp(path.join(os.tmpdir(), 'roster-migrations-'))
    const url = await freshDatabaseUrl({ migrated: false })
    const blocker = new pg.Client({ connectionString: url })
    const dbs: Db[] = []
    try {
      await cp(MIGRATIONS_DIR, dir, { recursive: true })
      await writeFile(path.join(dir, '9998_extra.sql'), 'create table extra_a (id int primary key);')
      await writeFile(path.join(dir, '9999_extra.sql'), 'create table extra_b (id int primary key);')
      const all = [...SHIPPED, '9998_extra', '9999_extra']

      // Hold the migration lock, so that all three migrators are provably waiting at once before
      // any of them starts. The key is migrate.ts's well-known constant.
      await blocker.connect()
      await blocker.query("select pg_advisory_lock('23207892061350247'::bigint)")
      dbs.push(await openDb({ databaseUrl: url }), await openDb({ databaseUrl: url }))
      const inProcess = dbs.map(async (db) => migrate(db, dir))
      const child = runTs(STORE_CHILD, ['migrate', url, dir])
      await waitFor(async () => {
        const [row] = (await blocker.query<{ waiting: number }>(`
          select count(*)::int as waiting from pg_locks
           where locktype = 'advisory' and not granted
             and database = (select oid from pg_database where datname = current_database())`)).rows
        return row?.waiting === 3
      }, { timeoutMs: 15_000, what: 'three migrators waiting on the migration lock' })
      await blocker.query("select pg_advisory_unlock('23207892061350247'::bigint)")

      const [a, b] = await Promise.all(inProcess)
      const result = await child.done
      expect(result.code, result.stderr).toBe(0)
      const fromChild = lastJsonLine(result.stdout) as { ok: boolean, applied: string[] }
      expect(fromChild.ok).toBe(true)
      expect([...a!, ...b!, ...fromChild.applied].sort()).toEqual(all)
      expect(await migrationIds(dbs[0]!)).toEqual(all)
    } finally {
      await blocker.end()
      for (const db of dbs) await db.close()
      await dropDatabase(url)
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describeWithDatabase('registry store', (backend) => {
  it('round-trips providers through commit and load; deregistered removes the row', async () => {
    const store = createRegistryStore(backend.db)
    const epoch = await store.claimEpoch()
    const a = provider('orders-1')
    const b = provider('orders-2', { service: 'orders', protocol: 'rpc', tags: [], meta: {} })
    await store.commit(epoch, [change(1, 'registered', a), change(2, 'registered', b)])

    const upA = { ...a, state: 'up' as const, stateSince: '2026-11-27T10:05:00.123Z', lastSeen: '2026-11-27T10:05:00.456Z' }
    await store.commit(epoch, [change(3, 'up', upA)])
    expect(await store.load()).toEqual({
      revision: 3,
      epoch,
      providers: [{ ...upA, revision: 3 }, { ...b, revision: 2 }]
    })

    await store.commit(epoch, [change(4, 'deregistered', upA)])
    expect(await store.load()).toEqual({ revision: 4, epoch, providers: [{ ...b, revision: 2 }] })
  })

  it('round-trips a provider watched by a check (no heartbeat), its deregisterAfterMs, a failed check\'s detail and an operator\'s note', async () => {
    const store = createRegistryStore(backend.db)
    const epoch = await store.claimEpoch()
    const { heartbeat: _heartbeat, ...base } = provider('orders-1')
    const checked: Provider = {
      ...base,
      check: { type: 'http', path: '/health?deep=1', intervalMs: 500, timeoutMs: 200 },
      deregisterAfterMs: 604_800_000,
      state: 'down',
      reason: 'check-failed',
      detail: 'HTTP 503',
      detectedAfterMs: 7
    }
    const ttl: Provider = { ...provider('orders-2'), check: { type: 'ttl', ttlMs: 1000 }, state: 'maintenance', reason: 'kernel upgrade' }
    delete ttl.heartbeat
    await store.commit(epoch, [change(1, 'registered', checked), change(2, 'maintenance', ttl)])
    expect(await store.load()).toEqual({ revision: 2, epoch, providers: [{ ...checked, revision: 1 }, { ...ttl, revision: 2 }] })
    // And back to a heartbeat with nothing else: the optional columns are cleared.
    const plain = provider('orders-1', { state: 'up' })
    await store.commit(epoch, [change(3, 'updated', plain)])
    const [loaded] = (await store.load()).providers
    expect(loaded).toEqual({ ...plain, revision: 3 })
  })

  it('applies a batch in order, several changes of one provider included', async () => {
    const store = createRegistryStore(backend.db)
    const epoch = await store.claimEpoch()
    const gone = provider('gone-1')
    const kept = provider('kept-1')
    await store.commit(epoch, [
      change(1, 'registered', gone),
      change(2, 'registered', kept),
      change(3, 'up', { ...gone, state: 'up' }),
      change(4, 'deregistered', gone),
      change(5, 'updated', { ...kept, port: 9090, tags: ['green'] }),
      change(6, 'registered', gone)
    ])
    const loaded = await store.load()
    expect(loaded.revision).toBe(6)
    expect(loaded.providers).toEqual([
      { ...gone, revision: 6 },
      { ...kept, port: 9090, tags: ['green'], revision: 5 }
    ])
    // The log keeps every step, and each provider exactly as it was given.
    const log = await store.changesSince(0, 100)
    expect(log.changes.map((c) => [c.revision, c.event, c.provider.id])).toEqual([
      [1, 'registered', 'gone-1'], [2, 'registered', 'kept-1'], [3, 'up', 'gone-1'],
      [4, 'deregistered', 'gone-1'], [5, 'updated', 'kept-1'], [6, 'registered', 'gone-1']
    ])
    expect(log.changes[2]).toEqual(change(3, 'up', { ...gone, state: 'up' }))
  })

  it('refuses revisions that do not strictly increase, and then changes nothing', async () => {
    const store = createRegistryStore(backend.db)
    const epoch = await store.claimEpoch()
    await store.commit(epoch, registrations(3))
    const before = await store.load()
    const log = await store.changesSince(0, 100)

    const refused = { code: 'ROSTER_ERR_REVISION_ORDER' }
    // Equal to the stored revision (and already in the log).
    await expect(store.commit(epoch, [change(3, 'registered', provider('x'))])).rejects.toMatchObject(refused)
    // Below it, with a new provider that would otherwise have been inserted first.
    await expect(store.commit(epoch, [change(2, 'registered', provider('y'))])).rejects.toMatchObject(refused)
    // Not increasing within the batch.
    await expect(store.commit(epoch, [change(5, 'registered', provider('z')), change(5, 'up', provider('z'))])).rejects.toMatchObject(refused)
    await expect(store.commit(epoch, [change(6, 'registered', provider('z')), change(4, 'up', provider('z'))])).rejects.toMatchObject(refused)

    expect(await store.load()).toEqual(before)
    expect(await store.changesSince(0, 100)).toEqual(log)
    // The sequence goes on from where it was.
    await store.commit(epoch, [change(4, 'registered', provider('x'))])
    expect((await store.load()).revision).toBe(4)
  })

  it('refuses a revision below the stored one even when its log row was pruned', async () => {
    const store = createRegistryStore(backend.db)
    const epoch = await store.claimEpoch()
    await store.commit(epoch, registrations(5))
    await store.prune(0)
    await expect(store.commit(epoch, [change(3, 'updated', provider('p-3'))]))
      .rejects.toMatchObject({ code: 'ROSTER_ERR_REVISION_ORDER' })
    expect((await store.load()).providers.find((p) => p.id === 'p-3')?.revision).toBe(3)
  })

  it('fences a deposed epoch: its batch fails at the end and leaves nothing behind', async () => {
    const store = createRegistryStore(backend.db)
    const first = await store.claimEpoch()
    const second = await store.claimEpoch()
    expect(second).toBe(first + 1)

    const batch = registrations(3)
    const err = await store.commit(first, batch).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(FencedError)
    expect(err).toMatchObject({ code: 'ROSTER_ERR_FENCED' })
    expect(await store.load()).toEqual({ revision: 0, epoch: second, providers: [] })
    expect(await store.changesSince(0, 100)).toEqual({ available: true, changes: [] })

    await store.commit(second, batch)
    expect((await store.load()).providers.map((p) => p.id)).toEqual(['p-1', 'p-2', 'p-3'])
  })

  it('pages the change log and reports a pruned range as unavailable', async () => {
    const store = createRegistryStore(backend.db)
    const epoch = await store.claimEpoch()
    const all = registrations(10)
    await store.commit(epoch, all.slice(0, 4))
    await store.commit(epoch, all.slice(4))

    expect(await store.changesSince(0, 3)).toEqual({ available: true, changes: all.slice(0, 3) })
    expect(await store.changesSince(3, 100)).toEqual({ available: true, changes: all.slice(3) })
    expect(await store.changesSince(10, 100)).toEqual({ available: true, changes: [] })

    await store.prune(4) // keeps 7..10
    expect(await store.changesSince(5, 100)).toEqual({ available: false, changes: [] })
    expect(await store.changesSince(6, 100)).toEqual({ available: true, changes: all.slice(6) })
    expect(await store.changesSince(6, 2)).toEqual({ available: true, changes: all.slice(6, 8) })

    await store.prune(4) // nothing more to delete
    expect(await store.changesSince(6, 100)).toEqual({ available: true, changes: all.slice(6) })

    await store.prune(0)
    expect(await store.changesSince(9, 100)).toEqual({ available: false, changes: [] })
    expect(await store.changesSince(10, 100)).toEqual({ available: true, changes: [] })
    // Pruning the log never touches the providers.
    expect((await store.load()).providers).toHaveLength(10)
  })

  it('shows a reader nothing of a batch until it commits', async () => {
    const store = createRegistryStore(backend.db)
    const epoch = await store.claimEpoch()
    const reader = await openDb({ databaseUrl: backend.url })
    const readerStore = createRegistryStore(reader)
    const blocker = new pg.Client({ connectionString: backend.url })
    try {
      // Lock the meta row from another session: the commit then writes its providers and log
      // rows and waits at its final, fencing update, with its transaction open.
      await blocker.connect()
      await blocker.query('begin')
      await blocker.query('select * from roster_meta where id = 1 for update')
      let settled = false
      const committing = store.commit(epoch, registrations(3)).finally(() => { settled = true })
      await waitFor(async () => {
        const [row] = await reader.query<{ waiting: number }>(`
          select count(*)::int as waiting from pg_stat_activity
           where datname = current_database() and wait_event_type = 'Lock'`)
        return row?.waiting === 1
      }, { what: 'the commit to wait on the meta row' })

      expect(settled).toBe(false)
      expect(await readerStore.load()).toEqual({ revision: 0, epoch, providers: [] })
      expect(await readerStore.changesSince(0, 100)).toEqual({ available: true, changes: [] })

      await blocker.query('commit')
      await committing
      expect((await readerStore.load()).providers.map((p) => p.id)).toEqual(['p-1', 'p-2', 'p-3'])
      expect((await readerStore.changesSince(0, 100)).changes).toHaveLength(3)
    } finally {
      await blocker.end()
      await reader.close()
    }
  })

  it('fences one store by another on the same database', async () => {
    const other = await openDb({ databaseUrl: backend.url })
    try {
      const leaderA = createRegistryStore(backend.db)
      const leaderB = createRegistryStore(other)
      const epochA = await leaderA.claimEpoch()
      await leaderA.commit(epochA, registrations(2))
      const epochB = await leaderB.claimEpoch()
      await expect(leaderA.commit(epochA, registrations(1, 2))).rejects.toBeInstanceOf(FencedError)
      const loaded = await leaderB.load()
      expect(loaded).toMatchObject({ revision: 2, epoch: epochB })
      await leaderB.commit(epochB, registrations(1, loaded.revision))
      expect((await leaderA.load()).revision).toBe(3)
    } finally {
      await other.close()
    }
  })
})

describe('embedded Postgres data directory', () => {
  // initdb takes about a second, starting a stopped cluster a few hundred milliseconds: make and
  // migrate one, then give each test a copy of it.
  let root: string
  let migratedDir: string
  const opened: Db[] = []

  beforeAll(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'roster-pg-'))
    migratedDir = path.join(root, 'migrated')
    const db = await openDb({ dataDir: migratedDir })
    await migrate(db)
    await db.close()
  })
  afterEach(async () => {
    for (const db of opened.splice(0)) await db.close()
  })
  afterAll(async () => {
    await rm(root, { recursive: true, force: true })
  })

  let copies = 0
  async function freshDir (): Promise<string> {
    const dir = path.join(root, `copy-${++copies}`)
    await cp(migratedDir, dir, { recursive: true })
    return dir
  }
  async function open (dataDir: string): Promise<Db> {
    const db = await openDb({ dataDir })
    opened.push(db)
    return db
  }

  it('keeps committed data across close and reopen', async () => {
    const dir = await freshDir()
    const db = await openDb({ dataDir: dir })
    const store = createRegistryStore(db)
    const epoch = await store.claimEpoch()
    await store.commit(epoch, registrations(3))
    const before = await store.load()
    await db.close()
    await db.close() // idempotent

    const reopened = await open(dir)
    expect(await createRegistryStore(reopened).load()).toEqual(before)
    expect(await migrate(reopened)).toEqual([])
  })

  it('refuses a second opener in this process until the first closes', async () => {
    const dir = await freshDir()
    const first = await openDb({ dataDir: dir })
    const err = await openDb({ dataDir: dir }).catch((e: unknown) => e)
    expect(err).toMatchObject({
      code: 'ROSTER_ERR_DATA_DIR_LOCKED',
      message: `data directory ${path.resolve(dir)} is in use by process ${process.pid}`
    })
    // The refused opener did not disturb the owner.
    expect(await createRegistryStore(first).load()).toMatchObject({ revision: 0 })
    await first.close()

    const second = await open(dir)
    expect(await createRegistryStore(second).load()).toMatchObject({ revision: 0 })
  })

  it('refuses a second opener in another process', async () => {
    const dir = await freshDir()
    await open(dir)
    const result = await runTs(STORE_CHILD, ['open-embedded', dir]).done
    expect(result.code, result.stderr).toBe(1)
    expect(lastJsonLine(result.stdout)).toEqual({
      ok: false,
      code: 'ROSTER_ERR_DATA_DIR_LOCKED',
      message: `data directory ${path.resolve(dir)} is in use by process ${process.pid}`
    })
  })

  it('takes over the lock of a process that is gone, and releases it on close', async () => {
    const dir = await freshDir()
    const lockFile = path.join(dir, 'roster.pid')
    const deadPid = await deadChildPid()
    await writeFile(lockFile, String(deadPid))

    const db = await openDb({ dataDir: dir })
    expect(await readFile(lockFile, 'utf8')).toBe(String(process.pid))
    await db.close()
    await expect(readFile(lockFile, 'utf8')).rejects.toMatchObject({ code: 'ENOENT' })
  })
  it('stops the Postgres that a SIGKILLed owner left running, and keeps every committed change', async () => {
    const dir = await freshDir()
    const owner = runTs(STORE_CHILD, ['hold-embedded', dir])
    let out = ''
    owner.child.stdout?.on('data', (chunk: string) => { out += chunk })
    const held = await waitFor(() => {
      const line = out.split('\n').find((l) => l.startsWith('{'))
      return line === undefined ? undefined : JSON.parse(line) as { ok: boolean, serverPid: number, revision: number }
    }, { timeoutMs: 20_000, what: 'the owner to hold the database' })
    expect(held).toMatchObject({ ok: true, revision: 3 })
    owner.child.kill('SIGKILL')
    await owner.done
    // The orphan: its Roster is gone, the server is not.
    expect(() => process.kill(held.serverPid, 0)).not.toThrow()

    const db = await open(dir)
    expect(await createRegistryStore(db).load()).toMatchObject({ revision: 3 })
    expect(() => process.kill(held.serverPid, 0)).toThrow()
  })

  it('listens on a Unix socket in the data directory and on no TCP port', async () => {
    const dir = await freshDir()
    const db = await open(dir)
    expect(db.url).toContain(encodeURIComponent(path.join(path.resolve(dir), 'pg')))
    expect(await db.query("select current_setting('listen_addresses') as listen")).toEqual([{ listen: '' }])
  })

  it('refuses a data directory of an earlier Roster (PGlite), and one too deep for a socket path', async () => {
    const old = path.join(root, 'pglite-era')
    await mkdir(old)
    await writeFile(path.join(old, 'PG_VERSION'), '17\n')
    await expect(openDb({ dataDir: old })).rejects.toMatchObject({
      code: 'ROSTER_ERR_EMBEDDED_POSTGRES',
      message: expect.stringContaining('holds a database of an earlier Roster (PGlite)')
    })
    const deep = path.join(root, 'd'.repeat(100))
    await expect(openDb({ dataDir: deep })).rejects.toMatchObject({
      code: 'ROSTER_ERR_EMBEDDED_POSTGRES',
      message: expect.stringContaining('too deep for a Unix socket path')
    })
    // Neither left a lock behind.
    await expect(readFile(path.join(old, 'roster.pid'))).rejects.toMatchObject({ code: 'ENOENT' })
  })
})

/** The pid of a child process that has exited (and been reaped), so nothing answers to it. */
async function deadChildPid (): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' })
  const pid = child.pid
  await new Promise((resolve) => child.once('close', resolve))
  if (pid === undefined) throw new Error('the child has no pid')
  expect(() => process.kill(pid, 0)).toThrow()
  return pid
}
