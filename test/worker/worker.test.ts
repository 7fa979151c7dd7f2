// The worker over real sockets: a scripted leader (a real ROUTER on loopback) and real provider
// processes publishing heartbeats (Node and Python), killed with SIGKILL to make their TCP
// connections drop. Timed assertions are the protocol's bounds (three intervals, "quickly" for a
// dropped connection) with margins for a loaded two-core machine, never fixed sleeps.
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http'
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer } from 'node:net'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { context, Publisher } from 'zeromq'
import type { Observation } from '../../server/protocol/messages.js'
import { createSendQueue } from '../../server/protocol/send-queue.js'
import { silentLog } from '../../server/common/log.js'
import { createWorker, type Worker, type WorkerOptions } from '../../server/worker/worker.js'
import { hasPyzmq, killAllEmitters, spawnEmitter } from '../helpers/emitters.js'
import { NEEDS_PYZMQ } from '../helpers/requirements.js'
import { waitFor } from '../../harness/wait-for.js'
import { now, pendingTask, startScriptedLeader, type ScriptedLeader } from './scripted-leader.js'

/** A dropped connection is reported "within tens of milliseconds" (README.md › Timings); 1 s leaves
 *  room for a loaded machine while staying far below any silence bound used here. */
const DISCONNECT_BOUND_MS = 1000
/** Slack on top of three intervals for the timer, the REPORT's trip and a busy event loop. */
const SILENCE_MARGIN_MS = 500
/** Long enough for an emitter to start (node + tsx), be connected to, and heartbeat. */
const UP_TIMEOUT_MS = 10_000

const leaders: ScriptedLeader[] = []
const workers: Worker[] = []
const cleanups: Array<() => void> = []

beforeAll(() => {
  context.blocky = false
})

afterEach(async () => {
  await Promise.all(workers.splice(0).map(async (w) => await w.stop()))
  for (const l of leaders.splice(0)) l.close()
  for (const c of cleanups.splice(0)) c()
  await killAllEmitters()
})

async function leader (opts: Parameters<typeof startScriptedLeader>[0] = {}): Promise<ScriptedLeader> {
  const l = await startScriptedLeader(opts)
  leaders.push(l)
  return l
}

async function worker (candidates: ScriptedLeader[], opts: Partial<WorkerOptions> = {}): Promise<Worker> {
  const w = createWorker({ leaders: candidates.map((l) => l.endpoint), log: silentLog, ...opts })
  workers.push(w)
  await w.start()
  return w
}

interface Seen { at: number, seq: number, obs: Observation }

/** Every observation the leader received in REPORTs, in arrival order, from report `from` on. */
function observed (l: ScriptedLeader, from = 0): Seen[] {
  return l.reports().slice(from).flatMap((r) => r.observations.map((obs) => ({ at: r.at, seq: r.seq, obs })))
}

async function waitForReport (
  l: ScriptedLeader,
  match: Partial<Observation> & { providerId: string },
  opts: { from?: number, timeoutMs?: number } = {}
): Promise<Seen> {
  return await waitFor(
    () => observed(l, opts.from).find((s) => Object.entries(match).every(([k, v]) => s.obs[k as keyof Observation] === v)),
    { timeoutMs: opts.timeoutMs ?? UP_TIMEOUT_MS, what: `a REPORT with ${JSON.stringify(match)}` }
  )
}

