// The TCP ports a benchmark chooses for what it starts (a gateway's --port, a leader's --bind and
// its PUB at PORT+1, a reference server, ZooKeeper's client port). By default anywhere below the
// kernel's ephemeral range (harness/ports.ts); with `ROSTER_BENCH_PORTS=LOW-HIGH` only inside
// that range, so that several people benchmarking on one machine cannot pick each other's ports.
import { createServer } from 'node:net'
import { freeLeaderBind, freePort } from '../../harness/ports.js'

async function isFree (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const srv = createServer()
    srv.once('error', () => resolve(false))
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)))
  })
}

/** `ROSTER_BENCH_PORTS` as [low, high], or null when unset. */
function range (): [number, number] | null {
  const raw = process.env.ROSTER_BENCH_PORTS
  if (raw === undefined || raw === '') return null
  const m = /^(\d+)-(\d+)$/.exec(raw.trim())
  const low = Number(m?.[1])
  const high = Number(m?.[2])
  if (m === null || low < 1024 || high > 65_535 || high - low < 16) {
    throw new Error(`ROSTER_BENCH_PORTS must be LOW-HIGH, 1024–65535, at least 16 ports apart; got ${JSON.stringify(raw)}`)
  }
  return [low, high]
}

/** The first of `count` consecutive ports inside `r` that are all free on 127.0.0.1 right now. */
async function freeRun (r: [number, number], count: number): Promise<number> {
  const [low, high] = r
  for (let i = 0; i < 200; i++) {
    const port = low + Math.floor(Math.random() * (high - low + 2 - count))
    let free = true
    for (let k = 0; k < count && free; k++) free = await isFree(port + k)
    if (free) return port
  }
  throw new Error(`no ${count} free consecutive ports in ROSTER_BENCH_PORTS ${r.join('-')}`)
}

/** A free TCP port on 127.0.0.1 (another process may still take it before it is bound). */
export async function benchPort (): Promise<number> {
  const r = range()
  return r === null ? await freePort() : await freeRun(r, 1)
}

/** A leader endpoint whose port and port + 1 (the event PUB) are both free. */
export async function benchLeaderEndpoint (): Promise<string> {
  const r = range()
  return r === null ? await freeLeaderBind() : `tcp://127.0.0.1:${await freeRun(r, 2)}`
}
