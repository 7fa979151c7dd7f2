// The repository's own design documents stay true. docs/schema.sql is the database as it is after
// every migration in migrations/: a fresh database is migrated here and its catalog rendered, and
// the committed file must equal that rendering, so it cannot drift from the migrations. And every
// file, and every function of a file, that ARCHITECTURE.md names must exist, so that a newcomer
// following it never lands on something renamed or gone.
//
// Regenerate docs/schema.sql after adding a migration (it is never run: migrate() reads only
// migrations/):
//   ROSTER_WRITE_SCHEMA=1 ROSTER_TEST_DATABASE_URL=… npx vitest run test/docs/architecture.test.ts
import { access, readdir, readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import type { Db } from '../../server/store/db.js'
import { migrate } from '../../server/store/migrate.js'
import { describeWithDatabase } from '../helpers/postgres.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const SCHEMA_FILE = path.join(ROOT, 'docs/schema.sql')
const MIGRATIONS = (await readdir(path.join(ROOT, 'migrations'))).filter((f) => f.endsWith('.sql')).sort()

const HEADER = `-- Roster's database as it is after every migration in migrations/ (${MIGRATIONS.map((f) => f.slice(0, 4)).join(', ')}).
-- Generated from a freshly migrated database's catalog by test/docs/architecture.test.ts, which
-- fails when this file and the migrations disagree; regenerate it with ROSTER_WRITE_SCHEMA=1 (see
-- that test). It is documentation, never run: migrate() applies only migrations/*.sql, and a
-- change to the schema is a new numbered migration. What the tables and columns mean:
-- ARCHITECTURE.md › The data. Definitions are in Postgres's own words (pg_get_constraintdef,
-- pg_get_indexdef); schema_migrations is the migrator's own record (server/store/migrate.ts).
`

/** The public schema's tables, each with its columns (in their physical order), constraints and
 *  other indexes, rendered as SQL from the catalog. NOT NULL is read from the column, never from
 *  pg_constraint, whose not-null entries newer servers add would make the text depend on the
 *  server's version. */
async function renderSchema (db: Db): Promise<string> {
  const tables = await db.query<{ oid: number, name: string }>(`
    select c.oid::int8 as oid, c.relname as name
      from pg_class c join pg_namespace n on n.oid = c.relnamespace
     where n.nspname = 'public' and c.relkind in ('r', 'p')
     order by c.relname`)
  const out: string[] = [HEADER]
  for (const { oid, name } of tables) {
    const columns = await db.query<{ name: string, type: string, notnull: boolean, dflt: string | null }>(`
      select a.attname as name, format_type(a.atttypid, a.atttypmod) as type, a.attnotnull as notnull,
             pg_get_expr(d.adbin, d.adrelid) as dflt
        from pg_attribute a left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
       where a.attrelid = $1 and a.attnum > 0 and not a.attisdropped
       order by a.attnum`, [oid])
    const constraints = await db.query<{ name: string, def: string }>(`
      select conname as name, pg_get_constraintdef(oid) as def
        from pg_constraint
       where conrelid = $1 and contype in ('p', 'u', 'f', 'c', 'x')
       order by case contype when 'p' then 0 when 'u' then 1 when 'f' then 2 else 3 end, conname`, [oid])
    const indexes = await db.query<{ def: string }>(`
      select pg_get_indexdef(i.indexrelid) as def
        from pg_index i join pg_class ic on ic.oid = i.indexrelid
       where i.indrelid = $1 and not exists (select 1 from pg_constraint c where c.conindid = i.indexrelid)
       order by ic.relname`, [oid])
    const lines = [
      ...columns.map((c) => `  ${c.name} ${c.type}${c.notnull ? ' not null' : ''}${c.dflt === null ? '' : ` default ${c.dflt}`}`),
      ...constraints.map((c) => `  constraint ${c.name} ${c.def}`)
    ]
    out.push(`create table ${name} (\n${lines.join(',\n')}\n);\n${indexes.map((i) => `${i.def};\n`).join('')}`)
  }
  return out.join('\n')
}

describeWithDatabase('docs/schema.sql', (backend) => {
  it('is the schema that every migration, applied to a fresh database, makes', async () => {
    const db = await backend.empty()
    expect(await migrate(db)).toEqual(MIGRATIONS.map((f) => f.slice(0, -'.sql'.length)))
    const rendered = await renderSchema(db)
    // The rendering itself is not empty or partial: the registry's tables are all in it.
    for (const table of ['changes', 'providers', 'roster_meta', 'schema_migrations', 'tokens']) {
      expect(rendered).toContain(`create table ${table} (`)
    }
    if (process.env.ROSTER_WRITE_SCHEMA === '1') await writeFile(SCHEMA_FILE, rendered)
    expect(await readFile(SCHEMA_FILE, 'utf8'), 'docs/schema.sql differs from the migrations: regenerate it (see this test\'s header)').toBe(rendered)
  })
})

/** Repository paths ARCHITECTURE.md names: in backticks (`server/leader/leader.ts`, `test/e2e/`)
 *  or as link targets ([…](server/protocol/README.md)). */
const PATH = /`((?:server|client|test|bench|chaos|bin|migrations|docs|openapi|examples)\/[\w./-]*)`|\]\(((?!https?:)[\w./-]+)\)/g
/** A function named as `file` › `name`, optionally followed by more names (`… › `a`, `b` and `c``). */
const FUNCTIONS = /`([\w./-]+\.(?:ts|js))`\s+›\s+((?:`\w+`(?:,\s+|\s+and\s+)?)+)/g

