// The `fanout` benchmark: one change, W WebSocket watchers of its service (1,000 and 10,000 by
// default): how long until every one of them has it, and how many events a second reach them
// when changes come back to back; against a raw `ws` server broadcasting the same bytes to the
// same client processes in the same run. Then a stalled client: one watcher that stops reading
// while big changes keep coming, to show that it costs the others nothing and the gateway no
// more than its own bounded buffer, and that it is closed with 4008.
//
// Roster runs as `roster leader` and `roster gateway` (no provider heartbeats here: one provider
// with a ttl check, changed by PUTs of its metadata). The watchers live in --client-procs
// processes (lib/watch-clients.ts), each reporting when all its sockets have a revision.
//   latency    one PUT at a time → the last watcher's frame (also from the EVENT on the leader's
//              PUB, lib/event-tap.ts, which leaves out the HTTP request and the commit);
//              reference: `send` → the last watcher's frame, stamped by the broadcaster
//   sustained  K changes, 8 PUTs in flight → the last watcher has the last one: K × W / time;
//              reference: the same K frames, one broadcast per event-loop turn
//   stall      at the first W: big changes (~16 KB) one at a time, first without, then with a
//              stalled watcher; the others' latency, the gateway's RSS, the stalled one's fate
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pubEndpoint } from '../server/protocol/endpoints.js'
import { benchPort } from './lib/ports.js'
import { compileScript, now, spawnLineChild, type LineChild } from './lib/children.js'
import { openEventTap } from './lib/event-tap.js'
import { openFeed, type FeedMessage } from './lib/feed.js'
import { intFlag } from './lib/flags.js'
import { MiB, rss } from './lib/proc-stat.js'
import { stopProcess } from './lib/processes.js'
import { putAll, putProvider, type Registration } from './lib/register.js'
import { startRoster } from './lib/roster.js'
import { ratio, rounded, summarize, type Summary, type Table } from './lib/stats.js'
import type { Benchmark, BenchContext, BenchOutput } from './lib/types.js'

const SERVICE = 'fan'
const PROVIDER = 'p0'
const FLAGS = {
  watchers: { default: '1000,10000', help: 'watcher counts, comma-separated' },
  'fan-samples': { default: '60', help: 'latency samples per watcher count (after the warm-up)' },
  'fan-warmup': { default: '5', help: 'latency samples discarded first' },
  deliveries: { default: '200000', help: 'sustained run: changes × watchers (at least 10 changes)' },
  'client-procs': { default: '4', help: 'watcher processes (sockets spread evenly)' },
  'stall-watchers': { default: '100', help: 'watchers beside the stalled one in the stall phase (0: no stall phase)' },
  'stall-changes': { default: '800', help: 'big changes while the stalled watcher does not read' }
}
const SUSTAINED_IN_FLIGHT = 8
/** Per change, by the last watcher; generous, since a loaded machine stretches the tail. */
const CHANGE_TIMEOUT_MS = 20_000
const OPEN_TIMEOUT_MS = 120_000
/** Big changes: 32 metadata values of 500 characters (the schema's caps: 32 × 512), ~16 KB. */
const BIG_META_KEYS = 32
const BIG_META_CHARS = 500
const STALL_BASELINE = 50
/** After the stall, the stalled watcher reads again and has this long to see its close. */
const STALL_FATE_MS = 40_000

interface Sample { rev: number, t0: number, first: number, last: number, tap: number }

function change (seq: number, big: boolean): Registration {
  const meta: Record<string, string> = { seq: String(seq) }
  if (big) for (let i = 1; i < BIG_META_KEYS; i++) meta[`k${i}`] = String(seq % 10).repeat(BIG_META_CHARS)
  return { service: SERVICE, id: PROVIDER, body: { host: '127.0.0.1', port: 8080, protocol: 'http', check: { type: 'ttl', ttlMs: 86_400_000 }, meta } }
}

