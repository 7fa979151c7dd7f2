// A child process for storage tests that need a second process: run with
// `node --import tsx test/helpers/store-child.ts <command> <arg>` and it prints one JSON line.
//   migrate <databaseUrl> [dir]   → { ok: true, applied: [...] }
//   open-embedded <dataDir>       → { ok: true } after opening and closing the directory
//   hold-embedded <dataDir>       → { ok: true, serverPid, revision } after migrating and committing
//                                   three registrations; then holds the database until killed
// Failures print { ok: false, code, message } and exit 1.
import { readFile } from 'node:fs/promises'
import path from 'node:path'
import type { Change } from '../../server/protocol/model.js'
import { openDb } from '../../server/store/db.js'
import { migrate } from '../../server/store/migrate.js'
import { createRegistryStore } from '../../server/store/registry-store.js'

function registration (revision: number): Change {
  return {
    revision,
    event: 'registered',
    provider: {
      id: `p-${revision}`, service: 'orders', host: '10.0.0.5', port: 8080, protocol: 'http',
      heartbeat: 'tcp://10.0.0.5:9100', heartbeatIntervalMs: 1000, tags: [], meta: {},
      state: 'pending', stateSince: '2026-11-27T10:00:00.000Z', lastSeen: null, revision
    }
  }
}

const [command, arg, dir] = process.argv.slice(2)

try {
  if (command === 'migrate' && arg !== undefined) {
    const db = await openDb({ databaseUrl: arg })
    try {
      console.log(JSON.stringify({ ok: true, applied: await migrate(db, dir) }))
    } finally {
      await db.close()
    }
  } else if (command === 'open-embedded' && arg !== undefined) {
    const db = await openDb({ dataDir: arg })
    await db.close()
    console.log(JSON.stringify({ ok: true }))
  } else if (command === 'hold-embedded' && arg !== undefined) {
    const db = await openDb({ dataDir: arg })
    await migrate(db)
    const store = createRegistryStore(db)
    await store.commit(await store.claimEpoch(), [1, 2, 3].map(registration))
    const serverPid = Number((await readFile(path.join(arg, 'pg', 'postmaster.pid'), 'utf8')).split('\n')[0])
    console.log(JSON.stringify({ ok: true, serverPid, revision: (await store.load()).revision }))
    setInterval(() => {}, 60_000)
  } else {
    throw new Error('usage: store-child.ts migrate <databaseUrl> [dir] | open-embedded <dataDir> | hold-embedded <dataDir>')
  }
} catch (err) {
  const e = err as { code?: unknown, message?: unknown }
  console.log(JSON.stringify({ ok: false, code: e.code, message: String(e.message) }))
  process.exitCode = 1
}
