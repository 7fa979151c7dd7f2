#!/usr/bin/env node
// The `roster` command. Roster is written in TypeScript; Node runs it as JavaScript that esbuild
// bundles from server/ (and client/, roster/client, which the people commands use) into dist/ (gitignored), built here whenever it is missing or older than
// a source, so that a clone works right after `npm install` with no build step of its own.
// Why not run the sources through a loader such as tsx: its hooks run on an extra thread with
// its own V8 heap and keep an esbuild service process alive, about 50 MB of RSS in all, paid by
// every roster process for the whole of its life. Building costs about a second, once.
import { mkdirSync, readdirSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
// Two levels below the root, like the sources: server/store/migrate.ts finds migrations/ (read at
// run time, not bundled) at '../../migrations/' from its own file, and so does its bundled copy.
const OUT_DIR = join(ROOT, 'dist', 'server')
/** The entry points: the command, and what the gateway thread of `roster up` runs, both written flat
 *  into OUT_DIR beside the chunks, where server/up/threads.ts looks for the latter. */
const ENTRIES = [{ in: 'server/cli.ts', out: 'cli' }, { in: 'server/up/gateway-thread.ts', out: 'gateway-thread' }]
const MAIN = join(OUT_DIR, 'cli.js')

/** The newest modification time of what the bundle is made of: server/, client/ and this build script. */
function newestSource () {
  let newest = statSync(fileURLToPath(import.meta.url)).mtimeMs
  const stack = [join(ROOT, 'server'), join(ROOT, 'client')]
  for (let dir = stack.pop(); dir !== undefined; dir = stack.pop()) {
    // A directory's own time changes when a file in it is deleted or renamed.
    newest = Math.max(newest, statSync(dir).mtimeMs)
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name)
      if (entry.isDirectory()) stack.push(path)
      else newest = Math.max(newest, statSync(path).mtimeMs)
    }
  }
  return newest
}

function builtAt () {
  try {
    return statSync(MAIN).mtimeMs
  } catch {
    return -Infinity
  }
}

/**
 * Bundles the entries, with code splitting so that each thread loads only its role's modules
 * and packages (server/roles.ts imports each role's modules when it starts). Packages stay in
 * node_modules. Several processes may build at once (the tests start many): each file is written
 * to a temporary name and renamed into place, chunks (named by their content hash) before the
 * entries that import them, so a reader always finds a complete build, and two builders of the
 * same sources write the same files. Every output is stamped with the time the build started,
 * so that a source saved during the build makes the next start build again.
 */
async function build () {
  const startedAt = new Date()
  const esbuild = await import('esbuild')
  try {
    const result = await esbuild.build({
      absWorkingDir: ROOT,
      entryPoints: ENTRIES,
      outdir: OUT_DIR,
      bundle: true,
      splitting: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      packages: 'external',
      write: false,
      logLevel: 'warning'
    })
    mkdirSync(OUT_DIR, { recursive: true })
    // Every file but the entries is a chunk, named with a hash of its content.
    const entryFiles = new Set(ENTRIES.map((e) => `${e.out}.js`))
    const isChunk = (name) => name.endsWith('.js') && !name.startsWith('.') && !entryFiles.has(name)
    const outputs = result.outputFiles.toSorted((a, b) => Number(isChunk(basename(b.path))) - Number(isChunk(basename(a.path))))
    for (const file of outputs) {
      mkdirSync(dirname(file.path), { recursive: true })
      const temp = join(dirname(file.path), `.${basename(file.path)}.${process.pid}.tmp`)
      writeFileSync(temp, file.contents)
      utimesSync(temp, startedAt, startedAt)
      renameSync(temp, file.path)
    }
    // Chunks of earlier builds are no longer imported by any entry.
    const current = new Set(outputs.map((f) => basename(f.path)))
    for (const name of readdirSync(OUT_DIR)) {
      if (isChunk(name) && !current.has(name)) rmSync(join(OUT_DIR, name), { force: true })
    }
  } finally {
    // The service process would otherwise live as long as Roster does.
    await esbuild.stop()
  }
}

if (builtAt() < newestSource()) await build()
await import(MAIN)
