// The `resume` benchmark: what feed clients resuming from far back cost the writes. It builds a
// history of `--providers` registrations (each one a new provider, so that a `since=0` replay is
// no longer than a snapshot and is replayed, not reset), then measures PUT latency through the
// gateway three times in one run: alone, while `--resumers` WebSocket clients resume from
// since=0 (every page of the leader's change log read and sent), and alone again.
//
// Roster runs as `roster leader` + `roster gateway` (no worker: registering needs none); the
// writes and the feed clients come from this process.
import { Agent, request } from 'node:http'
import WebSocket from 'ws'
import { intFlag } from './lib/flags.js'
import { tempDir } from './lib/load.js'
import { startRoster } from './lib/roster.js'
import { fmt, summarize, type Table } from './lib/stats.js'
import type { Benchmark, BenchOutput } from './lib/types.js'

const FLAGS = {
  providers: { default: '20000', help: 'registrations made before the resumes (the history they replay)' },
  resumers: { default: '20', help: 'WebSocket clients resuming from since=0 at once' },
  writers: { default: '4', help: 'concurrent PUT loops during each phase' },
  'baseline-ms': { default: '10000', help: 'length of each phase without resumes' }
}

const SETUP_CONNECTIONS = 32

function body (i: number): string {
  const port = 10_000 + (i % 50_000)
  return JSON.stringify({ host: '127.0.0.1', port, protocol: 'http', heartbeat: `tcp://127.0.0.1:${port}`, heartbeatIntervalMs: 1000, meta: { i: String(i) } })
}

function put (agent: Agent, port: number, id: string, payload: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, agent, method: 'PUT', path: `/v1/services/bench/providers/${id}`, headers: { 'content-type': 'application/json' } }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('error', reject)
    req.end(payload)
  })
}

interface Writes { latenciesMs: number[], failed: number }

/** `writers` loops registering new providers until `until()` says stop. */
async function write (agent: Agent, port: number, writers: number, prefix: string, until: () => boolean): Promise<Writes> {
  const out: Writes = { latenciesMs: [], failed: 0 }
  await Promise.all(Array.from({ length: writers }, async (_, w) => {
    for (let i = 0; !until(); i++) {
      const t0 = performance.now()
      const status = await put(agent, port, `${prefix}-${w}-${i}`, body(i)).catch(() => 0)
      if (status === 200 || status === 201) out.latenciesMs.push(performance.now() - t0)
      else out.failed++
    }
  }))
  return out
}

interface Resume { durationMs: number, events: number, reset: boolean }

