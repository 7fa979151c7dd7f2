// Keeps the embedded database's data directory readable by Roster's user only: the directory
// and every directory in it 0700, every file 0600. Postgres creates its cluster so, and refuses
// to start on one looser than 0750; a directory copied in or restored from a backup may be
// loose, and is tightened before the server starts.
import { chmod, lstat, mkdir, readdir } from 'node:fs/promises'
import path from 'node:path'

export const PRIVATE_DIR_MODE = 0o700
export const PRIVATE_FILE_MODE = 0o600

/** Creates `dir` (0700) if missing and tightens it. */
export async function ensurePrivateDir (dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: PRIVATE_DIR_MODE })
  await chmod(dir, PRIVATE_DIR_MODE)
}

/**
 * Tightens `dir` and everything under it: directories to 0700, files to 0600, only where they
 * are looser or different. Symbolic links are left alone, never followed: chmod would change
 * whatever they point to, which is not Roster's to change.
 */
export async function makePrivate (dir: string): Promise<void> {
  const stack = [dir]
  for (let current = stack.pop(); current !== undefined; current = stack.pop()) {
    const info = await lstat(current)
    if (info.isSymbolicLink()) continue
    const want = info.isDirectory() ? PRIVATE_DIR_MODE : PRIVATE_FILE_MODE
    if ((info.mode & 0o7777) !== want) await chmod(current, want)
    if (info.isDirectory()) {
      for (const name of await readdir(current)) stack.push(path.join(current, name))
    }
  }
}