/** Resolves with the earliest first and the latest last arrival of `rev` over all processes. */
async function allHave (procs: readonly LineChild[], rev: number, what: string): Promise<{ first: number, last: number }> {
  const lines = await Promise.all(procs.map(async (p) => await p.expect((m) => m.all === rev, CHANGE_TIMEOUT_MS, `${what}: every watcher in ${p.name} has revision ${rev}`)))
  return { first: Math.min(...lines.map((l) => l.msg.first as number)), last: Math.max(...lines.map((l) => l.msg.last as number)) }
}

async function command (proc: LineChild, line: string, match: (m: Record<string, unknown>) => boolean, timeoutMs: number): Promise<Record<string, unknown>> {
  const reply = proc.expect((m) => match(m) || (m.error !== undefined && m.command === line), timeoutMs, `${proc.name}: reply to "${line}"`)
  proc.send(line)
  const { msg } = await reply
  if (typeof msg.error === 'string') throw new Error(`${proc.name}: "${line}" failed: ${msg.error}`)
  return msg
}

/** Opens `total` sockets to `url`, spread over the processes. */
async function openWatchers (procs: readonly LineChild[], url: string, total: number): Promise<void> {
  await Promise.all(procs.map(async (p, i) => {
    const n = Math.floor(total / procs.length) + (i < total % procs.length ? 1 : 0)
    if (n > 0) await command(p, `open ${url} ${n}`, (m) => m.opened === n, OPEN_TIMEOUT_MS)
  }))
}

async function closeWatchers (procs: readonly LineChild[]): Promise<void> {
  await Promise.all(procs.map(async (p) => await command(p, 'close', (m) => typeof m.closedAll === 'number', 10_000)))
}

