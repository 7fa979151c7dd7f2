// The benchmarks' load generator: one process that keeps C clients busy with one operation each
// at a time (closed loop, no pipelining) through a bounded warm-up and a bounded measured window,
// and reports throughput and latency. Two kinds of client:
//   http  a keep-alive HTTP/1.1 connection over a plain `net` socket, requests rendered from a
//         template. Not `http.request`: that costs several times more CPU per request than the
//         servers under test spend answering it, and on two shared cores the generator must not
//         be what limits the figure. It reports its own CPU use, so a saturated generator shows.
//   pg    the register benchmark's raw-Postgres reference: a pg connection doing, per operation,
//         one transaction with the row writes Roster's leader does for one registration (the
//         provider row upserted, one change-log row), as prepared statements.
//   zookeeper  the register benchmark's ZooKeeper reference: one ZooKeeper session per client
//         (node-zookeeper-client, pure JavaScript), each operation the create of an ephemeral
//         node named from the path template, its data the rendered body template: what a
//         service registering itself in ZooKeeper does.
//
// Self-contained (Node built-ins, pg, node-zookeeper-client): the runner transpiles it once per
// run (lib/children.ts).
//
// stdin, one JSON command per line                      stdout, one JSON object per line
//   (start)                                             {"ready":true,"pid":N}
//   {"run":{"target":"http","port":P,"method":"GET",    {"done":{…RunReport…}}
//     "path":"/…","body":"…"|null, COMMON}}
//   {"run":{"target":"pg","databaseUrl":"…",
//     "providers":"ref_providers","changes":"ref_changes","service":"…", COMMON}}
//   {"run":{"target":"zookeeper","connectString":"127.0.0.1:P",
//     "path":"/parent/…","body":"…", COMMON}}
//   COMMON: "connections":C,"warmupMs":W,"durationMs":D,"slots":S,"tag":"…"
//   anything that fails                                 {"error":"…"}
// Templates (http and zookeeper path and body): `{conn}` (client index), `{seq}` (operation count
// on that client), `{slot}` (that count mod slots), `{port}` (1024 + that count mod 60 000) and
// `{tag}` (the run's tag). The pg client keys and fills its rows the same way, so both write S
// providers per client, inserts first, then updates that each change the row (the port moves
// on, the tag differs per run). A zookeeper path's parent (up to its last '/', no placeholders)
// is created, persistent, if missing; each run's nodes go when its sessions close, before the
// run reports.
// It exits when stdin closes (its parent is gone), so it cannot outlive the benchmark.
import { connect } from 'node:net'
import { createInterface } from 'node:readline'
import zookeeper from 'node-zookeeper-client'
import pg from 'pg'

interface Common { connections: number, warmupMs: number, durationMs: number, slots: number, tag: string }
interface HttpSpec extends Common { target: 'http', port: number, method: string, path: string, body: string | null }
interface PgSpec extends Common { target: 'pg', databaseUrl: string, providers: string, changes: string, service: string }
interface ZooKeeperSpec extends Common { target: 'zookeeper', connectString: string, path: string, body: string }
export type RunSpec = HttpSpec | PgSpec | ZooKeeperSpec

/** One client: performs operation `seq` and resolves with its status (HTTP code; 200 for pg and
 *  zookeeper); `close` resolves once the connection (the session) is closed. */
interface Client { op: (seq: number) => Promise<{ status: number, bytes: number }>, close: () => Promise<void> }

export interface RunReport {
  /** Operations completed inside the measured window, per second. */
  opsPerSec: number
  count: number
  p50Ms: number, p90Ms: number, p99Ms: number, maxMs: number, meanMs: number
  /** Status → operations in the window (anything but 2xx is an error to the caller). */
  statuses: Record<string, number>
  /** Failed operations (socket or database errors) over the whole run; the client stops. */
  failures: number
  firstFailure: string | null
  /** Body bytes of the last response, to check that two servers answered the same. */
  lastBodyBytes: number
  /** This process's CPU time over the window ÷ the window: near 1.0 means it was the limit. */
  generatorCpu: number
  windowMs: number
}

const now = (): number => performance.now()

