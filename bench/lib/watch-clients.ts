// The fan-out benchmark's watchers: one process holding any number of WebSocket clients, on
// Roster's /v1/watch or on the raw `ws` reference (lib/ws-broadcaster.ts) alike, and reporting
// when every one of its sockets has received a given revision. Each frame is stamped the moment
// its 'message' handler runs; its revision is read from the bytes (`"revision":N`, which both
// servers' frames carry) without parsing the rest, so the clients cost the same for both.
//
// Self-contained (`ws` and Node built-ins): the runner transpiles it once per run.
// stdin, one command per line                 stdout, one JSON object per line
//   (start)                                    {"ready":true,"pid":N}
//   open URL N                                 {"opened":N,"ms":T}  N more sockets, each past
//                                              its first frame (snapshot or hello)
//   (every socket has revision R)              {"all":R,"first":T,"last":T}  epoch ms
//   pause                                      {"paused":N}  every socket stops reading (stalled)
//   resume                                     {"resumed":N}
//   close                                      {"closedAll":N}  (terminate; counters reset)
//   (a socket closed by the server)            {"closed":CODE,"reason":"…","received":N,"at":T}
//   anything that fails                        {"error":"…","command":"…"}
// It exits when stdin closes.
import { createInterface } from 'node:readline'
import WebSocket from 'ws'

const now = (): number => performance.timeOrigin + performance.now()
const print = (obj: object): void => { process.stdout.write(JSON.stringify(obj) + '\n') }

/** Connections opened at once: enough to open thousands in seconds, few enough that the server's
 *  accept queue (511 by default) never overflows. */
const OPENING_AT_ONCE = 200
const OPEN_TIMEOUT_MS = 30_000
const REVISION = Buffer.from('"revision":')

interface Client { ws: WebSocket, received: number, closing: boolean }
const clients: Client[] = []
/** revision → [sockets that have it, first arrival, last arrival]. */
const seen = new Map<number, [number, number, number]>()

function revisionOf (data: Buffer): number {
  const i = data.indexOf(REVISION)
  if (i < 0) return -1
  let n = 0
  for (let j = i + REVISION.length; j < data.length; j++) {
    const c = data[j] as number
    if (c < 48 || c > 57) break
    n = n * 10 + (c - 48)
  }
  return n
}

function onFrame (data: Buffer): void {
  const at = now()
  const rev = revisionOf(data)
  if (rev < 0) return
  let s = seen.get(rev)
  if (s === undefined) seen.set(rev, (s = [0, at, at]))
  s[0]++
  s[2] = at
  if (s[0] === clients.length) {
    print({ all: rev, first: s[1], last: s[2] })
    seen.delete(rev)
  }
}

async function openOne (url: string): Promise<void> {
  const ws = new WebSocket(url, { perMessageDeflate: false })
  const client: Client = { ws, received: 0, closing: false }
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no first frame from ${url} within ${OPEN_TIMEOUT_MS} ms`)), OPEN_TIMEOUT_MS)
    ws.once('error', (err) => { clearTimeout(timer); reject(err) })
    // The first frame (a snapshot, or the reference's hello) only says the socket is live.
    ws.once('message', () => {
      clearTimeout(timer)
      clients.push(client)
      ws.on('message', (data: Buffer) => { client.received++; onFrame(data) })
      resolve()
    })
  })
  ws.on('error', () => {}) // reported through 'close'
  ws.on('close', (code, reason) => {
    if (!client.closing) print({ closed: code, reason: reason.toString(), received: client.received, at: now() })
  })
}

async function open (url: string, n: number): Promise<void> {
  const t0 = now()
  let next = 0
  await Promise.all(Array.from({ length: Math.min(OPENING_AT_ONCE, n) }, async () => {
    while (next < n) {
      next++
      await openOne(url)
    }
  }))
  print({ opened: n, ms: now() - t0 })
}

async function handle (line: string): Promise<void> {
  const [cmd, a, b] = line.trim().split(/\s+/)
  if (cmd === undefined || cmd === '') return
  try {
    if (cmd === 'open' && a !== undefined && b !== undefined) {
      await open(a, Number(b))
    } else if (cmd === 'pause') {
      for (const c of clients) c.ws.pause()
      print({ paused: clients.length })
    } else if (cmd === 'resume') {
      for (const c of clients) c.ws.resume()
      print({ resumed: clients.length })
    } else if (cmd === 'close') {
      const n = clients.length
      for (const c of clients.splice(0)) { c.closing = true; c.ws.terminate() }
      seen.clear()
      print({ closedAll: n })
    } else {
      throw new Error('unknown command')
    }
  } catch (err) {
    print({ error: (err as Error).message, command: line.trim() })
  }
}

const lines = createInterface({ input: process.stdin })
lines.on('line', (line) => { void handle(line) })
lines.on('close', () => process.exit(0))
print({ ready: true, pid: process.pid })
