// Leader election. On server Postgres: one holder at a time, a prompt hand-over on release, and a
// lost session noticed at once. Embedded: the sole lock, held at once (the data-directory lock has
// already excluded every other leader) and lost only with the server.
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createPgLeaderLock, createSoleLeaderLock, type LeaderLock } from '../../server/store/leader-lock.js'
import { adminQuery } from '../../harness/postgres-admin.js'
import { freshDatabaseUrl } from '../helpers/postgres.js'
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js'
import { waitFor } from '../../harness/wait-for.js'

describe('pg leader lock', () => {
  let url: string
  const locks: LeaderLock[] = []
  const proxies: TcpProxy[] = []
  let keySeq = 0

  beforeAll(async () => {
    // Advisory locks are scoped to a database: a database of its own keeps other files' locks away.
    url = await freshDatabaseUrl({ migrated: false })
  })
  afterEach(async () => {
    for (const lock of locks.splice(0)) await lock.release()
    for (const proxy of proxies.splice(0)) await proxy.close()
  })

  /** Two contenders for a key no other test uses, with names to find their sessions by. */
  function contenders (opts: { checkIntervalMs?: number, databaseUrl?: string } = {}): { key: bigint, a: LeaderLock, b: LeaderLock, nameOf: (which: 'a' | 'b') => string } {
    const key = BigInt(++keySeq)
    const tag = `${process.pid}-${keySeq}`
    const a = createPgLeaderLock({ databaseUrl: opts.databaseUrl ?? url, key, applicationName: `lock-test-a-${tag}`, checkIntervalMs: opts.checkIntervalMs })
    const b = createPgLeaderLock({ databaseUrl: url, key, applicationName: `lock-test-b-${tag}` })
    locks.push(a, b)
    return { key, a, b, nameOf: (which) => `lock-test-${which}-${tag}` }
  }

  it('lets only one of two contenders acquire', async () => {
    const { a, b } = contenders()
    expect(await a.tryAcquire()).toBe(true)
    expect(await b.tryAcquire()).toBe(false)
    expect([a.held, b.held]).toEqual([true, false])
    // Trying again changes nothing.
    expect(await b.tryAcquire()).toBe(false)
    expect(await a.tryAcquire()).toBe(true)
  })

  it('hands the lock over on release, without reporting it lost', async () => {
    const { a, b } = contenders()
    const lost: Error[] = []
    a.onLost((err) => { lost.push(err) })
    expect(await a.tryAcquire()).toBe(true)
    await a.release()
    await a.release() // idempotent
    expect(a.held).toBe(false)
    expect(await b.tryAcquire()).toBe(true)
    expect(await a.tryAcquire()).toBe(false) // reconnects, and finds b in charge
    expect(lost).toEqual([])
  })

  it('tells a waiting contender when the holder releases, and the contender then acquires', async () => {
    const { a, b } = contenders()
    let freed = 0
    b.onFreed(() => { freed++ })
    expect(await a.tryAcquire()).toBe(true)
    // b's session is open (and listening) once it has tried.
    expect(await b.tryAcquire()).toBe(false)
    const t0 = Date.now()
    await a.release()
    await waitFor(() => freed > 0, { timeoutMs: 2000, what: 'the freed notification' })
    // Told, not polled: the notification follows the unlock within a round trip or two.
    expect(Date.now() - t0).toBeLessThan(500)
    expect(await b.tryAcquire()).toBe(true)
  })

  it('does not stack: acquiring again while held sends nothing, and one release hands over', async () => {
    // A long check interval keeps the holder's session quiet, so its query_start shows whether
    // the repeated tryAcquire calls reached Postgres (each would stack the session lock).
    const { a, b, nameOf } = contenders({ checkIntervalMs: 60_000 })
    const lastQuery = async (): Promise<unknown> => (await adminQuery<{ query: string, query_start: Date }>(url,
      'select query, query_start from pg_stat_activity where application_name = $1', [nameOf('a')]))
    expect(await a.tryAcquire()).toBe(true)
    const afterFirst = await lastQuery()
    expect(afterFirst).toEqual([{ query: expect.stringContaining('pg_try_advisory_lock'), query_start: expect.any(Date) }])

    expect(await a.tryAcquire()).toBe(true)
    expect(await Promise.all([a.tryAcquire(), a.tryAcquire()])).toEqual([true, true])
    expect(await lastQuery()).toEqual(afterFirst)

    await a.release()
    expect(await b.tryAcquire()).toBe(true)
  })

  it('reports a terminated session within a second, and the other contender takes over', async () => {
    const { a, b, nameOf } = contenders()
    expect(await a.tryAcquire()).toBe(true)
    const lost = new Promise<Error>((resolve) => { a.onLost(resolve) })

    const started = performance.now()
    const terminated = await adminQuery<{ ok: boolean }>(url,
      'select pg_terminate_backend(pid) as ok from pg_stat_activity where application_name = $1', [nameOf('a')])
    expect(terminated).toEqual([{ ok: true }])
    const err = await lost
    expect(performance.now() - started).toBeLessThan(1000)
    expect(err).toBeInstanceOf(Error)
    expect(a.held).toBe(false)

    expect(await waitFor(() => b.tryAcquire(), { timeoutMs: 2000, what: 'b to acquire' })).toBe(true)
    expect(await a.tryAcquire()).toBe(false)
  })

  it('notices a silently dead session through its periodic check', async () => {
    const target = new URL(url)
    const proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) })
    proxies.push(proxy)
    const viaProxy = new URL(url)
    viaProxy.host = `${proxy.host}:${proxy.port}`
    const { a, b } = contenders({ databaseUrl: viaProxy.toString(), checkIntervalMs: 100 })
    expect(await a.tryAcquire()).toBe(true)
    const lost = new Promise<Error>((resolve) => { a.onLost(resolve) })

    // No FIN, no RST: only a query that gets no answer can tell.
    const started = performance.now()
    proxy.blackhole()
    await lost
    // check interval 100 ms + query timeout 1000 ms, plus scheduling slack.
    expect(performance.now() - started).toBeLessThan(2500)
    expect(a.held).toBe(false)

    // Postgres still sees a live session holding the lock until the link really goes down.
    expect(await b.tryAcquire()).toBe(false)
    await proxy.close()
    expect(await waitFor(() => b.tryAcquire(), { timeoutMs: 5000, what: 'b to acquire' })).toBe(true)
  })

  it('rejects promptly when Postgres cannot be reached, and stays a non-holder', async () => {
    const unreachable = new URL(url)
    unreachable.port = '1'
    const lock = createPgLeaderLock({ databaseUrl: unreachable.toString() })
    locks.push(lock)
    const started = performance.now()
    await expect(lock.tryAcquire()).rejects.toThrow()
    expect(performance.now() - started).toBeLessThan(1500)
    expect(lock.held).toBe(false)
  })
})