function print (obj: object): void {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

/** A template split at its placeholders once, rendered per request with plain concatenation. */
function compile (template: string, spec: Common): (conn: number, seq: number) => string {
  const parts = template.split(/(\{conn\}|\{seq\}|\{slot\}|\{port\}|\{tag\})/)
  return (conn, seq) => {
    let out = ''
    for (const part of parts) {
      if (part === '{conn}') out += String(conn)
      else if (part === '{seq}') out += String(seq)
      else if (part === '{slot}') out += String(seq % spec.slots)
      else if (part === '{port}') out += String(portOf(seq))
      else if (part === '{tag}') out += spec.tag
      else out += part
    }
    return out
  }
}

/** A port that changes with every operation on a client and stays valid. */
const portOf = (seq: number): number => 1024 + (seq % 60_000)

const CRLF2 = Buffer.from('\r\n\r\n')

async function httpClient (spec: HttpSpec, conn: number): Promise<Client> {
  const path = compile(spec.path, spec)
  const body = spec.body === null ? null : compile(spec.body, spec)
  const head = `Host: 127.0.0.1:${spec.port}\r\nConnection: keep-alive\r\n`
  const socket = connect({ port: spec.port, host: '127.0.0.1', noDelay: true })
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve).once('error', reject) })
  let pending: { resolve: (r: { status: number, bytes: number }) => void, reject: (e: Error) => void } | null = null
  let buf: Buffer = Buffer.alloc(0)
  let need = -1
  let headLen = 0
  let status = 0
  const fail = (err: Error): void => {
    const p = pending
    pending = null
    p?.reject(err)
  }
  socket.on('error', fail)
  socket.on('close', () => fail(new Error('connection closed by the server')))
  socket.on('data', (chunk: Buffer) => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk])
    if (need < 0) {
      const end = buf.indexOf(CRLF2)
      if (end < 0) return
      const headText = buf.toString('latin1', 0, end)
      status = Number(headText.slice(9, 12))
      const m = /\r\ncontent-length:\s*(\d+)/i.exec(headText)
      if (m === null) { fail(new Error(`response without content-length: ${headText.slice(0, 200)}`)); socket.destroy(); return }
      headLen = end + 4
      need = headLen + Number(m[1])
    }
    if (buf.length < need) return
    if (buf.length > need) { fail(new Error('bytes beyond the response (nothing was pipelined)')); socket.destroy(); return }
    const p = pending
    pending = null
    const bytes = need - headLen
    buf = Buffer.alloc(0)
    need = -1
    p?.resolve({ status, bytes })
  })
  return {
    async op (seq) {
      const line = `${spec.method} ${path(conn, seq)} HTTP/1.1\r\n${head}`
      let req: string
      if (body === null) {
        req = line + '\r\n'
      } else {
        const b = body(conn, seq)
        req = `${line}Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(b)}\r\n\r\n${b}`
      }
      return await new Promise((resolve, reject) => {
        pending = { resolve, reject }
        socket.write(req)
      })
    },
    async close () { socket.destroy() }
  }
}

let revision = 0 // the pg reference's own revisions, one writer process like the leader

async function pgClient (spec: PgSpec, conn: number): Promise<Client> {
  const client = new pg.Client({ connectionString: spec.databaseUrl, application_name: 'roster-bench-reference' })
  await client.connect()
  const upsert = {
    name: 'upsert',
    text: `insert into ${spec.providers} as p (id, service, host, port, protocol, heartbeat, heartbeat_interval_ms,
             tags, meta, health_check, deregister_after_ms, state, state_since, last_seen, reason, detail,
             detected_after_ms, revision)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9, null, null, $10, $11, null, null, null, null, $12)
           on conflict (id) do update set
             service = excluded.service, host = excluded.host, port = excluded.port,
             protocol = excluded.protocol, heartbeat = excluded.heartbeat,
             heartbeat_interval_ms = excluded.heartbeat_interval_ms, tags = excluded.tags,
             meta = excluded.meta, health_check = excluded.health_check,
             deregister_after_ms = excluded.deregister_after_ms, state = excluded.state,
             state_since = excluded.state_since, last_seen = excluded.last_seen,
             reason = excluded.reason, detail = excluded.detail,
             detected_after_ms = excluded.detected_after_ms, revision = excluded.revision`
  }
  const change = {
    name: 'change',
    text: `insert into ${spec.changes} (revision, event, provider_id, service, provider) values ($1, $2, $3, $4, $5)`
  }
  return {
    async op (seq) {
      const id = `c${conn}-${seq % spec.slots}`
      const rev = ++revision
      const stateSince = new Date().toISOString()
      // The same provider object a registration produces (see bench/register.ts's body).
      const provider = {
        id, service: spec.service, host: '127.0.0.1', port: portOf(seq), protocol: 'http',
        heartbeat: `tcp://127.0.0.1:${portOf(seq)}`, heartbeatIntervalMs: 1000,
        tags: ['bench'], meta: { conn: String(conn), run: spec.tag }, state: 'pending', stateSince, lastSeen: null, revision: rev
      }
      await client.query('begin')
      try {
        await client.query({ ...upsert, values: [id, provider.service, provider.host, provider.port, provider.protocol, provider.heartbeat, provider.heartbeatIntervalMs, JSON.stringify(provider.tags), JSON.stringify(provider.meta), provider.state, stateSince, rev] })
        await client.query({ ...change, values: [rev, seq < spec.slots ? 'registered' : 'updated', id, spec.service, JSON.stringify(provider)] })
        await client.query('commit')
      } catch (err) {
        await client.query('rollback').catch(() => {})
        throw err
      }
      return { status: 200, bytes: 0 }
    },
    async close () { await client.end().catch(() => {}) }
  }
}

