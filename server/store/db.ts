// The database adapter: one narrow `Db` over a pg.Pool, on server Postgres or on the embedded
// Postgres that Roster starts in its data directory (embedded-postgres.ts), so the rest of the
// store is written once in plain SQL. It owns the pool (and, embedded, the server and the
// data-directory lock) and normalises driver types at this boundary: int8 comes out as a JS
// number. It must never mutate pg's global type parsers, and nothing outside server/store may
// import pg.
import path from 'node:path'
import pg from 'pg'
import { lockDataDir } from './data-dir-lock.js'
import { EmbeddedPostgresError, SERVER_LOG_FILE, startEmbeddedPostgres } from './embedded-postgres.js'

export interface Queryable {
  query<R = Record<string, unknown>>(text: string, params?: unknown[]): Promise<R[]>
}

export interface Db extends Queryable {
  /** The connection string of this database (embedded: its Unix socket), for a second session
   *  such as the leader lock's. */
  readonly url: string
  /** query() as a named prepared statement, parsed and planned once per connection: for a hot
   *  statement whose text never changes (the leader's commit). */
  prepared<R = Record<string, unknown>>(name: string, text: string, params: unknown[]): Promise<R[]>
  /** Runs several statements, without parameters (migrations). On Postgres it has no client-side
   *  read timeout: DDL may legitimately run long, and statement_timeout still bounds it unless
   *  the SQL lifts it with SET LOCAL. */
  exec(sql: string): Promise<void>
  /** BEGIN … COMMIT around `fn`; ROLLBACK and rethrow when it throws. Use only `tx` inside `fn`:
   *  the outer `Db` is another session, which does not see the transaction's writes. */
  transaction<T>(fn: (tx: Queryable & { exec(sql: string): Promise<void> }) => Promise<T>): Promise<T>
  /** Closes the pool; embedded, also stops the server and releases the data-directory lock.
   *  Idempotent. */
  close(): Promise<void>
  /** Embedded only: settles, with what to tell the user, if the server exits before close(). */
  readonly serverLost?: Promise<Error>
}

const INT8_OID = 20

/** int8 → number. The int8 values we read are revisions, epochs and counts; a revision is one per
 *  change from a single writer, so they stay far below 2^53 (a million changes a second for 285
 *  years), where Number would start to round. */
function parseInt8 (value: string): number {
  return Number(value)
}

/**
 * Pool sizing and timeouts. Writes must fail fast when Postgres is down (README.md › What each failure looks
 * like to a client: 503, not a hang), so:
 * - connectionTimeoutMillis 1000: an unreachable server fails a checkout within 1 s, while a
 *   loopback or LAN connect normally takes well under 10 ms;
 * - statement_timeout 5000: the server cancels a statement stuck on a lock or I/O, leaving the
 *   session usable; our statements take milliseconds, so 5 s only ever stops a wedged one;
 * - query_timeout 6000: the client gives up on a server that stopped answering altogether
 *   (partition, half-open TCP). It is above statement_timeout so that, while the server is
 *   alive, its own cancellation (a clean error) always arrives first.
 * - max 10: there is one writer (the leader), whose batches are serialised anyway; a few extra
 *   connections serve reads such as changesSince without queueing behind a commit.
 */
const POOL_MAX = 10
const CONNECTION_TIMEOUT_MS = 1000
const STATEMENT_TIMEOUT_MS = 5000
const QUERY_TIMEOUT_MS = 6000
const IDLE_TIMEOUT_MS = 10_000
/** close() waits this long for the queries still running, then leaves them to the process exit. */
const CLOSE_TIMEOUT_MS = 1000
/** exec()'s client-side read timeout: setTimeout's maximum (about 24.8 days), i.e. none; pg
 *  treats 0 as "use the pool's default". */
const EXEC_QUERY_TIMEOUT_MS = 2 ** 31 - 1

function execQuery (sql: string): pg.QueryConfig {
  // No parameters → the simple protocol, which accepts several statements.
  return { text: sql, query_timeout: EXEC_QUERY_TIMEOUT_MS } as pg.QueryConfig
}

/** pg's error for a client-side query_timeout: the statement may still be running on the server,
 *  so the session is out of step and must be destroyed, not rolled back and reused. */
function isClientTimeout (err: unknown): boolean {
  return err instanceof Error && err.message === 'Query read timeout'
}

