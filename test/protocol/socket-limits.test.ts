// The derivations in server/protocol/socket-limits.ts, checked against the real encoder: the
// largest valid message of each kind fits the socket that receives it, so a limit can only ever
// cut off what no honest peer sends. And the bad-frame log rule (frames.ts): every bad frame is
// counted, a few lines a second are written, and the next line says how many were not.
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import { BAD_FRAME_LOGS_PER_SECOND, createBadFrames, decode, encode } from '../../server/protocol/frames.js'
import { BATCH_ITEMS, type Observation, type Task } from '../../server/protocol/messages.js'
import type { Provider } from '../../server/protocol/model.js'
import type { Log } from '../../server/common/log.js'
import {
  GATEWAY_DEALER_MAX_BYTES, GATEWAY_SUB_MAX_BYTES, LEADER_ROUTER_MAX_BYTES, MAX_PROVIDER_BYTES, PAGE_BYTES, PAGE_ITEMS, WORKER_DEALER_MAX_BYTES
} from '../../server/protocol/socket-limits.js'

/** n UTF-16 code units that each cost 6 bytes in JSON (escaped control characters). */
const worst = (n: number, seed = 0): string => Array.from({ length: n }, (_, i) => String.fromCharCode(1 + ((i + seed) % 30))).join('')

/** The largest provider the model allows: every string at its maximum, escaped. */
const largest: Provider = {
  id: 'p'.repeat(128),
  service: 's'.repeat(63),
  host: 'h'.repeat(253),
  port: 65535,
  protocol: 'http',
  heartbeat: `tcp://${'h'.repeat(284)}:65535`,
  heartbeatIntervalMs: 60_000,
  tags: Array.from({ length: 32 }, (_, i) => worst(64, i)),
  meta: Object.fromEntries(Array.from({ length: 32 }, (_, i) => [worst(63, i) + String.fromCharCode(65 + i), worst(512, i)])),
  deregisterAfterMs: 604_800_000,
  state: 'maintenance',
  stateSince: '2026-11-27T10:00:00.000Z',
  lastSeen: '2026-11-27T10:05:00.000Z',
  reason: worst(256),
  revision: Number.MAX_SAFE_INTEGER
}

const bytes = (frames: Buffer[]): number => Math.max(...frames.map((f) => f.length))