/** A ZooKeeper session, connected; rejects after `timeoutMs`. */
async function zkSession (connectString: string, timeoutMs: number): Promise<zookeeper.Client> {
  const client = zookeeper.createClient(connectString, { sessionTimeout: 30_000, retries: 0 })
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { client.close(); reject(new Error(`no ZooKeeper session with ${connectString} within ${timeoutMs} ms`)) }, timeoutMs)
    client.once('connected', () => { clearTimeout(timer); resolve() })
    client.connect()
  })
  return client
}

async function zkCreate (client: zookeeper.Client, path: string, data: Buffer, mode: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    client.create(path, data, mode, (err) => { if (err === null || err === undefined) resolve(); else reject(err) })
  })
}

/** The parent of a zookeeper spec's path: created once per run, before its clients start. */
async function zkParent (spec: ZooKeeperSpec): Promise<void> {
  const parent = spec.path.slice(0, spec.path.lastIndexOf('/'))
  if (parent === '') return
  const client = await zkSession(spec.connectString, 10_000)
  try {
    await zkCreate(client, parent, Buffer.alloc(0), zookeeper.CreateMode.PERSISTENT).catch((err: unknown) => {
      if ((err as { getCode?: () => number }).getCode?.() !== zookeeper.Exception.NODE_EXISTS) throw err
    })
  } finally {
    await zkClose(client)
  }
}

/** Closes the session (the server then deletes its ephemeral nodes) and waits until it is. */
async function zkClose (client: zookeeper.Client): Promise<void> {
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 10_000)
    client.once('disconnected', () => { clearTimeout(timer); resolve() })
    client.close()
  })
}

async function zooKeeperClient (spec: ZooKeeperSpec, conn: number): Promise<Client> {
  const path = compile(spec.path, spec)
  const body = compile(spec.body, spec)
  const client = await zkSession(spec.connectString, 10_000)
  return {
    async op (seq) {
      await zkCreate(client, path(conn, seq), Buffer.from(body(conn, seq)), zookeeper.CreateMode.EPHEMERAL)
      return { status: 200, bytes: 0 }
    },
    async close () { await zkClose(client) }
  }
}

async function connectClient (spec: RunSpec, conn: number): Promise<Client> {
  switch (spec.target) {
    case 'http': return await httpClient(spec, conn)
    case 'pg': return await pgClient(spec, conn)
    case 'zookeeper': return await zooKeeperClient(spec, conn)
  }
}