describe('worker', () => {
  it('reports a provider up at its first heartbeat, then nothing while it stays up, and says BYE on stop', async () => {
    const e = await spawnEmitter({ id: 'steady', intervalMs: 200 })
    const l = await leader({ tasks: [pendingTask('steady', e.endpoint, 200)] })
    const w = await worker([l])

    const ready = await waitFor(() => l.messages('READY')[0], { what: 'READY' })
    expect(ready.body).toEqual({ workerId: w.workerId, observations: [] })
    const up = await waitForReport(l, { providerId: 'steady', state: 'up' })
    expect(up.obs.lastSeen).toBeGreaterThan(ready.at)
    expect(up.obs.reason).toBeUndefined()

    // Heartbeats keep coming; none of them is a transition, so no REPORT follows the first.
    const heartbeats = w.stats.heartbeats
    await waitFor(() => w.stats.heartbeats >= heartbeats + 5, { what: 'five more heartbeats' })
    expect(l.reports()).toHaveLength(1)
    expect(w.stats).toMatchObject({ badFrames: 0, unknownProviders: 0, reportsSent: 1, unacked: 0, watching: 1, endpoints: 1 })

    await w.stop()
    await waitFor(() => l.messages('BYE')[0], { what: 'BYE' })
    expect(l.messages('BYE')[0]?.body).toEqual({ workerId: w.workerId })
  })

  it('summarises an up provider\'s lastSeen in SEEN about every 500 ms, moving each time, and nothing of a pending one', async () => {
    const e = await spawnEmitter({ id: 'beating', intervalMs: 100 })
    const l = await leader({ tasks: [pendingTask('beating', e.endpoint, 100), pendingTask('nobody', 'tcp://127.0.0.1:9', 100)] })
    const w = await worker([l])
    await waitForReport(l, { providerId: 'beating', state: 'up' })
    const seen = (): Array<{ at: number, body: { workerId: string, seen: Array<[string, number]> } }> => l.messages('SEEN')
    await waitFor(() => seen().length >= 5, { timeoutMs: 10_000, what: 'five SEEN summaries' })
    const summaries = seen().slice(0, 5)
    for (const s of summaries) {
      expect(s.body.workerId).toBe(w.workerId)
      // Only the up provider, once per summary, and as fresh as its 100 ms interval allows.
      expect(s.body.seen.map(([id]) => id)).toEqual(['beating'])
      expect(s.at - (s.body.seen[0]?.[1] ?? 0)).toBeLessThan(100 + SILENCE_MARGIN_MS)
    }
    const values = summaries.map((s) => s.body.seen[0]?.[1] ?? 0)
    for (let i = 1; i < values.length; i++) expect(values[i]).toBeGreaterThan(values[i - 1] as number)
    // About twice a second: neither per heartbeat nor much slower.
    const gaps = summaries.slice(1).map((s, i) => s.at - (summaries[i] as { at: number }).at)
    for (const gap of gaps) {
      expect(gap).toBeGreaterThan(250)
      expect(gap).toBeLessThan(1000)
    }
  })

  it('reports a killed provider down as disconnected at once, and up again when it restarts on its endpoint', async () => {
    // A 1 s interval puts the silence rule 3 s away, so only the dropped connection can explain
    // a fast `down`. The task names the host `localhost`: libzmq reports the first connection
    // under that name and every reconnection under 127.0.0.1, and both must be attributed.
    const first = await spawnEmitter({ id: 'crashy', intervalMs: 1000 })
    const named = first.endpoint.replace('tcp://127.0.0.1:', 'tcp://localhost:')
    const l = await leader({ tasks: [pendingTask('crashy', named, 1000)] })
    const w = await worker([l])
    await waitForReport(l, { providerId: 'crashy', state: 'up' })

    let from = l.reports().length
    let killedAt = now()
    first.kill('SIGKILL')
    const down = await waitForReport(l, { providerId: 'crashy', state: 'down' }, { from, timeoutMs: 5000 })
    expect(down.obs.reason).toBe('disconnected')
    expect(down.at - killedAt).toBeLessThan(DISCONNECT_BOUND_MS)

    from = l.reports().length
    const second = await spawnEmitter({ id: 'crashy', intervalMs: 1000, endpoint: first.endpoint })
    expect(second.endpoint).toBe(first.endpoint)
    await waitForReport(l, { providerId: 'crashy', state: 'up' }, { from })

    // This drop is reported under the resolved address (tcp://127.0.0.1:PORT).
    from = l.reports().length
    killedAt = now()
    second.kill('SIGKILL')
    const again = await waitForReport(l, { providerId: 'crashy', state: 'down' }, { from, timeoutMs: 5000 })
    expect(again.obs.reason).toBe('disconnected')
    expect(again.at - killedAt).toBeLessThan(DISCONNECT_BOUND_MS)
    // Both drops were counted, each against the one endpoint's connection.
    expect(w.stats.disconnects).toBe(2)
  })

  it('reports a frozen provider (SIGSTOP, connection left open) down through ZMTP heartbeats', async () => {
    // A 20 s interval puts the silence rule a minute away; taking the provider over as `up`
    // spares the wait for its first heartbeat. Only the SUB's ZMTP heartbeat (timeout 5 s) can
    // notice a peer that neither closes its connection nor answers.
    const e = await spawnEmitter({ id: 'frozen', intervalMs: 20_000 })
    const l = await leader({
      tasks: [{ providerId: 'frozen', heartbeat: e.endpoint, heartbeatIntervalMs: 20_000, state: 'up', lastSeen: now() }]
    })
    const w = await worker([l])
    await waitFor(() => l.messages('READY')[0], { what: 'READY' })
    // Let the SUB connect (a heartbeat PING needs a connection to time out on).
    await waitFor(() => w.stats.connects === 1, { what: 'the ZMTP handshake with the provider' })
    const stoppedAt = now()
    e.kill('SIGSTOP')
    const down = await waitForReport(l, { providerId: 'frozen', state: 'down' }, { timeoutMs: 15_000 })
    expect(down.obs.reason).toBe('disconnected')
    // 5 s without traffic after a PING sent at most 1 s after the freeze, plus margin.
    expect(down.at - stoppedAt).toBeLessThanOrEqual(5000 + 1000 + 2000)
    e.kill('SIGCONT')
  }, 30_000)

  it('reports a silent provider down after three intervals, not before, and up when it resumes', async () => {
    const intervalMs = 200
    const e = await spawnEmitter({ id: 'quiet', intervalMs })
    const l = await leader({ tasks: [pendingTask('quiet', e.endpoint, intervalMs)] })
    const w = await worker([l])
    await waitForReport(l, { providerId: 'quiet', state: 'up' })
    const h = w.stats.heartbeats
    await waitFor(() => w.stats.heartbeats > h, { what: 'a heartbeat after up' })
    const heartbeatSeenAt = now()

    const from = l.reports().length
    await e.silence()
    const silencedAt = now()
    const down = await waitForReport(l, { providerId: 'quiet', state: 'down' }, { from, timeoutMs: 3 * intervalMs + 5000 })
    expect(down.obs.reason).toBe('silent')
    const lastSeen = down.obs.lastSeen as number
    // Measured from the last heartbeat the worker really saw (one we watched arrive, or later) ...
    expect(lastSeen).toBeGreaterThanOrEqual(heartbeatSeenAt - intervalMs)
    // ... the silence lasted at least three intervals, and was reported within the bound.
    expect(down.at - lastSeen).toBeGreaterThanOrEqual(3 * intervalMs)
    expect(down.at - silencedAt).toBeLessThanOrEqual(3 * intervalMs + SILENCE_MARGIN_MS)

    const back = l.reports().length
    await e.resume()
    const up = await waitForReport(l, { providerId: 'quiet', state: 'up' }, { from: back })
    expect(up.obs.lastSeen).toBeGreaterThan(lastSeen)
  })

  it('does not take its own stalled event loop for silent providers: heartbeats queued meanwhile count', async () => {
    const intervalMs = 100
    const e = await spawnEmitter({ id: 'stalled', intervalMs })
    const l = await leader({ tasks: [pendingTask('stalled', e.endpoint, intervalMs)] })
    const w = await worker([l])
    await waitForReport(l, { providerId: 'stalled', state: 'up' })
    const h = w.stats.heartbeats
    await waitFor(() => w.stats.heartbeats > h, { what: 'a heartbeat after up' })

    // Block this process (the worker's event loop) for six intervals while the provider, in its
    // own process, keeps publishing: the silence timer comes due during the stall and fires
    // first when the loop resumes, with the heartbeats still unread.
    const from = l.reports().length
    const until = Date.now() + 6 * intervalMs
    while (Date.now() < until) { /* a stall, on purpose */ }
    await waitFor(() => w.stats.heartbeats > h + 1, { what: 'the heartbeats queued during the stall' })
    // An observation window of three intervals after the stall: nothing may be reported.
    await new Promise((resolve) => setTimeout(resolve, 3 * intervalMs))
    expect(observed(l, from)).toEqual([])

    // A real silence is still caught.
    await e.silence()
    const down = await waitForReport(l, { providerId: 'stalled', state: 'down' }, { from, timeoutMs: 3 * intervalMs + 5000 })
    expect(down.obs.reason).toBe('silent')
  })

  // CI installs python3-zmq (.ci/run); a machine with only Node.js skips this one peer.
  it('watches a provider written in Python (pyzmq) the same way', async ({ skip }) => {
    skip(!hasPyzmq, NEEDS_PYZMQ)
    const intervalMs = 200
    const e = await spawnEmitter({ id: 'py-1', intervalMs, python: true })
    const l = await leader({ tasks: [pendingTask('py-1', e.endpoint, intervalMs)] })
    await worker([l])
    await waitForReport(l, { providerId: 'py-1', state: 'up' })

    let from = l.reports().length
    await e.silence()
    const silencedAt = now()
    const down = await waitForReport(l, { providerId: 'py-1', state: 'down' }, { from })
    expect(down.obs.reason).toBe('silent')
    expect(down.at - (down.obs.lastSeen as number)).toBeGreaterThanOrEqual(3 * intervalMs)
    expect(down.at - silencedAt).toBeLessThanOrEqual(3 * intervalMs + SILENCE_MARGIN_MS)

    from = l.reports().length
    await e.resume()
    await waitForReport(l, { providerId: 'py-1', state: 'up' }, { from })

    from = l.reports().length
    const killedAt = now()
    e.kill('SIGKILL')
    const gone = await waitForReport(l, { providerId: 'py-1', state: 'down' }, { from, timeoutMs: 5000 })
    expect(gone.obs.reason).toBe('disconnected')
    expect(gone.at - killedAt).toBeLessThan(DISCONNECT_BOUND_MS)
  })

  it('gives providers it takes over three intervals from the takeover: no false down, a real silence still caught', async () => {
    const intervalMs = 200
    const [alive, hung] = await Promise.all([
      spawnEmitter({ id: 'alive', intervalMs }),
      spawnEmitter({ id: 'hung', intervalMs })
    ])
    await hung.silence()
    // Both were up under a worker that died a minute ago.
    const stale = now() - 60_000
    const l = await leader({
      tasks: [
        { providerId: 'alive', heartbeat: alive.endpoint, heartbeatIntervalMs: intervalMs, state: 'up', lastSeen: stale },
        { providerId: 'hung', heartbeat: hung.endpoint, heartbeatIntervalMs: intervalMs, state: 'up', lastSeen: stale }
      ]
    })
    const w = await worker([l])
    const assignedAt = (await waitFor(() => l.messages('READY')[0], { what: 'READY' })).at

    const down = await waitForReport(l, { providerId: 'hung', state: 'down' })
    expect(down.obs).toMatchObject({ providerId: 'hung', state: 'down', lastSeen: stale, reason: 'silent' })
    expect(down.obs.detectedAfterMs).toBeGreaterThanOrEqual(down.at - stale - 50)
    expect(down.at - assignedAt).toBeGreaterThanOrEqual(3 * intervalMs)
    expect(down.at - assignedAt).toBeLessThanOrEqual(3 * intervalMs + 2 * SILENCE_MARGIN_MS)

    // The live one continued as up: heartbeats arrive and not one REPORT mentions it.
    await waitFor(() => w.stats.heartbeats >= 3, { what: 'heartbeats from the live provider' })
    expect(observed(l).filter((s) => s.obs.providerId === 'alive')).toEqual([])
  })

  it('resends unacknowledged observations every second with a new seq, until an ACK covers them', async () => {
    const intervalMs = 200
    const [a, b] = await Promise.all([
      spawnEmitter({ id: 'res-a', intervalMs }),
      spawnEmitter({ id: 'res-b', intervalMs })
    ])
    const l = await leader({
      autoAck: false,
      tasks: [pendingTask('res-a', a.endpoint, intervalMs), pendingTask('res-b', b.endpoint, intervalMs)]
    })
    const w = await worker([l])
    const firstA = await waitForReport(l, { providerId: 'res-a', state: 'up' })
    // The same observation again, under a newer seq, about a second later.
    const resentA = await waitFor(
      () => observed(l).find((s) => s.obs.providerId === 'res-a' && s.seq > firstA.seq),
      { what: 'a resend of res-a', timeoutMs: 5000 }
    )
    expect(resentA.obs).toEqual(firstA.obs)
    expect(resentA.at - firstA.at).toBeGreaterThanOrEqual(900)
    await waitForReport(l, { providerId: 'res-b', state: 'up' })

    // One ACK covering the latest seq settles everything carried so far.
    const latest = Math.max(...l.reports().map((r) => r.seq))
    l.send('ACK', { epoch: 1, seq: latest })
    await waitFor(() => w.stats.unacked === 0, { what: 'no unacknowledged observations' })

    // A new transition of b is sent and resent; a stale ACK (below its seq) does not stop it,
    // and res-a, acknowledged, is never sent again.
    const from = l.reports().length
    await b.silence()
    const downB = await waitForReport(l, { providerId: 'res-b', state: 'down' }, { from })
    l.send('ACK', { epoch: 1, seq: downB.seq - 1 })
    const resentB = await waitFor(
      () => observed(l, from).find((s) => s.obs.providerId === 'res-b' && s.seq > downB.seq),
      { what: 'a resend of res-b', timeoutMs: 5000 }
    )
    expect(resentB.obs).toEqual(downB.obs)
    expect(observed(l, from).filter((s) => s.obs.providerId === 'res-a')).toEqual([])
    l.send('ACK', { epoch: 1, seq: resentB.seq })
    await waitFor(() => w.stats.unacked === 0, { what: 'the resend acknowledged' })
  })

  it('counts and drops bad heartbeat frames while good heartbeats keep working', async () => {
    const pub = new Publisher({ linger: 0 })
    cleanups.push(() => pub.close())
    await pub.bind('tcp://127.0.0.1:*')
    const q = createSendQueue(pub, () => {})
    const hb = (...frames: Array<string | Buffer>): void => q.send(frames.map((f) => Buffer.from(f)))
    const pump = setInterval(() => hb('hb', 'good'), 50)
    cleanups.push(() => clearInterval(pump))

    const l = await leader({ tasks: [pendingTask('good', pub.lastEndpoint as string, 100)] })
    const w = await worker([l])
    await waitForReport(l, { providerId: 'good', state: 'up' })
    const reportsBefore = l.reports().length
    const heartbeats = w.stats.heartbeats

    hb('xx', 'good') // not subscribed: filtered before it reaches the worker
    hb('hb') // one frame
    hb('hbx', 'good') // wrong topic that matches the `hb` prefix
    hb('hb', '') // empty id
    hb('hb', Buffer.from([0xff, 0xfe, 0xc3, 0x28])) // not UTF-8
    hb('hb', 'x'.repeat(200)) // longer than any provider id
    hb('hb', 'good', 'reserved', 'frames') // extra frames are ignored: a good heartbeat
    hb('hb', 'nobody') // well-formed, but not ours
    await waitFor(() => w.stats.unknownProviders === 1, { what: 'the heartbeat of an unknown provider' })
    // Frames of one publisher arrive in order, so every bad one has been handled by now.
    expect(w.stats.badFrames).toBe(5)
    await waitFor(() => w.stats.heartbeats >= heartbeats + 5, { what: 'good heartbeats after the bad ones' })
    expect(l.reports()).toHaveLength(reportsBefore)
  })

  it('keeps running whatever the leader sends it: bad frames and unusable endpoints', async () => {
    const intervalMs = 200
    const e = await spawnEmitter({ id: 'sturdy', intervalMs })
    const task = pendingTask('sturdy', e.endpoint, intervalMs)
    const l = await leader({ tasks: [task] })
    const w = await worker([l])
    await waitForReport(l, { providerId: 'sturdy', state: 'up' })

    l.sendRaw([Buffer.from('ASSIGN'), Buffer.from('not json')])
    l.sendRaw([Buffer.from('NOPE'), Buffer.from('{}')])
    l.sendRaw([Buffer.from('ASSIGN'), Buffer.from(JSON.stringify({ epoch: 1, tasks: [{ providerId: 'x' }] }))])
    l.sendRaw([Buffer.from('ACK')])
    await waitFor(() => w.stats.leaderBadFrames === 4, { what: 'four bad frames from the leader' })

    // Endpoints libzmq refuses cannot be watched; the good task is watched regardless.
    l.assign([
      task,
      pendingTask('bad-scheme', 'bogus://nowhere', intervalMs),
      pendingTask('no-port', 'tcp://nohost', intervalMs)
    ])
    await waitFor(() => w.stats.watching === 3, { what: 'the new task list applied' })
    expect(w.stats.endpoints).toBe(1)
    const heartbeats = w.stats.heartbeats
    await waitFor(() => w.stats.heartbeats >= heartbeats + 3, { what: 'heartbeats still arriving' })

    const from = l.reports().length
    await e.silence()
    await waitForReport(l, { providerId: 'sturdy', state: 'down', reason: 'silent' }, { from })
  })

  it('sends READY with its current observations to a leader with a higher epoch, and ignores the lower one', async () => {
    const intervalMs = 200
    const e = await spawnEmitter({ id: 'fenced', intervalMs })
    const task = pendingTask('fenced', e.endpoint, intervalMs)
    const l = await leader({ tasks: [task] })
    const w = await worker([l])
    const up = await waitForReport(l, { providerId: 'fenced', state: 'up' })
    expect(l.messages('READY')).toHaveLength(1)

    // A new term answers from the same endpoint (the next PONG carries epoch 2).
    l.epoch = 2
    const ready = await waitFor(() => l.messages('READY')[1], { what: 'a second READY' })
    expect(ready.body.workerId).toBe(w.workerId)
    expect(ready.body.observations).toEqual([{ providerId: 'fenced', state: 'up', lastSeen: expect.any(Number) }])
    expect(ready.body.observations[0]?.lastSeen).toBeGreaterThanOrEqual(up.obs.lastSeen as number)

    // The deposed term tries to empty the task list and to settle reports: both are ignored.
    const fenced = w.stats.fencedMessages
    l.send('ASSIGN', { epoch: 1, seq: 1, tasks: [] })
    l.send('ACK', { epoch: 1, seq: 1_000_000 })
    await waitFor(() => w.stats.fencedMessages >= fenced + 2, { what: 'two fenced messages' })
    expect(w.stats.watching).toBe(1)

    const from = l.reports().length
    await e.silence()
    await waitForReport(l, { providerId: 'fenced', state: 'down', reason: 'silent' }, { from })
  })

  it('keeps watching with no leader, and hands its observations to the next one', async () => {
    const intervalMs = 200
    const e = await spawnEmitter({ id: 'orphan', intervalMs })
    const task = pendingTask('orphan', e.endpoint, intervalMs)
    const a = await leader({ epoch: 1, tasks: [task] })
    const b = await leader({ epoch: 2, tasks: [task] })
    b.answering = false
    // 100 ms pings: a silent leader is given up after 400 ms.
    const w = await worker([a, b], { pingIntervalMs: 100 })
    await waitForReport(a, { providerId: 'orphan', state: 'up' })

    // A commits nothing any more: the down it receives stays unacknowledged ...
    a.autoAck = false
    const fromA = a.reports().length
    await e.silence()
    await waitForReport(a, { providerId: 'orphan', state: 'down' }, { from: fromA })
    // ... then A hangs, and B does not answer yet: no leader at all.
    a.answering = false
    await waitFor(() => w.stats.failovers >= 1, { what: 'the worker to give up on A', timeoutMs: 5000 })

    // The provider comes back while nobody listens; the worker still sees it.
    const transitions = w.stats.transitions
    await e.resume()
    await waitFor(() => w.stats.transitions > transitions, { what: 'the up transition with no leader' })
    expect(w.stats.unacked).toBe(1)

    b.answering = true
    const ready = await waitFor(() => b.messages('READY')[0], { what: 'READY to B', timeoutMs: 5000 })
    expect(ready.body.observations).toEqual([{ providerId: 'orphan', state: 'up', lastSeen: expect.any(Number) }])
    const handed = await waitForReport(b, { providerId: 'orphan', state: 'up' }, { timeoutMs: 5000 })
    expect(handed.seq).toBeGreaterThan(Math.max(...a.reports().map((r) => r.seq)))
    await waitFor(() => w.stats.unacked === 0, { what: 'B to acknowledge' })
  })

  it('applies deltas to its tasks, and asks for its whole list again when an ASSIGN was lost', async () => {
    const intervalMs = 100
    const kept = await spawnEmitter({ id: 'kept', intervalMs })
    const added = await spawnEmitter({ id: 'added', intervalMs })
    const l = await leader({ tasks: [pendingTask('kept', kept.endpoint, intervalMs)] })
    const w = await worker([l])
    await waitForReport(l, { providerId: 'kept', state: 'up' })
    // A delta adds a provider, which is watched like any other.
    l.delta([pendingTask('added', added.endpoint, intervalMs)], [])
    await waitForReport(l, { providerId: 'added', state: 'up' })
    expect(w.stats.watching).toBe(2)

    // The next ASSIGN is lost: the next PONG says so, and the worker asks again with READY. The
    // complete list that answers it says what the leader knows (both up): nothing to report.
    l.tasks = [kept, added].map((e, i) => ({ ...pendingTask(i === 0 ? 'kept' : 'added', e.endpoint, intervalMs), state: 'up' as const, lastSeen: now() }))
    l.loseAssign()
    const ready = await waitFor(() => l.messages('READY')[1], { what: 'a second READY', timeoutMs: 2000 })
    expect(ready.body.observations.map((o) => `${o.providerId}:${o.state}`).sort()).toEqual(['added:up', 'kept:up'])
    expect(w.stats.lostAssigns).toBe(1)
    // The complete list that answered it was taken: deltas apply again, and nothing restarted.
    l.delta([], ['added'])
    await waitFor(() => w.stats.watching === 1, { what: 'added dropped' })
    expect(l.messages('READY')).toHaveLength(2)
    expect(w.stats.lostAssigns).toBe(1)
    expect(observed(l).filter((x) => x.obs.providerId === 'kept').map((x) => x.obs.state)).toEqual(['up'])
  })

  it('reports its own view again when an ASSIGN says otherwise (a provider taken out of maintenance)', async () => {
    const intervalMs = 100
    const e = await spawnEmitter({ id: 'held', intervalMs })
    const l = await leader({ tasks: [pendingTask('held', e.endpoint, intervalMs)] })
    await worker([l])
    const up = await waitForReport(l, { providerId: 'held', state: 'up' })

    // In maintenance: the task says pending, and the worker keeps quiet about the difference.
    let from = l.reports().length
    l.assign([{ ...pendingTask('held', e.endpoint, intervalMs), maintenance: true }])
    // Out of maintenance: pending again at the leader; the worker says what it sees, at once.
    l.assign([pendingTask('held', e.endpoint, intervalMs)])
    const again = await waitForReport(l, { providerId: 'held', state: 'up' }, { from, timeoutMs: 2000 })
    expect(again.obs.lastSeen).toBeGreaterThanOrEqual(up.obs.lastSeen as number)
    expect(observed(l, from)).toHaveLength(1)

    // A task that matches the worker's view is not reported.
    from = l.reports().length
    l.assign([{ ...pendingTask('held', e.endpoint, intervalMs), state: 'up', lastSeen: now() }])
    await e.silence()
    const down = await waitForReport(l, { providerId: 'held', state: 'down' }, { from })
    expect(observed(l, from).map((x) => x.obs.state)).toEqual(['down'])
    expect(down.obs.reason).toBe('silent')
  })
})

