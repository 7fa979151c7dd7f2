// The detection benchmark's reference: a bare ZeroMQ SUB in a process of its own, connected to
// the same kind of emitter Roster watches, reporting the socket monitor's `disconnect` events,
// the very events Roster's worker turns into `down`. SIGKILL of an emitter → `disconnect` here
// is the floor any ZeroMQ-based detector pays (kernel FIN, libzmq I/O thread, monitor, Node);
// Roster's figure divided by this one is what Roster adds on top (report, commit, fan-out).
//
// Like the worker's SUB it reconnects after 100 ms (doubling up to 1 s); nothing else is set,
// and none of those options affect how fast a disconnect is seen. Self-contained (only `zeromq`
// and Node built-ins), so the runner can transpile it with bench/emitter.ts.
//
// stdin: `connect ID ENDPOINT` (one per provider).  stdout, one JSON object per line:
//   {"ready":true,"pid":N}
//   {"event":"handshake","address":A,"at":T}
//   {"event":"disconnect","address":A,"at":T}      T: ms since the epoch, sub-millisecond
//   {"event":"heartbeat","id":ID,"at":T}           the first heartbeat of ID after each handshake
// and on `count`: {"count":N,"at":T}, every message received so far (the heartbeat benchmark's
// measure of the stream both it and Roster's worker absorb).
// Exits when stdin closes.
import { createInterface } from 'node:readline'
import { Subscriber } from 'zeromq'

const now = (): number => performance.timeOrigin + performance.now()

function print (obj: object): void {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

const portOf = (address: string): string => address.slice(address.lastIndexOf(':') + 1)

const sub = new Subscriber({ linger: 0, reconnectInterval: 100, reconnectMaxInterval: 1000 })
const events = sub.events // before the first connect, or early events are lost
sub.subscribe('hb')

/** Provider ids by endpoint port, and the ids whose first heartbeat since a handshake is due. */
const idByPort = new Map<string, string>()
const awaitingFirst = new Set<string>()
let received = 0

async function monitor (): Promise<void> {
  for await (const ev of events) {
    const at = now()
    if (ev.type !== 'disconnect' && ev.type !== 'handshake') continue
    const address = ev.address
    print({ event: ev.type, address, at })
    const id = idByPort.get(portOf(address))
    if (ev.type === 'handshake' && id !== undefined) awaitingFirst.add(id)
  }
}

async function receive (): Promise<void> {
  for await (const frames of sub) {
    received++
    const at = now()
    const id = frames[1]?.toString('utf8')
    if (id === undefined || !awaitingFirst.has(id)) continue
    awaitingFirst.delete(id)
    print({ event: 'heartbeat', id, at })
  }
}

const lines = createInterface({ input: process.stdin })
lines.on('line', (line) => {
  const [cmd, id, endpoint] = line.trim().split(/\s+/)
  if (cmd === 'connect' && id !== undefined && endpoint !== undefined) {
    idByPort.set(portOf(endpoint), id)
    sub.connect(endpoint)
  } else if (cmd === 'count') {
    print({ count: received, at: now() })
  } else if (cmd !== undefined && cmd !== '') {
    print({ error: 'unknown command', command: line.trim() })
  }
})
function shutdown (): void {
  sub.close()
  process.exit(0)
}
lines.on('close', shutdown)
process.on('SIGTERM', shutdown)
process.on('SIGINT', shutdown)

void monitor().catch((err: unknown) => { if (!sub.closed) { process.stderr.write(`reference-sub monitor: ${String(err)}\n`); process.exit(1) } })
void receive().catch((err: unknown) => { if (!sub.closed) { process.stderr.write(`reference-sub: ${String(err)}\n`); process.exit(1) } })
print({ ready: true, pid: process.pid })
