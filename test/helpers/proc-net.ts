// What a process is connected to, read from /proc (Linux): its established TCP connections with
// both ports. Tests use it to see which worker holds which provider's heartbeat connection, and
// to find the connections of one process among a proxy's clients.
import { readdir, readFile, readlink } from 'node:fs/promises'

export interface TcpConnection { localPort: number, remotePort: number }

export async function tcpConnections (pid: number): Promise<TcpConnection[]> {
  const inodes = new Set<string>()
  for (const fd of await readdir(`/proc/${pid}/fd`).catch(() => [] as string[])) {
    const m = /^socket:\[(\d+)\]$/.exec(await readlink(`/proc/${pid}/fd/${fd}`).catch(() => ''))
    if (m !== null) inodes.add(m[1] as string)
  }
  const port = (address: string): number => parseInt(address.split(':')[1] as string, 16)
  const connections: TcpConnection[] = []
  for (const table of ['tcp', 'tcp6']) {
    const text = await readFile(`/proc/${pid}/net/${table}`, 'utf8').catch(() => '')
    for (const line of text.split('\n').slice(1)) {
      // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode; st 01 = ESTABLISHED
      const cols = line.trim().split(/\s+/)
      if (cols.length < 10 || cols[3] !== '01' || !inodes.has(cols[9] as string)) continue
      connections.push({ localPort: port(cols[1] as string), remotePort: port(cols[2] as string) })
    }
  }
  return connections
}

/** The remote ports of the process's established TCP connections. */
export async function connectedPorts (pid: number): Promise<Set<number>> {
  return new Set((await tcpConnections(pid)).map((c) => c.remotePort))
}