describe('worker checks', () => {
  async function listen<S extends HttpServer | TcpServer> (server: S, port = 0): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, '127.0.0.1', () => resolve())
    })
    cleanups.push(() => {
      (server as HttpServer).closeAllConnections?.()
      server.close()
    })
    return (server.address() as AddressInfo).port
  }

  it('runs an http check: up at a 2xx, down (check-failed, HTTP 503) at the first failure, up again', async () => {
    const intervalMs = 100
    let status = 200
    let requests = 0
    const port = await listen(createHttpServer((req, res) => {
      requests++
      res.writeHead(req.url === '/health' ? status : 404).end()
    }))
    const check = { type: 'http' as const, host: '127.0.0.1', port, path: '/health', intervalMs, timeoutMs: 50 }
    const l = await leader({ tasks: [{ providerId: 'web', heartbeatIntervalMs: 1000, check, state: 'pending', lastSeen: null }] })
    const w = await worker([l])
    const up = await waitForReport(l, { providerId: 'web', state: 'up' })
    expect(up.obs.reason).toBeUndefined()

    let from = l.reports().length
    const failingFrom = now()
    status = 503
    const down = await waitForReport(l, { providerId: 'web', state: 'down' }, { from })
    expect(down.obs).toMatchObject({ reason: 'check-failed', detail: 'HTTP 503' })
    // Within one interval (the next run) plus the report's trip.
    expect(down.at - failingFrom).toBeLessThan(intervalMs + SILENCE_MARGIN_MS)
    expect(down.obs.detectedAfterMs).toBeGreaterThanOrEqual(0)
    expect(down.obs.detectedAfterMs).toBeLessThan(2 * intervalMs + SILENCE_MARGIN_MS)

    from = l.reports().length
    status = 200
    const back = await waitForReport(l, { providerId: 'web', state: 'up' }, { from })
    expect(back.obs.lastSeen).toBeGreaterThan(down.at - 10)
    expect(w.stats.probes).toBeGreaterThanOrEqual(3)
    expect(w.stats.probeFailures).toBeGreaterThanOrEqual(1)

    // Taken away from this worker: its probing stops.
    l.assign([])
    await waitFor(() => w.stats.watching === 0, { what: 'the empty task list applied' })
    const after = requests
    await new Promise((resolve) => setTimeout(resolve, 3 * intervalMs))
    expect(requests - after).toBeLessThanOrEqual(1) // a run already in flight may still land
  })

  it('runs a tcp check: down (check-failed, ECONNREFUSED) when the server closes, up when it listens again', async () => {
    const intervalMs = 100
    const first = createTcpServer((socket) => socket.end())
    const port = await listen(first)
    const check = { type: 'tcp' as const, host: '127.0.0.1', port, intervalMs, timeoutMs: 50 }
    const l = await leader({ tasks: [{ providerId: 'db', heartbeatIntervalMs: 1000, check, state: 'pending', lastSeen: null }] })
    await worker([l])
    await waitForReport(l, { providerId: 'db', state: 'up' })

    let from = l.reports().length
    const closedAt = now()
    await new Promise<void>((resolve) => first.close(() => resolve()))
    const down = await waitForReport(l, { providerId: 'db', state: 'down' }, { from })
    expect(down.obs).toMatchObject({ reason: 'check-failed', detail: 'ECONNREFUSED' })
    expect(down.at - closedAt).toBeLessThan(intervalMs + SILENCE_MARGIN_MS)

    from = l.reports().length
    await listen(createTcpServer((socket) => socket.end()), port)
    await waitForReport(l, { providerId: 'db', state: 'up' }, { from })
  })
})

