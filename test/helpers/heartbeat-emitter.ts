// A provider's heartbeat as README.md › The heartbeat protocol specifies it, as a standalone program for tests: it binds
// a PUB at --endpoint and every --interval-ms sends two frames, `hb` and --id. It owns that one
// socket and must never do anything else (no registration, no extra frames), so that tests
// exercise exactly the public contract a provider in any language implements.
//
//   node --import tsx test/helpers/heartbeat-emitter.ts --endpoint tcp://127.0.0.1:0 --id p1 --interval-ms 100
//
// stdout, one JSON object per line: `{"endpoint":"tcp://127.0.0.1:PORT","pid":N}` once bound
// (port 0 or `*` binds a free port), then `{"ok":"silence"}` / `{"ok":"resume"}` acknowledging
// the stdin commands `silence` (stop sending, keep the socket open) and `resume`. It exits when
// stdin closes (its parent is gone) or on SIGTERM/SIGINT.
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { Publisher } from 'zeromq'

/** A restarted emitter may find its old port briefly unavailable; 20 × 100 ms covers it. */
const BIND_ATTEMPTS = 20
const BIND_RETRY_MS = 100

const { values } = parseArgs({
  options: {
    endpoint: { type: 'string', default: 'tcp://127.0.0.1:0' },
    id: { type: 'string' },
    'interval-ms': { type: 'string', default: '1000' }
  }
})
const id = values.id
const intervalMs = Number(values['interval-ms'])
if (id === undefined || id === '' || !Number.isFinite(intervalMs) || intervalMs <= 0) {
  process.stderr.write('usage: heartbeat-emitter --endpoint tcp://HOST:PORT --id ID --interval-ms N\n')
  process.exit(2)
}
const endpoint = values.endpoint.replace(/:0$/, ':*')

const pub = new Publisher({ linger: 0 })
let silent = false
let closing = false
let wake: (() => void) | null = null

function print (obj: object): void {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

async function bind (): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await pub.bind(endpoint)
      return
    } catch (err) {
      if (attempt >= BIND_ATTEMPTS) throw err
      await new Promise((resolve) => setTimeout(resolve, BIND_RETRY_MS))
    }
  }
}

function shutdown (code: number): void {
  closing = true
  wake?.()
  pub.close()
  process.exit(code)
}

/** The only writer of the socket: one send at a time, on a drift-free schedule. */
async function beat (): Promise<void> {
  let next = Date.now()
  while (!closing) {
    if (!silent) await pub.send(['hb', id as string])
    next += intervalMs
    const now = Date.now()
    if (next < now) next = now // fell behind (a paused process): do not burst to catch up
    await new Promise<void>((resolve) => {
      wake = resolve
      setTimeout(resolve, next - now)
    })
    wake = null
  }
}

await bind()
print({ endpoint: pub.lastEndpoint, pid: process.pid })

const lines = createInterface({ input: process.stdin })
lines.on('line', (line) => {
  const cmd = line.trim()
  if (cmd === 'silence') {
    silent = true
    print({ ok: 'silence' })
  } else if (cmd === 'resume') {
    silent = false
    print({ ok: 'resume' })
  } else if (cmd !== '') {
    print({ error: `unknown command ${JSON.stringify(cmd)}` })
  }
})
lines.on('close', () => shutdown(0))
process.on('SIGTERM', () => shutdown(0))
process.on('SIGINT', () => shutdown(0))

beat().catch((err: unknown) => {
  process.stderr.write(`heartbeat-emitter: ${String(err)}\n`)
  shutdown(1)
})