async function run (spec: RunSpec): Promise<RunReport> {
  if (spec.target === 'zookeeper') await zkParent(spec)
  const clients = await Promise.all(Array.from({ length: spec.connections }, async (_v, conn) => await connectClient(spec, conn)))
  const windowStart = now() + spec.warmupMs
  const windowEnd = windowStart + spec.durationMs
  let latencies = new Float64Array(1 << 16)
  let count = 0
  const statuses: Record<string, number> = {}
  let failures = 0
  let firstFailure: string | null = null
  let lastBodyBytes = 0
  let cpuAtWindow: { usage: NodeJS.CpuUsage, at: number } | null = null
  let generatorCpu = NaN
  // CPU ÷ wall time from the window's start to its end, or to the last operation's end when that
  // comes first: on a loaded machine the end timer can fire after it, and is then cleared.
  const cpuTaken = (): void => {
    if (cpuAtWindow === null || !Number.isNaN(generatorCpu)) return
    const d = process.cpuUsage(cpuAtWindow.usage)
    generatorCpu = (d.user + d.system) / 1000 / (now() - cpuAtWindow.at)
  }
  const cpuStart = setTimeout(() => { cpuAtWindow = { usage: process.cpuUsage(), at: now() } }, spec.warmupMs)
  const cpuEnd = setTimeout(cpuTaken, spec.warmupMs + spec.durationMs)

  try {
    await Promise.all(clients.map(async (client) => {
      for (let seq = 0; now() < windowEnd; seq++) {
        const sentAt = now()
        let r: { status: number, bytes: number }
        try {
          r = await client.op(seq)
        } catch (err) {
          failures++
          firstFailure ??= (err as Error).message
          return
        }
        const at = now()
        lastBodyBytes = r.bytes
        if (sentAt < windowStart || at > windowEnd) continue
        if (count === latencies.length) {
          const bigger = new Float64Array(latencies.length * 2)
          bigger.set(latencies)
          latencies = bigger
        }
        latencies[count++] = at - sentAt
        statuses[r.status] = (statuses[r.status] ?? 0) + 1
      }
    }))
  } finally {
    clearTimeout(cpuStart)
    clearTimeout(cpuEnd)
    cpuTaken()
    await Promise.all(clients.map(async (c) => { await c.close() }))
  }

  const sorted = latencies.subarray(0, count).sort()
  const pct = (p: number): number => {
    if (count === 0) return NaN
    const rank = (p / 100) * (count - 1)
    const lo = Math.floor(rank)
    const hi = Math.ceil(rank)
    return (sorted[lo] as number) + ((sorted[hi] as number) - (sorted[lo] as number)) * (rank - lo)
  }
  let sum = 0
  for (let i = 0; i < count; i++) sum += sorted[i] as number
  const r3 = (v: number): number => Math.round(v * 1000) / 1000
  return {
    opsPerSec: Math.round(count / (spec.durationMs / 1000)),
    count,
    p50Ms: r3(pct(50)),
    p90Ms: r3(pct(90)),
    p99Ms: r3(pct(99)),
    maxMs: r3(count === 0 ? NaN : sorted[count - 1] as number),
    meanMs: r3(count === 0 ? NaN : sum / count),
    statuses,
    failures,
    firstFailure,
    lastBodyBytes,
    generatorCpu: Math.round(generatorCpu * 100) / 100,
    windowMs: spec.durationMs
  }
}

const IDENT = /^[a-z_][a-z0-9_]*$/

function check (spec: RunSpec): RunSpec {
  const common = Number.isInteger(spec.connections) && spec.connections >= 1 && spec.connections <= 1024 &&
    Number.isFinite(spec.warmupMs) && spec.warmupMs >= 0 && Number.isFinite(spec.durationMs) && spec.durationMs > 0 &&
    Number.isInteger(spec.slots) && spec.slots >= 1 && typeof spec.tag === 'string'
  const specific = spec.target === 'http'
    ? Number.isInteger(spec.port) && spec.port > 0 && spec.port < 65536 && /^[A-Z]+$/.test(spec.method) &&
      typeof spec.path === 'string' && spec.path.startsWith('/') && (spec.body === null || typeof spec.body === 'string')
    : spec.target === 'pg'
      ? typeof spec.databaseUrl === 'string' && IDENT.test(spec.providers) && IDENT.test(spec.changes) && typeof spec.service === 'string'
      : spec.target === 'zookeeper' && typeof spec.connectString === 'string' && typeof spec.body === 'string' &&
        typeof spec.path === 'string' && spec.path.startsWith('/') && !spec.path.slice(0, spec.path.lastIndexOf('/')).includes('{')
  if (!common || !specific) throw new Error(`bad run spec ${JSON.stringify(spec)}`)
  return spec
}

let busy = false
createInterface({ input: process.stdin }).on('line', (line) => {
  let spec: RunSpec
  try {
    spec = check((JSON.parse(line) as { run: RunSpec }).run)
  } catch (err) {
    print({ error: (err as Error).message })
    return
  }
  if (busy) { print({ error: 'a run is already in progress' }); return }
  busy = true
  run(spec).then((done) => { busy = false; print({ done }) }, (err: unknown) => { busy = false; print({ error: String(err) }) })
}).on('close', () => process.exit(0))

print({ ready: true, pid: process.pid })