describe('socket limits fit the largest valid messages', () => {
  it('one provider (a write, a change, a result) is under MAX_PROVIDER_BYTES', () => {
    const event = encode('EVENT', { epoch: 1, changes: [{ revision: largest.revision, event: 'updated', provider: largest }] })
    expect(decode(event, ['EVENT']).verb).toBe('EVENT')
    expect(bytes(event)).toBeLessThan(MAX_PROVIDER_BYTES)
    expect(bytes(event)).toBeGreaterThan(MAX_PROVIDER_BYTES / 2) // the worst case really is that big
    const { revision: _r, state: _s, stateSince: _ss, lastSeen: _l, reason: _re, id, service, ...spec } = largest
    const write = encode('WRITE', { writes: [{ requestId: 'r'.repeat(64), op: { type: 'register', service, id, spec } }] })
    expect(bytes(write)).toBeLessThan(MAX_PROVIDER_BYTES)
  })

  it('a WRITE, RESULT or EVENT of BATCH_ITEMS of the largest items fits its socket', () => {
    const { revision: _r, state: _s, stateSince: _ss, lastSeen: _l, reason: _re, id, service, ...spec } = largest
    const n = BATCH_ITEMS
    const write = encode('WRITE', { writes: Array.from({ length: n }, () => ({ requestId: 'r'.repeat(64), op: { type: 'register' as const, service, id, spec } })) })
    expect(bytes(write)).toBeLessThan(LEADER_ROUTER_MAX_BYTES)
    const result = encode('RESULT', { epoch: 1, results: Array.from({ length: n }, () => ({ requestId: 'r'.repeat(64), result: { ok: true as const, statusCode: 200, revision: largest.revision, provider: largest } })) })
    expect(decode(result, ['RESULT']).verb).toBe('RESULT')
    expect(bytes(result)).toBeLessThan(GATEWAY_DEALER_MAX_BYTES)
    const event = encode('EVENT', { epoch: 1, changes: Array.from({ length: n }, () => ({ revision: largest.revision, event: 'updated' as const, provider: largest })) })
    expect(decode(event, ['EVENT']).verb).toBe('EVENT')
    expect(bytes(event)).toBeLessThan(GATEWAY_SUB_MAX_BYTES)
  })

  it('a page of a SNAPSHOT or EVENTS (PAGE_BYTES plus one provider) fits the gateway DEALER', () => {
    const n = Math.ceil(PAGE_BYTES / MAX_PROVIDER_BYTES) + 1
    const page = encode('SNAPSHOT', { requestId: 'r'.repeat(64), epoch: 1, revision: 1, providers: Array.from({ length: n }, () => largest), page: 0, more: true })
    expect(bytes(page)).toBeLessThan(GATEWAY_DEALER_MAX_BYTES)
  })

  it('a READY or REPORT of PAGE_ITEMS observations fits the leader ROUTER', () => {
    const obs: Observation = { providerId: 'p'.repeat(128), state: 'down', lastSeen: 8_640_000_000_000_000, reason: 'check-failed', detail: worst(256), detectedAfterMs: Number.MAX_SAFE_INTEGER }
    const report = encode('REPORT', { workerId: 'w'.repeat(64), seq: Number.MAX_SAFE_INTEGER, observations: Array.from({ length: PAGE_ITEMS }, () => obs) })
    expect(bytes(report)).toBeLessThan(LEADER_ROUTER_MAX_BYTES)
  })

  it('an ASSIGN of PAGE_ITEMS of the largest tasks and PAGE_ITEMS of the longest removals fits the worker DEALER', () => {
    const task: Task = {
      providerId: 'p'.repeat(128),
      check: { type: 'http', host: 'h'.repeat(253), port: 65535, path: '/' + '~'.repeat(1023), intervalMs: 60_000, timeoutMs: 59_999 },
      heartbeatIntervalMs: 60_000,
      state: 'down',
      lastSeen: 8_640_000_000_000_000,
      maintenance: true
    }
    const assign = encode('ASSIGN', { epoch: Number.MAX_SAFE_INTEGER, seq: Number.MAX_SAFE_INTEGER, tasks: Array.from({ length: PAGE_ITEMS }, () => task), delta: true, removed: Array.from({ length: PAGE_ITEMS }, () => 'p'.repeat(128)), page: 0, more: true })
    expect(bytes(assign)).toBeLessThan(WORKER_DEALER_MAX_BYTES)
  })
})

describe('bad-frame logs', () => {
  function capture (): { log: Log, lines: Array<Record<string, unknown>> } {
    const lines: Array<Record<string, unknown>> = []
    const stream = new Writable({ write (chunk, _enc, done) { lines.push(JSON.parse(String(chunk))); done() } })
    return { log: pino({ level: 'warn' }, stream) as unknown as Log, lines }
  }

  it('counts all 10,000 bad frames, writes a few lines a second, and then says how many it suppressed', async () => {
    const { log, lines } = capture()
    let now = 1_000_000
    const bad = createBadFrames(log, 'dropped a bad frame', () => now)
    for (let i = 0; i < 10_000; i++) bad.drop(`reason ${i}`, { peer: 'aa' })
    expect(bad.count).toBe(10_000)
    now += 1000
    bad.drop('one more')
    await new Promise((resolve) => setImmediate(resolve))
    expect(lines).toHaveLength(BAD_FRAME_LOGS_PER_SECOND + 1)
    expect(lines[0]).toMatchObject({ msg: 'dropped a bad frame', err: 'reason 0', peer: 'aa', badFrames: 1 })
    expect(lines[0]).not.toHaveProperty('suppressed')
    expect(lines.at(-1)).toMatchObject({ err: 'one more', suppressed: 10_000 - BAD_FRAME_LOGS_PER_SECOND, badFrames: 10_001 })
  })
})
