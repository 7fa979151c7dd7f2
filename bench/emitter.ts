// The benchmark's provider host: one process that owns any number of heartbeat PUB sockets, each
// sending exactly what README.md › The heartbeat protocol asks of a provider (two frames, `hb` and its id, every
// interval). The detection benchmark runs one of these with many providers (the background
// fleet, so that 50 providers do not cost 50 Node processes) and one per killable provider, so
// that SIGKILL on it is a real crash of exactly one provider: the kernel closes that socket's
// TCP connections as it would for any dying process.
//
// It is self-contained (only `zeromq` and Node built-ins) because the runner transpiles it to
// plain JavaScript once per run: a restart then costs a bare `node` start (~0.15 s of CPU)
// instead of tsx's (~0.6 s), which matters when a run restarts a provider 60+ times on a
// two-core machine. It also runs as is: `node --import tsx bench/emitter.ts --interval-ms 100`.
//
// stdin, one command per line            stdout, one JSON object per line
//   (start)                               {"ready":true,"pid":N}
//   add ID tcp://127.0.0.1:0|PORT         {"added":"ID","endpoint":"tcp://127.0.0.1:PORT"}
//   silence ID                            {"silenced":"ID","lastBeatAt":T}   T: when the last
//                                         heartbeat was handed to the socket (ms since the
//                                         epoch, sub-millisecond; the same clock the runner uses)
//   resume ID                             {"resumed":"ID"}   (and a heartbeat goes out at once)
//   anything that fails                   {"error":"…","command":"…"}
// It exits when stdin closes (its parent is gone), so it cannot outlive the benchmark.
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { Publisher } from 'zeromq'

/** A restarted provider may find its port briefly unavailable; 50 × 20 ms covers it. */
const BIND_ATTEMPTS = 50
const BIND_RETRY_MS = 20

const now = (): number => performance.timeOrigin + performance.now()

const { values } = parseArgs({ options: { 'interval-ms': { type: 'string', default: '100' } } })
const intervalMs = Number(values['interval-ms'])
if (!Number.isFinite(intervalMs) || intervalMs <= 0) {
  process.stderr.write('usage: emitter --interval-ms N   (commands on stdin: add ID ENDPOINT | silence ID | resume ID)\n')
  process.exit(2)
}

interface Provider {
  id: string
  pub: Publisher
  silent: boolean
  lastBeatAt: number | null
  /** Set by `resume`: the next beat goes out at once and the schedule restarts from it. */
  restart: boolean
  wake: (() => void) | null
}

const providers = new Map<string, Provider>()
let closing = false

function print (obj: object): void {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

async function add (id: string, endpoint: string): Promise<void> {
  if (providers.has(id)) throw new Error(`provider ${id} already hosted here`)
  const pub = new Publisher({ linger: 0 })
  const bindTo = endpoint.replace(/:0$/, ':*')
  for (let attempt = 1; ; attempt++) {
    try {
      await pub.bind(bindTo)
      break
    } catch (err) {
      if (attempt >= BIND_ATTEMPTS) { pub.close(); throw err }
      await sleep(BIND_RETRY_MS)
    }
  }
  const p: Provider = { id, pub, silent: false, lastBeatAt: null, restart: false, wake: null }
  providers.set(id, p)
  print({ added: id, endpoint: pub.lastEndpoint })
  void beat(p).catch((err: unknown) => {
    process.stderr.write(`emitter: provider ${id}: ${String(err)}\n`)
    process.exit(1)
  })
}

/** The only writer of p's socket: one send at a time, on a drift-free schedule. */
async function beat (p: Provider): Promise<void> {
  let next = now()
  while (!closing) {
    if (p.restart) { p.restart = false; next = now() }
    if (!p.silent) {
      // Stamped and handed over in the same turn: a `silence` handled after this line sees it.
      p.lastBeatAt = now()
      await p.pub.send(['hb', p.id])
    }
    next += intervalMs
    const t = now()
    if (next < t) next = t // fell behind (a paused process): no burst to catch up
    await new Promise<void>((resolve) => {
      p.wake = resolve
      setTimeout(resolve, next - t)
    })
    p.wake = null
  }
}

function provider (id: string | undefined): Provider {
  const p = id === undefined ? undefined : providers.get(id)
  if (p === undefined) throw new Error(`no provider ${String(id)} here`)
  return p
}

async function handle (line: string): Promise<void> {
  const [cmd, id, endpoint] = line.trim().split(/\s+/)
  if (cmd === undefined || cmd === '') return
  try {
    if (cmd === 'add' && id !== undefined && endpoint !== undefined) {
      await add(id, endpoint)
    } else if (cmd === 'silence') {
      const p = provider(id)
      p.silent = true
      print({ silenced: p.id, lastBeatAt: p.lastBeatAt })
    } else if (cmd === 'resume') {
      const p = provider(id)
      p.silent = false
      p.restart = true
      p.wake?.() // beat at once
      print({ resumed: p.id })
    } else {
      throw new Error('unknown command')
    }
  } catch (err) {
    print({ error: (err as Error).message, command: line.trim() })
  }
}

function shutdown (code: number): void {
  closing = true
  for (const p of providers.values()) { p.wake?.(); p.pub.close() }
  process.exit(code)
}

const lines = createInterface({ input: process.stdin })
lines.on('line', (line) => { void handle(line) })
lines.on('close', () => shutdown(0))
process.on('SIGTERM', () => shutdown(0))
process.on('SIGINT', () => shutdown(0))
print({ ready: true, pid: process.pid })
