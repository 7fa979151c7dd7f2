// Databases for tests, on one Postgres server per run: ROSTER_TEST_DATABASE_URL's, or without it
// an embedded one that the global setup starts (global-setup.ts). Every test gets its own
// database, copied in milliseconds from the run's migrated template and dropped afterwards.
import { afterAll, afterEach, beforeEach, describe, inject } from 'vitest'
import { openDb, type Db } from '../../server/store/db.js'
import { adminQuery, databaseName, databaseUrl, quoteIdent } from '../../harness/postgres-admin.js'

/** The Postgres server to test against, e.g. postgres://postgres@127.0.0.1:5432/postgres: set
 *  by the caller, or by the global setup to the embedded server it started. */
export const testDatabaseUrl: string = process.env.ROSTER_TEST_DATABASE_URL ?? ''

export interface Backend {
  /** The current test's fresh, migrated database. Do not close it: the harness does. */
  readonly db: Db
  /** The URL of the current test's database, for a second connection. */
  readonly url: string
  /** Replaces the current test's database with an empty, unmigrated one and returns it. */
  empty(): Promise<Db>
}

/** Declares the suite `name`, whose every test gets a fresh database through `backend`. */
export function describeWithDatabase (name: string, fn: (backend: Backend) => void): void {
  describe(name, () => {
    fn(postgresBackend())
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

// Registered on the importing test file's root suite: whatever a file created goes with it.
afterAll(async () => {
  for (const name of [...created]) await dropDatabase(databaseUrl(requirePostgres(), name))
})

function requirePostgres (): string {
  if (testDatabaseUrl === '') throw new Error('ROSTER_TEST_DATABASE_URL is unset: run the tests through vitest, whose global setup sets it')
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
