// Applies the plain SQL migrations in `migrations/` (forward-only, numbered) to either backend.
// Each file runs in its own transaction under a transaction-scoped advisory lock and is recorded
// in schema_migrations, so concurrent migrators serialise and re-running is a no-op. It must
// never edit or re-run an applied migration: a change to the schema is a new numbered file.
import { readdir, readFile } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Db } from './db.js'

/** The repository's migrations folder, two levels above this file (server/store → repo root). */
const DEFAULT_MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url))

/** Well-known advisory-lock key for migrations: the ASCII bytes of "RstrMig" (0x527374724d6967).
 *  Only migrate() takes it; tests that hold it to line migrators up use the same literal. */
const MIGRATION_LOCK_KEY = '23207892061350247'

/** Lock, then no statement timeout for the rest of this transaction: a migrator may wait for
 *  another one's migration, and a migration may rebuild a table. Either can outlast the pool's
 *  5 s statement_timeout, and being cancelled halfway through a startup migration helps no one.
 *  Through exec() (no parameters, so the key is a literal) because exec has no client-side read
 *  timeout either. */
const LOCK_MIGRATIONS = `
  set local statement_timeout = 0;
  select pg_advisory_xact_lock(${MIGRATION_LOCK_KEY});`

const CREATE_SCHEMA_MIGRATIONS = `
  create table if not exists schema_migrations (
    id text primary key,
    applied_at timestamptz not null default now()
  )`

/**
 * Applies every pending `*.sql` file of `dir` in name order; returns the ids (file names without
 * `.sql`) it applied, in order. Safe to run from several processes at once and idempotent.
 */
export async function migrate (db: Db, dir: string = DEFAULT_MIGRATIONS_DIR): Promise<string[]> {
  const files = (await readdir(dir)).filter((name) => name.endsWith('.sql')).sort()
  const applied: string[] = []
  for (const file of files) {
    const id = file.slice(0, -'.sql'.length)
    const sql = await readFile(path.join(dir, file), 'utf8')
    const ran = await db.transaction(async (tx) => {
      // Race: two processes reach this point together. The xact lock makes the second wait until
      // the first commits; it then sees the recorded id (read committed reads the latest commit
      // per statement) and skips. The lock is taken before the create-table, whose concurrent
      // execution would otherwise fail on the catalog's unique index.
      await tx.exec(LOCK_MIGRATIONS)
      await tx.exec(CREATE_SCHEMA_MIGRATIONS)
      const done = await tx.query('select 1 from schema_migrations where id = $1', [id])
      if (done.length > 0) return false
      await tx.exec(sql)
      await tx.query('insert into schema_migrations (id) values ($1)', [id])
      return true
    })
    if (ran) applied.push(id)
  }
  return applied
}
