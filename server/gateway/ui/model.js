// The dashboard's pure core: the registry as the page knows it (every provider the feed sent,
// the revision it reflects, a bounded log of recent events) and the questions the page asks of
// it (counts by state per service, the providers a filter selects). No DOM, no network, no clock
// of its own: app.js feeds it frames and the time, and draws what it answers.

export const STATES = /** @type {const} */ (['up', 'down', 'pending', 'maintenance'])
export const PROTOCOLS = /** @type {const} */ (['http', 'rpc', 'pub'])
const EVENTS = new Set(['registered', 'updated', 'up', 'down', 'maintenance', 'deregistered'])

/** Recent events kept for the log: a few minutes of a busy registry, a few hundred rows of DOM. */
export const LOG_LIMIT = 200

/** Down first: an operator opens the page to see what is broken. */
const STATE_ORDER = { down: 0, pending: 1, maintenance: 2, up: 3 }

/**
 * @typedef {{ id: string, service: string, host: string, port: number, protocol: string,
 *   heartbeat?: string, heartbeatIntervalMs: number, check?: { type: string },
 *   tags: string[], meta: Record<string, string>, state: string, stateSince: string,
 *   lastSeen: string | null, reason?: string, detail?: string, detectedAfterMs?: number,
 *   revision: number }} Provider
 * @typedef {{ revision: number, event: string, service: string, id: string, state: string,
 *   reason?: string, detail?: string, detectedAfterMs?: number, at: number }} LogEntry
 * @typedef {{ revision: number | null, providers: Map<string, Provider>, log: LogEntry[] }} Model
 */

/** @returns {Model} */
export function createModel () {
  return { revision: null, providers: new Map(), log: [] }
}

/**
 * Parses one feed frame, checking the shape the page relies on; throws an Error that says what
 * is wrong, so that a bad frame is reported rather than half applied.
 * @param {string} text
 */
export function parseFrame (text) {
  const frame = JSON.parse(text)
  if (frame === null || typeof frame !== 'object') throw new Error('a feed frame must be a JSON object')
  if (!Number.isSafeInteger(frame.revision) || frame.revision < 0) throw new Error('frame.revision must be a non-negative integer')
  if (frame.type === 'snapshot') {
    if (!Array.isArray(frame.providers)) throw new Error('snapshot.providers must be an array')
    frame.providers.forEach((p, i) => checkProvider(p, `snapshot.providers[${i}]`))
    return frame
  }
  if (frame.type === 'event') {
    if (!EVENTS.has(frame.event)) throw new Error(`event.event must be one of ${[...EVENTS].join(', ')}`)
    checkProvider(frame.provider, 'event.provider')
    return frame
  }
  throw new Error('frame.type must be snapshot or event')
}

function checkProvider (p, where) {
  if (p === null || typeof p !== 'object') throw new Error(`${where} must be an object`)
  for (const field of ['id', 'service', 'state']) {
    if (typeof p[field] !== 'string') throw new Error(`${where}.${field} must be a string`)
  }
}

/**
 * Applies a parsed frame. A snapshot replaces everything (the first one, a `reset: true` one,
 * or one the gateway sent because `since` could not be replayed); an event at or below the
 * model's revision is one the page already has and changes nothing.
 * @param {Model} model
 * @param {any} frame
 * @param {number} now  the time it arrived, for the log
 * @returns {boolean} whether the model changed
 */
export function applyFrame (model, frame, now) {
  if (frame.type === 'snapshot') {
    model.providers = new Map(frame.providers.map((p) => [p.id, p]))
    model.revision = frame.revision
    return true
  }
  if (model.revision !== null && frame.revision <= model.revision) return false
  const p = frame.provider
  if (frame.event === 'deregistered') model.providers.delete(p.id)
  else model.providers.set(p.id, p)
  model.revision = frame.revision
  model.log.unshift({
    revision: frame.revision,
    event: frame.event,
    service: p.service,
    id: p.id,
    state: p.state,
    reason: p.reason,
    detail: p.detail,
    detectedAfterMs: p.detectedAfterMs,
    at: now
  })
  if (model.log.length > LOG_LIMIT) model.log.length = LOG_LIMIT
  return true
}

/**
 * Every service with its providers counted by state, by name.
 * @param {Model} model
 * @returns {Array<{ name: string, total: number, counts: Record<string, number> }>}
 */
export function serviceCounts (model) {
  const byName = new Map()
  for (const p of model.providers.values()) {
    let s = byName.get(p.service)
    if (s === undefined) {
      s = { name: p.service, total: 0, counts: { up: 0, down: 0, pending: 0, maintenance: 0 } }
      byName.set(p.service, s)
    }
    s.total++
    if (Object.hasOwn(s.counts, p.state)) s.counts[p.state]++
  }
  return [...byName.values()].sort((a, b) => compareText(a.name, b.name))
}

/**
 * The providers a filter selects, down first, then by service and id.
 * @param {Model} model
 * @param {{ service: string | null, state: string | null, protocol: string | null, text: string }} filter
 *   `text` matches (case-insensitively) the id, the address, a tag, a meta key or value, the reason or the detail.
 * @returns {Provider[]}
 */
export function selectProviders (model, filter) {
  const needle = filter.text.trim().toLowerCase()
  const out = []
  for (const p of model.providers.values()) {
    if (filter.service !== null && p.service !== filter.service) continue
    if (filter.state !== null && p.state !== filter.state) continue
    if (filter.protocol !== null && p.protocol !== filter.protocol) continue
    if (needle !== '' && !searchText(p).includes(needle)) continue
    out.push(p)
  }
  return out.sort((a, b) => rank(a.state) - rank(b.state) || compareText(a.service, b.service) || compareText(a.id, b.id))
}

function rank (state) {
  return Object.hasOwn(STATE_ORDER, state) ? STATE_ORDER[state] : 9
}

function searchText (p) {
  const meta = Object.entries(p.meta ?? {}).map(([k, v]) => `${k}=${v}`)
  return [p.id, `${p.host}:${p.port}`, ...(p.tags ?? []), ...meta, p.reason ?? '', p.detail ?? ''].join('\n').toLowerCase()
}

function compareText (a, b) {
  return a < b ? -1 : a > b ? 1 : 0
}

/**
 * "3 s", "4 min", "2 h", "5 d": how long ago `iso` was at `now`; '' for null or a bad date.
 * @param {string | null | undefined} iso
 * @param {number} now
 */
export function ago (iso, now) {
  if (iso === null || iso === undefined) return ''
  const t = Date.parse(iso)
  if (Number.isNaN(t)) return ''
  const s = Math.max(0, Math.round((now - t) / 1000))
  if (s < 60) return `${s} s`
  if (s < 3600) return `${Math.floor(s / 60)} min`
  if (s < 86400) return `${Math.floor(s / 3600)} h`
  return `${Math.floor(s / 86400)} d`
}

/**
 * The wait before reconnect attempt `attempt` (0, 1, …): 250 ms doubling to 10 s, each ±20 %
 * (`random` in [0, 1)) so that the clients of a gateway that went away do not return in step.
 * @param {number} attempt
 * @param {number} random
 */
export function backoffMs (attempt, random) {
  const base = Math.min(10_000, 250 * 2 ** Math.min(attempt, 6))
  return Math.round(base * (0.8 + 0.4 * random))
}