describe('worker: heartbeats from another provider\'s publisher', () => {
  it('do not keep a dead provider up: a forger registered for another provider sends the victim\'s id, the victim is killed, and it goes down and stays down', async () => {
    const victim = await spawnEmitter({ id: 'victim', intervalMs: 200 })
    // A real process with a PUB registered for provider `forger`, publishing `hb victim` 4× as
    // often as the victim does.
    const forger = await spawnEmitter({ id: 'victim', intervalMs: 50 })
    const l = await leader({ tasks: [pendingTask('victim', victim.endpoint, 200), pendingTask('forger', forger.endpoint, 200)] })
    const w = await worker([l])
    await waitForReport(l, { providerId: 'victim', state: 'up' })

    const from = l.reports().length
    victim.kill('SIGKILL')
    await waitForReport(l, { providerId: 'victim', state: 'down', reason: 'disconnected' }, { from, timeoutMs: DISCONNECT_BOUND_MS + SILENCE_MARGIN_MS })
    const ignored = w.stats.unconnectedHeartbeats
    // Five of the victim's silence bounds (3 × 200 ms) while the forger keeps sending its id.
    const until = Date.now() + 5 * 3 * 200
    while (Date.now() < until) {
      expect(observed(l, from).filter((s) => s.obs.providerId === 'victim' && s.obs.state === 'up')).toEqual([])
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    expect(w.stats.unconnectedHeartbeats - ignored).toBeGreaterThan(20)
    // The forger's own provider never beat (it sends no `hb forger`), and is still pending.
    expect(observed(l).filter((s) => s.obs.providerId === 'forger')).toEqual([])

    // The victim restarted on its own endpoint is heard again.
    const back = await spawnEmitter({ id: 'victim', intervalMs: 200, endpoint: victim.endpoint })
    await waitForReport(l, { providerId: 'victim', state: 'up' }, { from })
    back.kill('SIGKILL')
  })
})