/** One client resuming from since=0 until it has seen revision `head` (or a reset snapshot). */
function resumeOnce (port: number, head: number): Promise<Resume> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now()
    const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/watch?since=0`)
    let events = 0
    ws.on('message', (data: Buffer) => {
      // Only the head of each frame is read: the client side must not be the bottleneck.
      const start = data.subarray(0, 48).toString()
      const revision = Number(/"revision":(\d+)/.exec(start)?.[1])
      const snapshot = start.startsWith('{"type":"snapshot"')
      if (!snapshot) events++
      if (snapshot || revision >= head) {
        ws.terminate()
        resolve({ durationMs: performance.now() - t0, events, reset: snapshot })
      }
    })
    ws.on('error', reject)
    ws.on('close', (code) => { if (code !== 1006) reject(new Error(`feed closed with ${code}`)) })
  })
}

function row (name: string, w: Writes, durationMs: number): Array<string | number> {
  const s = summarize(w.latenciesMs)
  return [name, w.latenciesMs.length, Math.round(w.latenciesMs.length / (durationMs / 1000)), s.p50, s.p99, s.max, w.failed]
}

export const resume: Benchmark = {
  name: 'resume',
  description: 'PUT latency through the gateway alone and while many feed clients resume from since=0 (leader + gateway)',
  flags: FLAGS,
  timeoutMs: 600_000,
  async run (ctx): Promise<BenchOutput> {
    const { scope, log, flags } = ctx
    const providers = intFlag(flags, FLAGS, 'providers', 100, 100_000)
    const resumers = intFlag(flags, FLAGS, 'resumers', 1, 200)
    const writers = intFlag(flags, FLAGS, 'writers', 1, 64)
    const baselineMs = intFlag(flags, FLAGS, 'baseline-ms', 1000, 120_000)
    const tmp = await tempDir(scope)
    const roster = await startRoster(scope, tmp, ['leader', 'gateway'])
    const port = Number(new URL(roster.url).port)
    const agent = new Agent({ keepAlive: true, maxSockets: Math.max(SETUP_CONNECTIONS, writers) })
    scope.defer('close the HTTP agent', async () => { agent.destroy() })

    log(`building a history of ${providers} registrations (${roster.storage})`)
    let next = 0
    await Promise.all(Array.from({ length: SETUP_CONNECTIONS }, async () => {
      while (next < providers) {
        const i = next++
        const status = await put(agent, port, `h-${i}`, body(i))
        if (status !== 201) throw new Error(`setup registration ${i}: HTTP ${status}`)
      }
    }))

    const phase = async (name: string, resumeCount: number): Promise<{ writes: Writes, durationMs: number, resumes: Resume[] }> => {
      const t0 = performance.now()
      if (resumeCount === 0) {
        const writes = await write(agent, port, writers, name, () => performance.now() - t0 > baselineMs)
        return { writes, durationMs: performance.now() - t0, resumes: [] }
      }
      // The head when the resumes start: each client is done once it has replayed up to it.
      const head = Number((await (await fetch(`${roster.url}/v1/health`)).json() as { revision: number }).revision)
      let done = false
      const resumes = Promise.all(Array.from({ length: resumeCount }, async () => await resumeOnce(port, head))).finally(() => { done = true })
      const writes = await write(agent, port, writers, name, () => done)
      return { writes, durationMs: performance.now() - t0, resumes: await resumes }
    }

    log(`phase 1: ${writers} writers alone for ${baselineMs} ms`)
    const before = await phase('a', 0)
    log(`phase 2: ${writers} writers while ${resumers} clients resume from since=0`)
    const during = await phase('b', resumers)
    log(`phase 3: ${writers} writers alone again`)
    const after = await phase('c', 0)

    const resumeTimes = summarize(during.resumes.map((r) => r.durationMs))
    const resets = during.resumes.filter((r) => r.reset).length
    const tables: Table[] = [{
      title: `resume: PUT latency with and without ${resumers} feed clients resuming from since=0 at a history of ${providers}+ revisions; ${writers} writers; ${roster.storage}`,
      columns: ['phase', 'writes', 'writes/s', 'p50 ms', 'p99 ms', 'max ms', 'failed'],
      rows: [row('alone (before)', before.writes, before.durationMs), row(`during ${resumers} resumes`, during.writes, during.durationMs), row('alone (after)', after.writes, after.durationMs)],
      notes: [
        `resumes: ${during.resumes.length} clients, each ${fmt(resumeTimes.p50 / 1000, 1)} s (p50), ${fmt(resumeTimes.max / 1000, 1)} s (max), ${during.resumes[0]?.events ?? 0} events each; ${resets} got a reset snapshot instead`,
        `p50 ratio during/alone: ${fmt(summarize(during.writes.latenciesMs).p50 / summarize([...before.writes.latenciesMs, ...after.writes.latenciesMs]).p50)}`
      ]
    }]
    return {
      parameters: { providers, resumers, writers, baselineMs, storage: roster.storage },
      tables,
      results: {
        phases: {
          before: { durationMs: before.durationMs, latency: summarize(before.writes.latenciesMs), failed: before.writes.failed },
          during: { durationMs: during.durationMs, latency: summarize(during.writes.latenciesMs), failed: during.writes.failed },
          after: { durationMs: after.durationMs, latency: summarize(after.writes.latenciesMs), failed: after.writes.failed }
        },
        resumes: during.resumes
      }
    }
  }
}
