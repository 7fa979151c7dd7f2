// What the people commands print: aligned tables, a provider's details, one line per feed
// message, and JSON, with the states coloured when asked to. Pure: the clock and the colour
// choice come in as arguments. Everything another user wrote (tags, meta, reasons, details,
// and the server's error messages, which may quote them) goes through `printable` first, so
// that no provider can move the cursor, clear the screen or retitle the terminal of whoever
// lists it.
import type { Provider, ProviderState, ServiceSummary, WatchMessage } from '../../client/index.js'
import { printable } from '../common/printable.js'

export interface Style {
  /** ANSI colours for the states: only for a terminal, and never with NO_COLOR set. */
  colour: boolean
  /** The current time in ms, for "3s ago". */
  now: number
}

const STATE_COLOUR: Record<ProviderState, string> = { up: '32', down: '31', pending: '33', maintenance: '36' }

/** A cell's text and, when it is a state, its colour: the table pads by the text alone. */
interface Cell { text: string, colour?: string }

function stateCell (state: ProviderState, style: Style): Cell {
  return style.colour ? { text: state, colour: STATE_COLOUR[state] } : { text: state }
}

/** Columns separated by three spaces, each as wide as its widest cell; the last is not padded. */
export function table (header: readonly string[], rows: ReadonlyArray<ReadonlyArray<Cell | string>>): string {
  const cells: Cell[][] = [header.map((text) => ({ text })), ...rows.map((r) => r.map((c) => typeof c === 'string' ? { text: printable(c) } : { ...c, text: printable(c.text) }))]
  const widths = header.map((_, i) => Math.max(...cells.map((r) => [...(r[i]?.text ?? '')].length)))
  return cells.map((r) => r.map((c, i) => {
    const padded = i === r.length - 1 ? c.text : c.text + ' '.repeat((widths[i] as number) - [...c.text].length)
    return c.colour === undefined ? padded : `\u001b[${c.colour}m${c.text}\u001b[0m${padded.slice(c.text.length)}`
  }).join('   ').trimEnd()).join('\n')
}

/** An empty cell as `-`, so that every row has as many words as the header for awk and cut. */
function orDash (text: string): string {
  return text === '' ? '-' : text
}

/** `roster ls`: like `consul catalog services`, with the provider counts. */
export function servicesTable (services: readonly ServiceSummary[]): string {
  return table(['NAME', 'PROVIDERS', 'UP'], services.map((s) => [s.name, String(s.providers), String(s.up)]))
}

/** `roster ls SERVICE`. */
export function providersTable (providers: readonly Provider[], style: Style): string {
  return table(
    ['ID', 'STATE', 'ADDRESS', 'PROTOCOL', 'REASON', 'LAST SEEN', 'TAGS'],
    providers.map((p) => [p.id, stateCell(p.state, style), address(p), p.protocol, orDash(why(p)), seen(p.lastSeen, style.now), orDash(p.tags.join(','))])
  )
}

/** `roster get SERVICE ID`: one field a line. */
export function providerDetails (p: Provider, style: Style): string {
  const rows: Array<[string, Cell | string]> = [
    ['service', p.service],
    ['id', p.id],
    ['state', stateCell(p.state, style)],
    ['since', `${p.stateSince} (${age(Date.parse(p.stateSince), style.now)})`]
  ]
  if (why(p) !== '') rows.push(['reason', why(p)])
  if (p.detectedAfterMs !== undefined) rows.push(['detected after', `${p.detectedAfterMs} ms`])
  rows.push(['address', address(p)], ['protocol', p.protocol])
  if (p.heartbeat !== undefined) rows.push(['heartbeat', `${p.heartbeat} every ${p.heartbeatIntervalMs} ms`])
  if (p.check !== undefined) {
    const c = p.check
    rows.push(['check', c.type === 'ttl' ? `ttl ${c.ttlMs} ms` : `${c.type}${c.type === 'http' ? ` ${c.path}` : ''} every ${c.intervalMs} ms, timeout ${c.timeoutMs} ms`])
  }
  rows.push(['last seen', p.lastSeen === null ? 'never' : `${p.lastSeen} (${age(Date.parse(p.lastSeen), style.now)})`])
  rows.push(['tags', p.tags.join(',')])
  // One line per entry: a value is printed as is (made printable), after the key and '='.
  const meta = Object.entries(p.meta)
  if (meta.length === 0) rows.push(['meta', ''])
  for (const [i, [k, v]] of meta.entries()) rows.push([i === 0 ? 'meta' : '', `${k}=${v}`])
  if (p.deregisterAfterMs !== undefined) rows.push(['deregister after', `${p.deregisterAfterMs} ms down`])
  rows.push(['revision', String(p.revision)])
  const width = Math.max(...rows.map(([k]) => k.length))
  return rows.map(([k, v]) => {
    const cell = typeof v === 'string' ? { text: v } : v
    const text = printable(cell.text)
    return `${k.padEnd(width)}  ${cell.colour === undefined ? text : `\u001b[${cell.colour}m${text}\u001b[0m`}`.trimEnd()
  }).join('\n')
}

/**
 * `roster watch`, one line per message: `REVISION EVENT service/id state [reason[: detail]]`,
 * and for a snapshot a summary, `REVISION snapshot N providers, U up` (`snapshot (reset)` when it
 * replaces what came before).
 */
export function watchLine (m: WatchMessage, style: Style): string {
  if (m.type === 'snapshot') {
    const up = m.providers.filter((p) => p.state === 'up').length
    return `${m.revision} snapshot${m.reset === true ? ' (reset)' : ''} ${m.providers.length} provider${m.providers.length === 1 ? '' : 's'}, ${up} up`
  }
  const p = m.provider
  const state = style.colour ? `\u001b[${STATE_COLOUR[p.state]}m${p.state}\u001b[0m` : p.state
  const reason = why(p)
  return `${m.revision} ${m.event} ${p.service}/${p.id} ${state}${reason === '' ? '' : ` ${printable(reason)}`}`
}

/** The plain-text answer of a write. */
export function writeLine (what: string, service: string, id: string, revision: number | null, state?: ProviderState): string {
  const rev = revision === null ? 'already gone' : `revision ${revision}`
  return `${what} ${service}/${id}${state === undefined ? '' : ` (${state})`}, ${rev}`
}

function address (p: Provider): string {
  return `${p.host.includes(':') ? `[${p.host}]` : p.host}:${p.port}`
}

/** The reason, and the detail of a failed check after it. */
function why (p: Provider): string {
  if (p.reason === undefined) return ''
  return p.detail === undefined ? p.reason : `${p.reason}: ${p.detail}`
}

function seen (lastSeen: string | null, now: number): string {
  return lastSeen === null ? 'never' : age(Date.parse(lastSeen), now)
}

/** How long ago `at` was, in the largest whole unit: `3s ago`, `5m ago`, `2h ago`, `4d ago`. */
export function age (at: number, now: number): string {
  if (!Number.isFinite(at)) return '?'
  const s = Math.max(0, Math.floor((now - at) / 1000))
  if (s < 60) return `${s}s ago`
  if (s < 3600) return `${Math.floor(s / 60)}m ago`
  if (s < 172_800) return `${Math.floor(s / 3600)}h ago`
  return `${Math.floor(s / 86_400)}d ago`
}
