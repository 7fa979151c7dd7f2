// The endpoint over which `roster up`'s own worker and gateway reach its leader: ipc (a Unix
// socket) rather than loopback TCP, the cheaper transport for the same ZeroMQ protocol,
// heartbeats and CURVE. It lives in a new directory that mkdtemp creates 0700, so only this
// user can connect, and no other process binds it (libzmq replaces a socket file it binds).
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface LocalEndpoint {
  /** ipc://DIR/leader: the ROUTER; its PUB at protocol/endpoints.ts pubEndpoint. */
  endpoint: string
  /** Removes the directory and the sockets in it. */
  remove: () => Promise<void>
}

export async function createLocalEndpoint (): Promise<LocalEndpoint> {
  // The temporary directory, not --data-dir: a Unix socket path must stay short (108 bytes on
  // Linux, 104 on macOS), and with --database-url there is no data directory.
  const dir = await mkdtemp(join(tmpdir(), 'roster-'))
  return { endpoint: `ipc://${join(dir, 'leader')}`, remove: async () => { await rm(dir, { recursive: true, force: true }) } }
}
