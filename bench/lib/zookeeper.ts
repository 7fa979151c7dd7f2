// ZooKeeper as a same-run reference (the register benchmark): the server of Debian's `zookeeper`
// package, started by the benchmark itself as a standalone server on loopback, with its own
// configuration and data directory in the run's temp directory and a port chosen like Roster's
// (lib/ports.ts); never the system's service. Its settings are ZooKeeper's defaults (a
// transaction log written and fsynced before a create is acknowledged, like a Postgres commit)
// but for what a benchmark on a shared machine needs: no admin HTTP server (it would take port
// 8080), no limit on connections from one address (the default, 60, is below 64 clients).
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { join } from 'node:path'
import { benchPort } from './ports.js'
import { sleep, stopProcess, track, type Scope } from './processes.js'

/** Debian's jar; its manifest's Class-Path names every jar it needs. */
const ZOOKEEPER_JAR = '/usr/share/java/zookeeper.jar'
const JAVA = '/usr/bin/java'
const MAIN = 'org.apache.zookeeper.server.ZooKeeperServerMain'
/** A JVM start and ZooKeeper's log replay; seconds on a loaded two-core machine. */
const READY_TIMEOUT_MS = 60_000

export interface ZooKeeperRun {
  /** `127.0.0.1:PORT`, a client's connect string. */
  connectString: string
  pid: number
  /** The server's version as `srvr` reports it. */
  version: string
}

/** Why ZooKeeper cannot run here, or null if it can. */
export function zooKeeperMissing (): string | null {
  if (!existsSync(ZOOKEEPER_JAR)) return `ZooKeeper is not installed (no ${ZOOKEEPER_JAR}; Debian: apt-get install zookeeper)`
  if (!existsSync(JAVA)) return `no Java runtime at ${JAVA} (ZooKeeper needs one)`
  return null
}

/** The answer to a four-letter command, or null if the server does not answer (yet). */
async function fourLetter (port: number, cmd: string): Promise<string | null> {
  return await new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' })
    let out = ''
    const timer = setTimeout(() => { socket.destroy(); resolve(null) }, 2000)
    socket.on('connect', () => socket.write(cmd))
    socket.on('data', (d: Buffer) => { out += d.toString() })
    socket.on('error', () => { clearTimeout(timer); resolve(null) })
    socket.on('close', () => { clearTimeout(timer); resolve(out === '' ? null : out) })
  })
}

/** Starts the server in `tmp`/zookeeper and resolves once it serves requests; the scope stops it. */
export async function startZooKeeper (scope: Scope, tmp: string): Promise<ZooKeeperRun> {
  const missing = zooKeeperMissing()
  if (missing !== null) throw new Error(missing)
  const dir = join(tmp, 'zookeeper')
  await mkdir(join(dir, 'data'), { recursive: true })
  const port = await benchPort()
  const config = join(dir, 'zoo.cfg')
  await writeFile(config, [
    'tickTime=2000',
    `dataDir=${join(dir, 'data')}`,
    `clientPort=${port}`,
    'clientPortAddress=127.0.0.1',
    'maxClientCnxns=0',
    'admin.enableServer=false',
    '4lw.commands.whitelist=srvr',
    ''
  ].join('\n'))
  const child = track(spawn(JAVA, ['-cp', ZOOKEEPER_JAR, MAIN, config], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] }))
  scope.defer('stop ZooKeeper', async () => { await stopProcess(child, 'SIGTERM', 3000) })
  let output = ''
  child.stdout.on('data', (d: Buffer) => { output = (output + d.toString()).slice(-4000) })
  child.stderr.on('data', (d: Buffer) => { output = (output + d.toString()).slice(-4000) })
  const deadline = performance.now() + READY_TIMEOUT_MS
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`ZooKeeper exited (${String(child.exitCode ?? child.signalCode)}):\n${output}`)
    const srvr = await fourLetter(port, 'srvr')
    const version = srvr === null ? null : /Zookeeper version: ([^\s,-]+)/.exec(srvr)?.[1]
    if (srvr !== null && /Mode: standalone/.test(srvr)) return { connectString: `127.0.0.1:${port}`, pid: child.pid as number, version: version ?? '?' }
    if (performance.now() > deadline) throw new Error(`ZooKeeper did not serve on port ${port} within ${READY_TIMEOUT_MS} ms:\n${output}`)
    await sleep(200)
  }
}
