// Guards an embedded data directory against a second owner: every opener first takes
// `<dataDir>/roster.pid`, the way Postgres itself uses postmaster.pid. Postgres would refuse a
// second server on the cluster, but too late and in its own words; the lock also tells the
// next Roster that a Postgres still running on the directory is an orphan (embedded-postgres.ts).
// This module must never delete a lock file that names a live process other than the caller.
import { open, readFile, unlink } from 'node:fs/promises'
import path from 'node:path'
import { Errors } from '../protocol/error-codes.js'
import { ensurePrivateDir, PRIVATE_FILE_MODE } from './private-dir.js'

export const DATA_DIR_LOCK_FILE = 'roster.pid'

export class DataDirLockedError extends Error {
  readonly code = Errors.dataDirLocked.code
  readonly dataDir: string
  readonly pid: number | null
  constructor (dataDir: string, pid: number | null) {
    super(`data directory ${dataDir} is in use by process ${pid ?? 'unknown (its lock file names no pid yet)'}`)
    this.name = 'DataDirLockedError'
    this.dataDir = dataDir
    this.pid = pid
  }
}

export interface DataDirLock {
  /** The absolute data directory this lock guards. */
  readonly dataDir: string
  /** Removes the lock file if it is still ours; idempotent. */
  release(): Promise<void>
}

/** Directories locked by this process. A lock file naming our own pid is ours only if it is
 *  listed here; otherwise it was left by an earlier process that had the same pid (a container
 *  restart reuses low pids), and it is stale. */
const lockedHere = new Set<string>()

/**
 * Takes the data-directory lock, creating the directory (0700) if needed.
 * Rejects with DataDirLockedError when a live process (this one included) holds it; takes a
 * stale lock (its process is gone) over.
 */
export async function lockDataDir (dataDir: string): Promise<DataDirLock> {
  const dir = path.resolve(dataDir)
  const file = path.join(dir, DATA_DIR_LOCK_FILE)
  // Private before anything is written in it (private-dir.ts).
  await ensurePrivateDir(dir)

  // A round repeats only after the file vanished or a stale one was cleared; five rounds cover
  // clearing a stale takeover guard, then the stale lock, then creating ours, with room to spare.
  for (let round = 0; round < 5; round++) {
    if (await createExclusive(file)) {
      lockedHere.add(dir)
      return makeLock(dir, file)
    }
    const holder = await readHolder(file)
    if (holder === 'gone') continue
    if (holder === 'empty') throw new DataDirLockedError(dir, null)
    if (isHeldBy(holder, dir)) throw new DataDirLockedError(dir, holder)
    await takeOver(dir, file, holder)
  }
  throw new DataDirLockedError(dir, null)
}

function makeLock (dir: string, file: string): DataDirLock {
  let released = false
  return {
    dataDir: dir,
    async release () {
      if (released) return
      released = true
      lockedHere.delete(dir)
      // Only remove the file while it still names us; never someone else's lock.
      if ((await readHolder(file)) === process.pid) await unlink(file).catch(ignoreMissing)
    }
  }
}

/** Creates the lock file exclusively ('wx') and writes our pid; false when it exists. The pid
 *  is written right after the create, so a reader may briefly see an empty file: readers treat
 *  an empty file as held (by whoever is writing it), never as stale. */
async function createExclusive (file: string): Promise<boolean> {
  let handle
  try {
    handle = await open(file, 'wx', PRIVATE_FILE_MODE)
  } catch (err) {
    if (errorCode(err) === 'EEXIST') return false
    throw err
  }
  try {
    await handle.writeFile(String(process.pid))
  } finally {
    await handle.close()
  }
  return true
}

/**
 * Replaces a lock file whose process is gone. Two processes may find the same stale file at
 * once, so the replacement happens under a second exclusive file: only the process that creates
 * `roster.pid.takeover` may delete the stale lock; the other one loses and reports the directory
 * as in use. The takeover file lives for a few syscalls; one left by a crash inside that window
 * is removed only once its process is gone too.
 */
async function takeOver (dir: string, file: string, stalePid: number): Promise<void> {
  const guard = `${file}.takeover`
  if (!(await createExclusive(guard))) {
    const other = await readHolder(guard)
    if (typeof other === 'number' && !isAlive(other)) {
      await unlink(guard).catch(ignoreMissing)
      return
    }
    throw new DataDirLockedError(dir, typeof other === 'number' ? other : null)
  }
  try {
    // Re-read under the guard: the file may have been replaced since we judged it stale.
    if ((await readHolder(file)) === stalePid) await unlink(file).catch(ignoreMissing)
  } finally {
    await unlink(guard).catch(ignoreMissing)
  }
}

async function readHolder (file: string): Promise<number | 'empty' | 'gone'> {
  let text: string
  try {
    text = (await readFile(file, 'utf8')).trim()
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return 'gone'
    throw err
  }
  const pid = Number(text)
  return text !== '' && Number.isSafeInteger(pid) && pid > 0 ? pid : 'empty'
}

function isHeldBy (pid: number, dir: string): boolean {
  if (pid === process.pid) return lockedHere.has(dir)
  return isAlive(pid)
}

function isAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    // EPERM: the process exists but belongs to another user, so it is alive.
    return errorCode(err) === 'EPERM'
  }
}

function errorCode (err: unknown): unknown {
  return typeof err === 'object' && err !== null && 'code' in err ? err.code : undefined
}

function ignoreMissing (err: unknown): void {
  if (errorCode(err) !== 'ENOENT') throw err
}
