// The fan-out benchmark's reference: a raw `ws` server in a process of its own that broadcasts
// given frames (the very bytes Roster's gateway sent, read from a file) to every connected client,
// the way any WebSocket fan-out does at the least: one Buffer, `send` to each client in a loop.
// Roster's watch hub does that plus its bookkeeping (per-client cursor and filter, the
// slow-client bound), behind the replica; the benchmark compares the two on the same clients.
//
// Self-contained (`ws` and Node built-ins): the runner transpiles it once per run.
// Usage: node ws-broadcaster.mjs FRAMES_FILE PORT   (one frame per line; PORT on 127.0.0.1)
// stdin, one command per line            stdout, one JSON object per line
//   (start)                               {"ready":true,"pid":N}
//   (each new client gets a hello frame: {"type":"hello","revision":0})
//   send I                                {"sent":I,"at":T,"clients":N}  frame I to every client
//   burst I N                             {"burst":N,"at":T,"endAt":T}  frames I…I+N-1, one
//                                          broadcast per event-loop turn, as events would come
// It exits when stdin closes.
import { readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { WebSocketServer, type WebSocket } from 'ws'

const now = (): number => performance.timeOrigin + performance.now()
const print = (obj: object): void => { process.stdout.write(JSON.stringify(obj) + '\n') }

const [file, portArg] = process.argv.slice(2)
if (file === undefined || portArg === undefined || !/^\d+$/.test(portArg)) {
  process.stderr.write('usage: ws-broadcaster FRAMES_FILE PORT\n')
  process.exit(2)
}
const frames = readFileSync(file, 'utf8').split('\n').filter((l) => l !== '').map((l) => Buffer.from(l))
const HELLO = Buffer.from('{"type":"hello","revision":0}')
const TEXT = { binary: false } as const

const clients = new Set<WebSocket>()
const wss = new WebSocketServer({ host: '127.0.0.1', port: Number(portArg), perMessageDeflate: false })
wss.on('connection', (ws) => {
  clients.add(ws)
  ws.on('close', () => clients.delete(ws))
  ws.on('error', () => {})
  ws.send(HELLO, TEXT)
})

function broadcast (frame: Buffer): void {
  for (const ws of clients) ws.send(frame, TEXT)
}

function frame (i: number): Buffer {
  const f = frames[i]
  if (f === undefined) throw new Error(`no frame ${i} (${frames.length} loaded)`)
  return f
}

async function handle (line: string): Promise<void> {
  const [cmd, a, b] = line.trim().split(/\s+/)
  if (cmd === undefined || cmd === '') return
  try {
    if (cmd === 'send') {
      const f = frame(Number(a))
      const at = now()
      broadcast(f)
      print({ sent: Number(a), at, clients: clients.size })
    } else if (cmd === 'burst') {
      const from = Number(a)
      const n = Number(b)
      const at = now()
      for (let i = from; i < from + n; i++) {
        broadcast(frame(i))
        await new Promise((resolve) => setImmediate(resolve))
      }
      print({ burst: n, at, endAt: now() })
    } else {
      throw new Error('unknown command')
    }
  } catch (err) {
    print({ error: (err as Error).message, command: line.trim() })
  }
}

wss.on('listening', () => print({ ready: true, pid: process.pid }))
const lines = createInterface({ input: process.stdin })
lines.on('line', (line) => { void handle(line) })
lines.on('close', () => process.exit(0))