describe('sole leader lock (the embedded database)', () => {
  it('is held at once, and lost, for good, when the server is lost', async () => {
    let loseServer: (err: Error) => void = () => {}
    const lock = createSoleLeaderLock(new Promise<Error>((resolve) => { loseServer = resolve }))
    const lost: Error[] = []
    lock.onLost((err) => lost.push(err))
    expect(await lock.tryAcquire()).toBe(true)
    expect(await lock.tryAcquire()).toBe(true)
    expect(lock.held).toBe(true)

    loseServer(new Error('the embedded Postgres exited'))
    await waitFor(() => lost.length > 0, { what: 'the lost callback' })
    expect(lost.map((e) => e.message)).toEqual(['the embedded Postgres exited'])
    expect(lock.held).toBe(false)
    await expect(lock.tryAcquire()).rejects.toThrow('the embedded Postgres exited')
  })

  it('released, it is not lost when the server then stops', async () => {
    let loseServer: (err: Error) => void = () => {}
    const lock = createSoleLeaderLock(new Promise<Error>((resolve) => { loseServer = resolve }))
    const lost: Error[] = []
    lock.onLost((err) => lost.push(err))
    await lock.tryAcquire()
    await lock.release()
    loseServer(new Error('stopped'))
    await new Promise((resolve) => setImmediate(resolve))
    expect([lock.held, lost]).toEqual([false, []])
  })
})