/** Whether `source` declares `name`: a function, a const, a class or type, or an object
 *  literal's method (`async commit (…) {`). */
function declares (source: string, name: string): boolean {
  return new RegExp(`(?:function\\*?|const|let|class|interface|type)\\s+${name}\\b|^\\s*(?:async\\s+)?${name}\\s*\\(`, 'm').test(source)
}

describe('ARCHITECTURE.md', async () => {
  const doc = await readFile(path.join(ROOT, 'ARCHITECTURE.md'), 'utf8')

  it('names only files and folders that exist', async () => {
    const paths = [...doc.matchAll(PATH)].map((m) => (m[1] ?? m[2]) as string)
    expect(paths.length).toBeGreaterThan(50)
    const missing: string[] = []
    for (const p of new Set(paths)) {
      await access(path.join(ROOT, p)).catch(() => { missing.push(p) })
    }
    expect(missing).toEqual([])
  })

  it('names only functions that its files declare', async () => {
    const named = [...doc.matchAll(FUNCTIONS)].flatMap((m) => [...(m[2] as string).matchAll(/`(\w+)`/g)].map((n) => ({ file: m[1] as string, name: n[1] as string })))
    expect(named.length).toBeGreaterThan(30)
    const missing: string[] = []
    for (const { file, name } of named) {
      const source = await readFile(path.join(ROOT, file), 'utf8')
      if (!declares(source, name)) missing.push(`${file} › ${name}`)
    }
    expect(missing).toEqual([])
  })

  it('names only identifiers that the sources use', async () => {
    // Functions, constants and verbs named without their file (`commitBatch`, `BATCH_ITEMS`,
    // `SINCE_REQ`): each must still occur in server/, so that a rename cannot leave it behind.
    const identifiers = new Set([...doc.matchAll(/`([a-z]+[A-Z]\w*|[A-Z][A-Z0-9]*_[A-Z0-9_]+)`/g)].map((m) => m[1] as string))
    expect(identifiers.size).toBeGreaterThan(40)
    const files = (await readdir(path.join(ROOT, 'server'), { recursive: true })).filter((f) => f.endsWith('.ts'))
    const sources = (await Promise.all(files.map(async (f) => await readFile(path.join(ROOT, 'server', f), 'utf8')))).join('\n')
    expect([...identifiers].filter((name) => !new RegExp(`\\b${name}\\b`).test(sources))).toEqual([])
  })
})
