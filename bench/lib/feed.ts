// One real WebSocket client on Roster's /v1/watch, as a user's would be: it keeps every
// provider's state from the snapshot and the events, and stamps each frame the moment its
// 'message' handler runs (before parsing), which is when a user's code could act on it.
import WebSocket from 'ws'
import { now } from './children.js'
import { withTimeout } from './processes.js'

export interface FeedProvider { id: string, state: string, stateSince: string, lastSeen: string | null, reason?: string }
export interface FeedMessage {
  type: 'snapshot' | 'event'
  revision: number
  event?: string
  reset?: boolean
  providers?: FeedProvider[]
  provider?: FeedProvider
}
export interface FeedArrival { msg: FeedMessage, at: number }

interface Waiter { match: (m: FeedMessage) => boolean, resolve: (a: FeedArrival) => void, reject: (e: Error) => void }

export interface Feed {
  /** Every provider's state as the feed has told it. */
  readonly states: ReadonlyMap<string, string>
  readonly received: number
  /** Starts waiting now (call it before the action) for the first later frame that matches. */
  expect: (match: (m: FeedMessage) => boolean, timeoutMs: number, what: string) => Promise<FeedArrival>
  /** Called for every frame, after the waiters (to count transitions nobody asked for). */
  onMessage: (fn: (a: FeedArrival) => void) => void
  /** Resolves when `pred(states)` holds (checked on every frame). */
  until: (pred: (states: ReadonlyMap<string, string>) => boolean, timeoutMs: number, what: () => string) => Promise<void>
  close: () => void
}

export async function openFeed (httpUrl: string, query: string): Promise<Feed> {
  const ws = new WebSocket(`${httpUrl.replace(/^http/, 'ws')}/v1/watch${query}`)
  const states = new Map<string, string>()
  const waiters = new Set<Waiter>()
  const listeners: Array<(a: FeedArrival) => void> = []
  const recent: string[] = []
  let received = 0
  let closed: string | null = null

  ws.on('message', (data) => {
    const at = now()
    const text = data.toString()
    const msg = JSON.parse(text) as FeedMessage
    received++
    recent.push(text.slice(0, 300))
    if (recent.length > 5) recent.shift()
    if (msg.type === 'snapshot') {
      if (msg.reset === true) states.clear()
      for (const p of msg.providers ?? []) states.set(p.id, p.state)
    } else if (msg.provider !== undefined) {
      if (msg.event === 'deregistered') states.delete(msg.provider.id)
      else states.set(msg.provider.id, msg.provider.state)
    }
    for (const w of waiters) {
      if (w.match(msg)) { waiters.delete(w); w.resolve({ msg, at }) }
    }
    for (const fn of listeners) fn({ msg, at })
  })
  ws.on('close', (code, reason) => {
    closed = `closed ${code} ${reason.toString()}`
    for (const w of waiters) w.reject(new Error(`the WebSocket feed ${closed}`))
    waiters.clear()
  })
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('error', reject)
  })
  ws.on('error', () => {}) // reported through 'close'

  function expect (match: (m: FeedMessage) => boolean, timeoutMs: number, what: string | (() => string)): Promise<FeedArrival> {
    let waiter: Waiter | undefined
    const p = new Promise<FeedArrival>((resolve, reject) => {
      waiter = { match, resolve, reject }
      if (closed !== null) reject(new Error(`the WebSocket feed ${closed}`))
      else waiters.add(waiter)
    })
    const timed = withTimeout(p, timeoutMs, () => `${typeof what === 'string' ? what : what()}: no matching WebSocket frame within ${timeoutMs} ms; last frames: ${recent.join(' | ') || '(none)'}`)
      .finally(() => { if (waiter !== undefined) waiters.delete(waiter) })
    timed.catch(() => {}) // awaited by the caller
    return timed
  }

  return {
    states,
    get received () { return received },
    expect,
    onMessage: (fn) => { listeners.push(fn) },
    async until (pred, timeoutMs, what) {
      if (pred(states)) return
      await expect(() => pred(states), timeoutMs, what)
    },
    close: () => { ws.terminate() }
  }
}
