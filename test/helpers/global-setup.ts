// Vitest global setup: once per run, makes sure there is a Postgres server and creates and
// migrates the template database that every test file copies (CREATE DATABASE … TEMPLATE),
// dropping it at the end. Doing it here, in the main process, is what keeps parallel test files
// from racing to create it. The server is ROSTER_TEST_DATABASE_URL's; without one, an embedded
// Postgres (the one `roster up` runs) in a temp directory, on a free loopback port so that the
// tests which put a proxy between Roster and Postgres can, for the length of the run. The test
// processes, forked after this, inherit ROSTER_TEST_DATABASE_URL.
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import type { TestProject } from 'vitest/node'
import { openDb } from '../../server/store/db.js'
import { CLUSTER_DIR, startEmbeddedPostgres, stopOrphan, type EmbeddedPostgres } from '../../server/store/embedded-postgres.js'
import { lockDataDir } from '../../server/store/data-dir-lock.js'
import { migrate } from '../../server/store/migrate.js'
import { adminQuery, databaseUrl, quoteIdent } from '../../harness/postgres-admin.js'

declare module 'vitest' {
  export interface ProvidedContext {
    /** The migrated template database of this run. */
    rosterTemplateDatabase: string
  }
}

export default async function setup (project: TestProject): Promise<() => Promise<void>> {
  let embedded: { server: EmbeddedPostgres, dir: string } | undefined
  let adminUrl = process.env.ROSTER_TEST_DATABASE_URL ?? ''
  if (adminUrl === '') {
    embedded = await startEmbedded()
    adminUrl = embedded.server.url
    process.env.ROSTER_TEST_DATABASE_URL = adminUrl
    console.log(`tests run on an embedded Postgres (${adminUrl}); set ROSTER_TEST_DATABASE_URL to use another server`)
  }
  // Unique per run, so two runs against one server (two engineers, CI shards) cannot collide.
  const template = `roster_template_${process.pid}_${Date.now().toString(36)}`
  await adminQuery(adminUrl, `create database ${quoteIdent(template)} template template0`)
  const db = await openDb({ databaseUrl: databaseUrl(adminUrl, template) })
  try {
    await migrate(db)
  } finally {
    await db.close()
  }
  project.provide('rosterTemplateDatabase', template)
  return async () => {
    await adminQuery(adminUrl, `drop database if exists ${quoteIdent(template)} with (force)`)
    if (embedded !== undefined) {
      await embedded.server.stop()
      await rm(embedded.dir, { recursive: true, force: true })
    }
  }
}

const TEST_SERVER_PREFIX = 'roster-test-pg-'

async function startEmbedded (): Promise<{ server: EmbeddedPostgres, dir: string }> {
  await sweepKilledRuns()
  const dir = await mkdtemp(path.join(tmpdir(), TEST_SERVER_PREFIX))
  const lock = await lockDataDir(dir)
  const server = await startEmbeddedPostgres({ dataDir: lock.dataDir, tcpPort: await freePort() })
  return { server, dir }
}

/** A run that was killed (Ctrl-C twice, a CI timeout) could not stop its server, which runs on in
 *  its own process group: stop the servers of every earlier run whose lock names a dead process,
 *  and remove their directories. A run still going keeps its lock, and is left alone. */
async function sweepKilledRuns (): Promise<void> {
  for (const name of await readdir(tmpdir())) {
    if (!name.startsWith(TEST_SERVER_PREFIX)) continue
    const dir = path.join(tmpdir(), name)
    let lock
    try {
      lock = await lockDataDir(dir)
    } catch {
      continue // in use by a live run, or not ours to judge
    }
    try {
      await stopOrphan(path.join(dir, CLUSTER_DIR), () => {})
    } finally {
      await lock.release()
    }
    await rm(dir, { recursive: true, force: true })
  }
}

function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number }
      srv.close(() => resolve(port))
    })
  })
}
