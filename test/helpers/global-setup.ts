// Vitest global setup: once per run, creates and migrates the Postgres template database that
// every test file copies (CREATE DATABASE … TEMPLATE), and drops it at the end. Doing it here,
// in the main process, is what keeps parallel test files from racing to create it. Without
// ROSTER_TEST_DATABASE_URL it does nothing and the Postgres suites skip themselves.
import type { TestProject } from 'vitest/node'
import { openDb } from '../../server/store/db.js'
import { migrate } from '../../server/store/migrate.js'
import { adminQuery, databaseUrl, quoteIdent } from './postgres-admin.js'

declare module 'vitest' {
  export interface ProvidedContext {
    /** The migrated template database of this run, or null without server Postgres. */
    rosterTemplateDatabase: string | null
  }
}

export default async function setup (project: TestProject): Promise<(() => Promise<void>) | undefined> {
  const adminUrl = process.env.ROSTER_TEST_DATABASE_URL
  if (adminUrl === undefined || adminUrl === '') {
    project.provide('rosterTemplateDatabase', null)
    return undefined
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
  }
}