export const fanout: Benchmark = {
  name: 'fanout',
  description: 'one change → all of 1,000 / 10,000 WebSocket watchers, and events/s, against a raw ws broadcast; a stalled watcher',
  flags: FLAGS,
  timeoutMs: 600_000,
  async run (ctx: BenchContext): Promise<BenchOutput> {
    const { scope, log } = ctx
    const flag = (name: keyof typeof FLAGS, min: number, max: number): number => intFlag(ctx.flags, FLAGS, name, min, max)
    const watcherCounts = (ctx.flags.watchers ?? FLAGS.watchers.default).split(',').map((w) => {
      const n = Number(w)
      if (!Number.isInteger(n) || n < 1 || n > 15_000) throw new Error(`--watchers must list integers 1–15000, got ${JSON.stringify(w)}`)
      return n
    })
    const p = {
      watchers: watcherCounts,
      samples: flag('fan-samples', 1, 1000),
      warmup: flag('fan-warmup', 0, 100),
      deliveries: flag('deliveries', 1, 10_000_000),
      clientProcs: flag('client-procs', 1, 16),
      stallWatchers: flag('stall-watchers', 0, 5000),
      stallChanges: flag('stall-changes', 1, 10_000)
    }
    // ulimit -n is per process: a client process holds one descriptor per socket.
    const biggest = Math.max(...p.watchers)
    if (biggest / p.clientProcs > 15_000) throw new Error(`${biggest} watchers over ${p.clientProcs} processes is more than 15,000 sockets each; raise --client-procs`)

    const tmp = await mkdtemp(join(tmpdir(), 'roster-bench-'))
    scope.defer('remove the temp directory', async () => { await rm(tmp, { recursive: true, force: true }) })
    const [clientScript, broadcasterScript] = await Promise.all([compileScript(tmp, 'lib/watch-clients'), compileScript(tmp, 'lib/ws-broadcaster')])
    const [roster, procs] = await Promise.all([
      startRoster(scope, tmp, ['leader', 'gateway']),
      Promise.all(Array.from({ length: p.clientProcs }, async (_v, i) => await spawnLineChild(`watchers-${i}`, clientScript, [])))
    ])
    const gateway = roster.pid('gateway')
    log(`storage: ${roster.storage}; gateway pid ${gateway}; ${p.clientProcs} watcher processes`)
    const tap = openEventTap(pubEndpoint(roster.bind))
    scope.defer('close the event tap', () => { tap.close() })

    // The provider, and the runner's own watcher: it knows the current revision and keeps every
    // event frame's bytes for the reference (JSON.stringify of the parsed frame gives them back).
    let seq = 0
    let revision = (await putProvider(roster.url, change(seq++, false))).revision
    const probe = await openFeed(roster.url, `?service=${SERVICE}`)
    scope.defer('close the probe watcher', () => { probe.close() })
    const frames: string[] = []
    probe.onMessage(({ msg }: { msg: FeedMessage }) => { if (msg.type === 'event') frames.push(JSON.stringify(msg)) })
    const wsUrl = `${roster.url.replace(/^http/, 'ws')}/v1/watch?service=${SERVICE}`

    /** One change at a time: PUT → every watcher has it. */
    async function rosterSample (big: boolean, what: string): Promise<Sample> {
      const rev = ++revision
      const have = allHave(procs, rev, what)
      const t0 = now()
      const put = await putProvider(roster.url, change(seq++, big))
      if (put.revision !== rev) throw new Error(`${what}: the PUT produced revision ${put.revision}, expected ${rev} (another writer?)`)
      const { first, last } = await have
      return { rev, t0, first, last, tap: NaN }
    }

    const results: Array<Record<string, unknown>> = []
    const rows: Array<Array<string | number>> = []
    const sustainedRows: Array<Array<string | number>> = []
    const row = (label: string, s: Summary): Array<string | number> => [label, String(s.n), s.p50, s.p90, s.p99, s.max]
    const kept = <T>(xs: T[]): T[] => xs.slice(p.warmup)

    for (const w of p.watchers) {
      // ---- Roster ------------------------------------------------------------------------------
      let t = now()
      await openWatchers(procs, wsUrl, w)
      log(`${w} watchers on Roster open (${((now() - t) / 1000).toFixed(1)} s)`)
      const framesFrom = frames.length
      const latency: Sample[] = []
      for (let i = 0; i < p.warmup + p.samples; i++) latency.push(await rosterSample(false, `Roster latency sample ${i + 1} (${w} watchers)`))
      const k = Math.max(10, Math.ceil(p.deliveries / w))
      const lastRev = revision + k
      const burstDone = allHave(procs, lastRev, `Roster sustained run (${w} watchers)`)
      t = now()
      await putAll(roster.url, Array.from({ length: k }, () => change(seq++, false)), SUSTAINED_IN_FLIGHT)
      revision = lastRev
      const rosterBurst = { changes: k, ms: (await burstDone).last - t }
      for (const s of latency) s.tap = tap.publishedAt(s.rev)
      const gatewayRss = (await rss(gateway)).rssBytes / MiB
      await closeWatchers(procs)
      log(`Roster, ${w} watchers: latency and ${k} back-to-back changes done; gateway RSS ${gatewayRss.toFixed(0)} MiB`)

      // ---- reference: the same frames from a raw ws server ----------------------------------
      const mine = frames.slice(framesFrom)
      if (mine.length < latency.length + k) throw new Error(`the probe watcher kept ${mine.length} frames, expected ${latency.length + k}`)
      const framesFile = join(tmp, `frames-${w}.txt`)
      await writeFile(framesFile, mine.join('\n') + '\n')
      const refPort = await benchPort()
      const ref = await spawnLineChild(`ws-broadcaster-${w}`, broadcasterScript, [framesFile, String(refPort)])
      t = now()
      await openWatchers(procs, `ws://127.0.0.1:${refPort}/`, w)
      log(`${w} watchers on the reference open (${((now() - t) / 1000).toFixed(1)} s)`)
      const revOf = (i: number): number => (JSON.parse(mine[i] as string) as { revision: number }).revision
      const refLatency: Sample[] = []
      for (let i = 0; i < latency.length; i++) {
        const what = `reference latency sample ${i + 1} (${w} watchers)`
        const have = allHave(procs, revOf(i), what)
        const sent = await command(ref, `send ${i}`, (m) => m.sent === i, 5000)
        const { first, last } = await have
        refLatency.push({ rev: revOf(i), t0: sent.at as number, first, last, tap: NaN })
      }
      const refDone = allHave(procs, revOf(latency.length + k - 1), `reference sustained run (${w} watchers)`)
      const burst = await command(ref, `burst ${latency.length} ${k}`, (m) => m.burst === k, CHANGE_TIMEOUT_MS)
      const refBurst = { changes: k, ms: (await refDone).last - (burst.at as number) }
      await closeWatchers(procs)
      await stopProcess(ref.child)

      // ---- figures for this watcher count ----------------------------------------------------
      const s = {
        putToAll: rounded(summarize(kept(latency).map((x) => x.last - x.t0))),
        putToFirst: rounded(summarize(kept(latency).map((x) => x.first - x.t0))),
        eventToAll: rounded(summarize(kept(latency).map((x) => x.last - x.tap))),
        refToAll: rounded(summarize(kept(refLatency).map((x) => x.last - x.t0))),
        refToFirst: rounded(summarize(kept(refLatency).map((x) => x.first - x.t0)))
      }
      const rosterRate = rosterBurst.changes * w / rosterBurst.ms * 1000
      const refRate = refBurst.changes * w / refBurst.ms * 1000
      rows.push(
        row(`Roster ${w}: PUT → all have it`, s.putToAll),
        row(`Roster ${w}: EVENT published → all`, s.eventToAll),
        row(`reference ${w}: broadcast → all`, s.refToAll),
        ['  ratio (EVENT → all) ÷ reference', '', ratio(s.eventToAll.p50, s.refToAll.p50), ratio(s.eventToAll.p90, s.refToAll.p90), ratio(s.eventToAll.p99, s.refToAll.p99), '']
      )
      sustainedRows.push([String(w), String(k), rosterRate.toFixed(0), refRate.toFixed(0), ratio(rosterRate, refRate).toFixed(2), gatewayRss.toFixed(0)])
      results.push({
        watchers: w,
        latency: s,
        sustained: { roster: { ...rosterBurst, eventsPerSec: Math.round(rosterRate) }, reference: { ...refBurst, eventsPerSec: Math.round(refRate) }, ratio: rosterRate / refRate },
        gatewayRssMiB: Math.round(gatewayRss),
        frameBytes: (mine[0] as string).length,
        samples: { roster: latency.map((x) => rounded(x)), reference: refLatency.map((x) => rounded(x)) }
      })
    }

    // ---- a stalled watcher ------------------------------------------------------------------------
    let stall: Record<string, unknown> | null = null
    if (p.stallWatchers > 0) {
      await openWatchers(procs, wsUrl, p.stallWatchers)
      const baseline: Sample[] = []
      for (let i = 0; i < STALL_BASELINE; i++) baseline.push(await rosterSample(true, `stall baseline sample ${i + 1}`))
      const rssBefore = (await rss(gateway)).rssBytes / MiB
      const stalled = await spawnLineChild('stalled-watcher', clientScript, [])
      await command(stalled, `open ${wsUrl} 1`, (m) => m.opened === 1, OPEN_TIMEOUT_MS)
      await command(stalled, 'pause', (m) => m.paused === 1, 5000)
      log(`stall: ${p.stallWatchers} watchers + 1 stalled; ${p.stallChanges} changes of ~16 KB`)
      const during: Sample[] = []
      const rssTrace: number[] = []
      for (let i = 0; i < p.stallChanges; i++) {
        during.push(await rosterSample(true, `stall sample ${i + 1}`))
        if (i % 20 === 0) rssTrace.push((await rss(gateway)).rssBytes / MiB)
      }
      const rssAfter = (await rss(gateway)).rssBytes / MiB
      // Closed (4008, with the resume hint) once its bound was exceeded; or, if it never was, it
      // simply catches up to the last change.
      const fate = stalled.expect((m) => typeof m.closed === 'number' || m.all === revision, STALL_FATE_MS, 'the stalled watcher\'s close, or the last change, after it reads again')
      const resumedAt = now()
      await command(stalled, 'resume', (m) => m.resumed === 1, 5000)
      const closed = await fate.then(({ msg }) => msg, (err: Error) => ({ error: err.message }))
      await closeWatchers(procs)
      await stopProcess(stalled.child)
      const frameBytes = (frames[frames.length - 1] ?? '').length
      const b = rounded(summarize(baseline.map((x) => x.last - x.t0)))
      const d = rounded(summarize(during.map((x) => x.last - x.t0)))
      stall = {
        watchers: p.stallWatchers,
        changes: p.stallChanges,
        frameBytes,
        bytesOffered: frameBytes * p.stallChanges,
        baseline: b,
        during: d,
        gatewayRssMiB: { before: Math.round(rssBefore), maxDuring: Math.round(Math.max(...rssTrace)), after: Math.round(rssAfter), trace: rssTrace.map((v) => Math.round(v)) },
        stalledFate: closed,
        resumedToCloseMs: typeof (closed as { at?: unknown }).at === 'number' ? (closed as { at: number }).at - resumedAt : null
      }
      log(`stall: stalled watcher ${JSON.stringify(closed)}`)
    }

    const tables: Table[] = [
      {
        title: `fanout: one change at a time → every watcher has it (ms), ${p.samples} samples (+${p.warmup} warm-up), ${roster.storage}`,
        columns: ['figure (ms)', 'n', 'p50', 'p90', 'p99', 'max'],
        rows,
        notes: [
          'PUT → all: from sending the PUT (runner) to the last watcher\'s frame (HTTP, commit, publish, gateway, every socket)',
          'EVENT published → all: from the leader\'s EVENT as a SUB in the runner read it: the gateway\'s fan-out only',
          'reference: a raw `ws` server sending the same bytes to the same client processes, from its `send` to the last frame',
          'targets: 1,000 watchers p50 ≤ 20 ms and p99 ≤ 40 ms; 10,000 watchers p99 ≤ 150 ms'
        ]
      },
      {
        title: `fanout: sustained, changes back to back (${SUSTAINED_IN_FLIGHT} PUTs in flight; reference: one broadcast per event-loop turn)`,
        columns: ['watchers', 'changes', 'Roster events/s', 'reference events/s', 'Roster ÷ reference', 'gateway RSS MiB'],
        rows: sustainedRows,
        notes: ['events/s: changes × watchers ÷ (first change sent → the last watcher has the last one); target ≥ 0.70 of the reference']
      }
    ]
    if (stall !== null) {
      const st = stall as { baseline: Summary, during: Summary, gatewayRssMiB: { before: number, maxDuring: number, after: number }, frameBytes: number, bytesOffered: number, stalledFate: Record<string, unknown>, resumedToCloseMs: number | null }
      tables.push({
        title: `fanout: one stalled watcher (stops reading) beside ${p.stallWatchers} others, ${p.stallChanges} changes of ${st.frameBytes} bytes (${(st.bytesOffered / MiB).toFixed(1)} MiB offered to it)`,
        columns: ['the others: PUT → all (ms)', 'n', 'p50', 'p90', 'p99', 'max'],
        rows: [row('before the stall', st.baseline), row('while one watcher is stalled', st.during)],
        notes: [
          `gateway RSS: ${st.gatewayRssMiB.before} MiB before, at most ${st.gatewayRssMiB.maxDuring} MiB during, ${st.gatewayRssMiB.after} MiB after (bound per client: 4 MiB unsent, plus the kernel's socket buffers)`,
          `the stalled watcher, reading again: ${JSON.stringify(st.stalledFate)}${st.resumedToCloseMs === null ? '' : ` (${st.resumedToCloseMs.toFixed(0)} ms after it resumed)`}`
        ]
      })
    }
    return {
      parameters: { ...p, storage: roster.storage, service: SERVICE, sustainedInFlight: SUSTAINED_IN_FLIGHT },
      tables,
      results: { perWatcherCount: results, stall, pids: { gateway } }
    }
  }
}