export interface OpenDbOptions {
  /** Server Postgres. */
  databaseUrl?: string
  /** Without databaseUrl: the embedded Postgres in this directory (created if missing, locked
   *  against a second opener). */
  dataDir?: string
  /** Embedded: what a user should know (first initialisation, an orphaned server stopped). */
  onNotice?: (message: string, details: Record<string, unknown>) => void
}

/** Opens the database: server Postgres when `databaseUrl` is given, otherwise the embedded one. */
export async function openDb (opts: OpenDbOptions): Promise<Db> {
  if (opts.databaseUrl !== undefined && opts.databaseUrl !== '') return openPostgres(opts.databaseUrl)
  if (opts.dataDir === undefined || opts.dataDir === '') throw new Error('openDb needs a databaseUrl or a dataDir')
  return openEmbedded(opts.dataDir, opts.onNotice)
}

/** The embedded server, started under the data-directory lock and stopped by close(). */
async function openEmbedded (dataDir: string, onNotice: OpenDbOptions['onNotice']): Promise<Db> {
  const lock = await lockDataDir(dataDir)
  let server
  try {
    server = await startEmbeddedPostgres({ dataDir: lock.dataDir, onNotice })
  } catch (err) {
    await lock.release()
    throw err
  }
  const db = openPostgres(server.url)
  let closing: Promise<void> | undefined
  const serverLost = new Promise<Error>((resolve) => {
    void server.exited.then(() => {
      if (closing === undefined) {
        resolve(new EmbeddedPostgresError(`the embedded Postgres (pid ${server.pid}) exited (its log: ${path.join(lock.dataDir, SERVER_LOG_FILE)}); start Roster again: it recovers the database`))
      }
    })
  })
  return {
    ...db,
    serverLost,
    close () {
      closing ??= (async () => {
        try {
          await db.close()
          await server.stop()
        } finally {
          await lock.release()
        }
      })()
      return closing
    }
  }
}

function openPostgres (databaseUrl: string): Db {
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max: POOL_MAX,
    connectionTimeoutMillis: CONNECTION_TIMEOUT_MS,
    idleTimeoutMillis: IDLE_TIMEOUT_MS,
    allowExitOnIdle: false,
    statement_timeout: STATEMENT_TIMEOUT_MS,
    query_timeout: QUERY_TIMEOUT_MS,
    application_name: 'roster',
    // Scoped to this pool's clients: other pg users in the process keep pg's defaults.
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === INT8_OID ? parseInt8 : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser
    }
  })
  // An idle client whose backend died (restart, pg_terminate_backend) emits here; the pool has
  // already discarded it and the next query gets a fresh connection. Without a listener the
  // 'error' event would crash the process.
  pool.on('error', () => {})

  let closing: Promise<void> | undefined
  return {
    url: databaseUrl,
    async query<R> (text: string, params?: unknown[]): Promise<R[]> {
      return (await pool.query(text, params)).rows as R[]
    },
    async prepared<R> (name: string, text: string, params: unknown[]): Promise<R[]> {
      return (await pool.query({ name, text, values: params })).rows as R[]
    },
    async exec (sql: string) {
      await pool.query(execQuery(sql))
    },
    async transaction (fn) {
      const client = await pool.connect()
      let broken: Error | undefined
      try {
        await client.query('BEGIN')
        const result = await fn({
          async query<R> (text: string, params?: unknown[]): Promise<R[]> {
            return (await client.query(text, params)).rows as R[]
          },
          async exec (sql: string) {
            await client.query(execQuery(sql))
          }
        })
        await client.query('COMMIT')
        return result
      } catch (err) {
        // An unusable session (connection lost, or a client-side timeout that left a statement
        // running) is destroyed rather than returned to the pool. Postgres rolls back an open
        // transaction when its session ends, so nothing half-done can commit.
        if (isClientTimeout(err)) {
          broken = err as Error
        } else {
          try {
            await client.query('ROLLBACK')
          } catch (rollbackErr) {
            broken = rollbackErr instanceof Error ? rollbackErr : new Error(String(rollbackErr))
          }
        }
        throw err
      } finally {
        client.release(broken)
      }
    },
    close () {
      // Bounded: a query stuck on an unreachable server (until QUERY_TIMEOUT_MS) must not hold
      // a stopping process. Postgres rolls back whatever a vanished session left open.
      closing ??= new Promise<void>((resolve, reject) => {
        const timer = setTimeout(resolve, CLOSE_TIMEOUT_MS)
        pool.end().then(() => { clearTimeout(timer); resolve() }, (err: unknown) => { clearTimeout(timer); reject(err) })
      })
      return closing
    }
  }
}
