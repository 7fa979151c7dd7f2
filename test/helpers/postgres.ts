// Databases for tests. On server Postgres (ROSTER_TEST_DATABASE_URL) every test gets its own
// database copied from the run's migrated template, dropped afterwards; on PGlite a test file
// boots one in-memory instance (about 4 s) and resets its schema before each test (milliseconds).
// `describeBackends` runs one suite on both, so every storage test runs on both drivers.
import { afterAll, afterEach, beforeAll, beforeEach, describe, inject } from 'vitest'
import { openDb, type Db } from '../../server/store/db.js'
import { migrate } from '../../server/store/migrate.js'
import { adminQuery, databaseName, databaseUrl, quoteIdent } from './postgres-admin.js'

/** The server Postgres to test against, e.g. postgres://postgres@127.0.0.1:5432/postgres. */
export const testDatabaseUrl: string | undefined = process.env.ROSTER_TEST_DATABASE_URL || undefined
export const hasPostgres = testDatabaseUrl !== undefined
export const POSTGRES_SKIP_REASON = 'skipped: set ROSTER_TEST_DATABASE_URL to run on server Postgres'

export type BackendKind = 'postgres' | 'pglite'

export interface Backend {
  readonly kind: BackendKind
  /** The current test's fresh, migrated database. Do not close it: the harness does. */
  readonly db: Db
  /** Postgres only: the URL of the current test's database, for a second connection. */
  readonly url: string
  /** Replaces the current test's database with an empty, unmigrated one and returns it. */
  empty(): Promise<Db>
}

/** Declares `name` once per backend; the Postgres one is skipped, and says so, without a server. */
export function describeBackends (name: string, fn: (backend: Backend) => void): void {
  describe.skipIf(!hasPostgres)(`${name} [postgres]${hasPostgres ? '' : ` (${POSTGRES_SKIP_REASON})`}`, () => {
    fn(postgresBackend())
  })
  describe(`${name} [pglite]`, () => {
    fn(pgliteBackend())
  })
}

let counter = 0
const created = new Set<string>()

/**
 * Creates a database for this test file and returns its URL: a copy of the migrated template,
 * or with `migrated: false` an empty one (from template0). Dropped after the file, or earlier
 * with dropDatabase().
 */
export async function freshDatabaseUrl (opts: { migrated?: boolean } = {}): Promise<string> {
  const adminUrl = requirePostgres()
  const template = opts.migrated === false ? 'template0' : inject('rosterTemplateDatabase')
  if (template === null) throw new Error('the global setup created no template database (see vitest.config.ts)')
  const name = `roster_test_${process.pid}_${++counter}_${Math.random().toString(36).slice(2, 8)}`
  await adminQuery(adminUrl, `create database ${quoteIdent(name)} template ${quoteIdent(template)}`)
  created.add(name)
  return databaseUrl(adminUrl, name)
}

/** Drops a database made by freshDatabaseUrl, ending any session still connected to it. */
export async function dropDatabase (url: string): Promise<void> {
  const name = databaseName(url)
  await adminQuery(requirePostgres(), `drop database if exists ${quoteIdent(name)} with (force)`)
  created.delete(name)
}

/** afterAll on the importing test file's root suite, only under vitest: the benchmarks import
 *  test/helpers/cluster.ts (and so this module) in a plain process, where afterAll throws and
 *  nothing here is ever created. */
function afterFile (fn: () => Promise<void>): void {
  if (process.env.VITEST !== undefined) afterAll(fn)
}

// Registered on the importing test file's root suite: whatever a file created goes with it.
afterFile(async () => {
  for (const name of [...created]) await dropDatabase(databaseUrl(requirePostgres(), name))
})

function requirePostgres (): string {
  if (testDatabaseUrl === undefined) throw new Error(`no server Postgres: ${POSTGRES_SKIP_REASON}`)
  return testDatabaseUrl
}

function postgresBackend (): Backend {
  let current: { db: Db, url: string } | undefined
  const opened: Db[] = []

  beforeEach(async () => {
    const url = await freshDatabaseUrl()
    current = { db: await openDb({ databaseUrl: url }), url }
    opened.push(current.db)
  })
  // The databases themselves are dropped together after the file: a drop costs a checkpoint-
  // like flush (about 100 ms here), a create from the template a little more.
  afterEach(async () => {
    current = undefined
    for (const db of opened.splice(0)) await db.close()
  })

  return {
    kind: 'postgres',
    get db () { return active().db },
    get url () { return active().url },
    async empty () {
      const url = await freshDatabaseUrl({ migrated: false })
      current = { db: await openDb({ databaseUrl: url }), url }
      opened.push(current.db)
      return current.db
    }
  }

  function active (): { db: Db, url: string } {
    if (current === undefined) throw new Error('the backend database exists only inside a test')
    return current
  }
}

// One in-memory PGlite per test file, booted on first use and shared by its suites: a boot costs
// about 4 s, a schema reset a few milliseconds.
let sharedPglite: Promise<Db> | undefined
afterFile(async () => {
  if (sharedPglite !== undefined) await (await sharedPglite).close()
})

function pgliteBackend (): Backend {
  let db: Db | undefined

  beforeAll(async () => {
    sharedPglite ??= openDb({ dataDir: 'memory://' })
    db = await sharedPglite
  })
  beforeEach(async () => {
    await resetSchema(active())
    await migrate(active())
  })

  return {
    kind: 'pglite',
    get db () { return active() },
    get url (): string { throw new Error('PGlite has no URL: this test is for server Postgres only') },
    async empty () {
      await resetSchema(active())
      return active()
    }
  }

  function active (): Db {
    if (db === undefined) throw new Error('the backend database exists only inside a test')
    return db
  }
}

/** Everything of ours lives in schema public, schema_migrations included: dropping it leaves
 *  the database as empty as a new one, without paying for a new PGlite boot. */
async function resetSchema (db: Db): Promise<void> {
  await db.exec('drop schema public cascade; create schema public')
}
