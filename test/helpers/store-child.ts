// A child process for storage tests that need a second process: run with
// `node --import tsx test/helpers/store-child.ts <command> <arg>` and it prints one JSON line.
//   migrate <databaseUrl> [dir]   → { ok: true, applied: [...] }
//   open-pglite <dataDir>         → { ok: true } after opening and closing the directory
// Failures print { ok: false, code, message } and exit 1.
import { openDb } from '../../server/store/db.js'
import { migrate } from '../../server/store/migrate.js'

const [command, arg, dir] = process.argv.slice(2)

try {
  if (command === 'migrate' && arg !== undefined) {
    const db = await openDb({ databaseUrl: arg })
    try {
      console.log(JSON.stringify({ ok: true, applied: await migrate(db, dir) }))
    } finally {
      await db.close()
    }
  } else if (command === 'open-pglite' && arg !== undefined) {
    const db = await openDb({ dataDir: arg })
    await db.close()
    console.log(JSON.stringify({ ok: true }))
  } else {
    throw new Error(`usage: store-child.ts migrate <databaseUrl> [dir] | open-pglite <dataDir>`)
  }
} catch (err) {
  const e = err as { code?: unknown, message?: unknown }
  console.log(JSON.stringify({ ok: false, code: e.code, message: String(e.message) }))
  process.exitCode = 1
}
