// The database adapter: JS types out of SQL, transactions that commit or roll back as a whole,
// and writes that fail fast instead of hanging when Postgres is unreachable or stops answering.
import pg from 'pg'
import { afterEach, describe, expect, it } from 'vitest'
import { openDb, type Db } from '../../server/store/db.js'
import { describeWithDatabase, testDatabaseUrl } from '../helpers/postgres.js'
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js'

describeWithDatabase('db adapter', (backend) => {
  it('returns int8 as a number, timestamptz as a Date and jsonb parsed', async () => {
    const [row] = await backend.db.query(`
      select 42::int8 as revision, count(*) as n, 2::int as port,
             '2026-11-27T10:00:00.123Z'::timestamptz as at, '{"a":[1]}'::jsonb as doc
        from (values (1), (2)) v(x)`)
    expect(row).toEqual({ revision: 42, n: 2, port: 2, at: new Date('2026-11-27T10:00:00.123Z'), doc: { a: [1] } })
  })

  it('commits a transaction as a whole, or rolls it back and rethrows', async () => {
    const db = backend.db
    await db.exec('create table t (id int primary key); create table u (id int)')
    expect(await db.transaction(async (tx) => {
      await tx.query('insert into t values ($1)', [1])
      await tx.exec('insert into u values (1); insert into u values (2)')
      return 'done'
    })).toBe('done')

    const boom = new Error('boom')
    await expect(db.transaction(async (tx) => {
      await tx.query('insert into t values ($1)', [2])
      await tx.exec('insert into u values (3)')
      throw boom
    })).rejects.toBe(boom)
    // A failing statement aborts the transaction too.
    await expect(db.transaction(async (tx) => {
      await tx.query('insert into t values ($1)', [3])
      await tx.query('insert into t values ($1)', [1])
    })).rejects.toMatchObject({ code: '23505' })

    expect(await db.query('select id from t order by id')).toEqual([{ id: 1 }])
    expect(await db.query('select count(*) as n from u')).toEqual([{ n: 2 }])
  })
})

describe('db adapter on server Postgres', () => {
  const opened: Db[] = []
  const proxies: TcpProxy[] = []
  afterEach(async () => {
    for (const db of opened.splice(0)) await db.close()
    for (const proxy of proxies.splice(0)) await proxy.close()
  })

  function urlVia (host: string, port: number): string {
    const url = new URL(testDatabaseUrl)
    url.host = `${host}:${port}`
    return url.toString()
  }

  it('fails fast when nothing listens', async () => {
    const db = await openDb({ databaseUrl: urlVia('127.0.0.1', 1) })
    opened.push(db)
    const started = performance.now()
    await expect(db.query('select 1')).rejects.toThrow()
    await expect(db.transaction(async (tx) => tx.query('select 1'))).rejects.toThrow()
    expect(performance.now() - started).toBeLessThan(1000)
  })

  it('fails a connection attempt within about a second when the server does not answer', async () => {
    const target = new URL(testDatabaseUrl)
    const proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) })
    proxies.push(proxy)
    proxy.blackhole() // accepts TCP, answers nothing: a hung server or a partition
    const db = await openDb({ databaseUrl: urlVia(proxy.host, proxy.port) })
    opened.push(db)
    const started = performance.now()
    await expect(db.query('select 1')).rejects.toThrow(/timeout/i)
    const elapsed = performance.now() - started
    expect(elapsed).toBeGreaterThanOrEqual(900)
    expect(elapsed).toBeLessThan(2500)
  })

  it('fails a query on a pooled session that stops answering', async () => {
    const target = new URL(testDatabaseUrl)
    const proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) })
    proxies.push(proxy)
    const db = await openDb({ databaseUrl: urlVia(proxy.host, proxy.port) })
    opened.push(db)
    expect(await db.query('select 1 as one')).toEqual([{ one: 1 }])

    proxy.blackhole()
    const started = performance.now()
    await expect(db.query('select 1')).rejects.toThrow(/timeout/i)
    // query_timeout is 6 s: above statement_timeout (5 s), below anything TCP would notice.
    expect(performance.now() - started).toBeLessThan(8000)
  })

  it('scopes its int8 parser to its own pool', async () => {
    const db = await openDb({ databaseUrl: testDatabaseUrl })
    opened.push(db)
    expect(await db.query('select 7::int8 as v')).toEqual([{ v: 7 }])
    const client = new pg.Client({ connectionString: testDatabaseUrl })
    await client.connect()
    try {
      expect((await client.query('select 7::int8 as v')).rows).toEqual([{ v: '7' }])
    } finally {
      await client.end()
    }
  })
})
