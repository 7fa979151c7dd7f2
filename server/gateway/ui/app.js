// The dashboard's shell: it reads the registry through this gateway's REST API and its WebSocket
// feed, keeps it in the model (model.js), and draws it. The feed resumes with `since` after every
// close (with backoff) and a snapshot replaces the model. Provider data is user data: it only
// ever reaches the page as text (textContent, Text nodes, title), never as markup. The token the
// user types is sent in the Authorization header and as the feed's `bearer.` subprotocol, kept in
// sessionStorage (this tab only), and never put in a URL.
import { ago, applyFrame, backoffMs, createModel, parseFrame, selectProviders, serviceCounts, STATES } from './model.js'

const TOKEN_KEY = 'roster.token'
const FEED_SUBPROTOCOL = 'roster.v1'
/** Health is cheap (no registry data); every 2 s shows a lost leader within ~3 s of the gateway noticing. */
const HEALTH_INTERVAL_MS = 2000
/** Rows drawn at most: enough to scan, few enough to redraw in a frame. Filters narrow the rest. */
const ROW_LIMIT = 500

const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id))
const ui = {
  leader: $('leader'),
  gatewayRevision: $('gateway-revision'),
  revision: $('revision'),
  feed: $('feed'),
  notice: $('notice'),
  tokenForm: /** @type {HTMLFormElement} */ ($('token-form')),
  token: /** @type {HTMLInputElement} */ ($('token')),
  tokenForget: $('token-forget'),
  services: /** @type {HTMLTableElement} */ ($('services')).tBodies[0],
  providersTitle: $('providers-title'),
  stateFilter: $('state-filter'),
  protocolFilter: /** @type {HTMLSelectElement} */ ($('protocol-filter')),
  textFilter: /** @type {HTMLInputElement} */ ($('text-filter')),
  providers: /** @type {HTMLTableElement} */ ($('providers')).tBodies[0],
  providersMore: $('providers-more'),
  events: $('events')
}

let model = createModel()
let token = readStoredToken()
/** @type {{ service: string | null, state: string | null, protocol: string | null, text: string }} */
const filter = { service: null, state: null, protocol: null, text: '' }
/** Bumped by every restart (a new token): callbacks of an earlier session then do nothing. */
let session = 0
/** @type {WebSocket | null} */
let socket = null
let attempt = 0
let retryTimer = 0
let renderQueued = false

// ---- the feed -------------------------------------------------------------------------------

/** Asks REST first: a browser's WebSocket never says why an upgrade was refused, and REST does
 *  (401 without or with a bad token, 503 while the gateway has no registry yet). */
async function connect () {
  const mine = session
  setFeed('connecting', 'pending')
  let res
  try {
    res = await fetch('/v1/services', { headers: authHeaders(), cache: 'no-store' })
  } catch {
    if (mine === session) retry('the gateway does not answer')
    return
  }
  if (mine !== session) return
  if (res.status === 401) {
    needToken(await errorMessage(res))
    return
  }
  if (!res.ok) {
    retry(`${res.status}: ${await errorMessage(res)}`)
    return
  }
  await res.arrayBuffer()
  if (mine === session) openFeed(mine)
}

function openFeed (mine) {
  const url = new URL('/v1/watch', location.href)
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:'
  if (model.revision !== null) url.searchParams.set('since', String(model.revision))
  let ws
  try {
    ws = new WebSocket(url, token === '' ? [FEED_SUBPROTOCOL] : [`bearer.${token}`, FEED_SUBPROTOCOL])
  } catch {
    // A subprotocol may only hold token characters: a secret with a space or a comma cannot be one.
    needToken('this token has characters a token cannot have; paste it again')
    return
  }
  socket = ws
  ws.onopen = () => {
    if (mine !== session) return
    showNotice(null)
    setFeed('live', 'up')
  }
  ws.onmessage = (e) => {
    if (mine !== session) return
    let frame
    try {
      frame = parseFrame(String(e.data))
    } catch (err) {
      showNotice(`The gateway sent a frame the page cannot read (${err.message}); reconnecting.`)
      ws.close()
      return
    }
    attempt = 0
    if (applyFrame(model, frame, Date.now())) queueRender()
  }
  ws.onclose = (e) => {
    if (mine !== session) return
    socket = null
    // 1006: the connection dropped without a close frame (the gateway died, the network broke).
    retry(e.code === 1006 ? 'the connection dropped' : `closed with ${e.code}${e.reason === '' ? '' : `: ${e.reason}`}`)
  }
}

function retry (why) {
  const waitMs = backoffMs(attempt++, Math.random())
  setFeed(`reconnecting in ${(waitMs / 1000).toFixed(1)} s (${why})`, 'down')
  clearTimeout(retryTimer)
  retryTimer = setTimeout(() => { void connect() }, waitMs)
}

/** A new token (or none): the readable services may differ, so start over from a snapshot. */
function restart () {
  session++
  clearTimeout(retryTimer)
  socket?.close()
  socket = null
  model = createModel()
  attempt = 0
  queueRender()
  void connect()
}

function needToken (message) {
  setFeed('waiting for a token', 'down')
  showNotice(token === ''
    ? `This gateway requires a token (--auth on): ${message}. Enter a token with read scope above.`
    : `The token was refused: ${message}. Enter another one above.`)
  ui.tokenForm.classList.add('attention')
  ui.token.focus()
}

function authHeaders () {
  return token === '' ? {} : { authorization: `Bearer ${token}` }
}

async function errorMessage (res) {
  try {
    const body = await res.json()
    if (typeof body?.message === 'string') return body.message
  } catch {}
  return `HTTP ${res.status}`
}

async function pollHealth () {
  try {
    const res = await fetch('/v1/health', { cache: 'no-store' })
    const body = await res.json()
    const connected = body?.leader === 'connected'
    setText(ui.leader, connected ? 'connected' : 'unavailable', connected ? 'up' : 'down')
    setText(ui.gatewayRevision, Number.isSafeInteger(body?.revision) ? `at revision ${body.revision}` : '–')
  } catch {
    setText(ui.leader, 'gateway unreachable', 'down')
    setText(ui.gatewayRevision, '–')
  }
  setTimeout(() => { void pollHealth() }, HEALTH_INTERVAL_MS)
}

// ---- drawing --------------------------------------------------------------------------------

function queueRender () {
  if (renderQueued) return
  renderQueued = true
  requestAnimationFrame(() => {
    renderQueued = false
    render()
  })
}

/** Rows of unchanged providers are reused (applyFrame replaces a changed provider's object), and
 *  so are the log's items (keyed by their entry, since a reset may bring revisions back). */
let rowCache = new Map()
let logCache = new Map()

function render () {
  const now = Date.now()
  ui.revision.textContent = model.revision === null ? '–' : String(model.revision)

  const services = serviceCounts(model)
  if (filter.service !== null && !services.some((s) => s.name === filter.service)) filter.service = null
  const all = { name: null, total: model.providers.size, counts: { up: 0, down: 0, pending: 0, maintenance: 0 } }
  for (const s of services) for (const st of STATES) all.counts[st] += s.counts[st]
  ui.services.replaceChildren(...[all, ...services].map(serviceRow))

  const selected = filter.service === null ? all : services.find((s) => s.name === filter.service)
  ui.providersTitle.textContent = filter.service ?? 'All services'
  ui.stateFilter.replaceChildren(
    stateButton(null, `all ${selected.total}`),
    ...STATES.map((st) => stateButton(st, `${st} ${selected.counts[st]}`))
  )

  const rows = selectProviders(model, filter)
  const nextRows = new Map()
  const shown = rows.slice(0, ROW_LIMIT).map((p) => {
    const cached = rowCache.get(p.id)
    const tr = cached?.p === p ? cached.tr : providerRow(p, now)
    nextRows.set(p.id, { p, tr })
    return tr
  })
  rowCache = nextRows
  if (shown.length === 0) {
    const td = el('td', 'empty', model.revision === null ? 'waiting for the feed' : 'no provider matches')
    td.colSpan = 7
    shown.push(el('tr', null, td))
  }
  ui.providers.replaceChildren(...shown)
  ui.providersMore.hidden = rows.length <= ROW_LIMIT
  ui.providersMore.textContent = `Showing ${ROW_LIMIT} of ${rows.length}: narrow the filters to see the rest.`

  const nextLog = new Map()
  ui.events.replaceChildren(...model.log.map((entry) => {
    const li = logCache.get(entry) ?? logItem(entry)
    nextLog.set(entry, li)
    return li
  }))
  logCache = nextLog
}

function serviceRow (s) {
  const button = el('button', 'service', s.name ?? 'all services')
  button.type = 'button'
  button.addEventListener('click', () => {
    filter.service = s.name
    queueRender()
  })
  const tr = el('tr', s.name === filter.service ? 'selected' : null, el('td', null, button))
  tr.dataset.service = s.name ?? ''
  for (const st of STATES) tr.append(el('td', `n ${st}${s.counts[st] === 0 ? ' zero' : ''}`, String(s.counts[st])))
  return tr
}

function stateButton (state, label) {
  const b = el('button', state ?? 'all', label)
  b.type = 'button'
  b.setAttribute('aria-pressed', String(filter.state === state))
  b.addEventListener('click', () => {
    filter.state = state
    queueRender()
  })
  return b
}

function providerRow (p, now) {
  const tr = el('tr', `state-${stateClass(p.state)}`)
  tr.dataset.id = p.id
  const via = p.heartbeat ?? (p.check === undefined ? '' : `${p.check.type} check`)
  const why = el('td', 'why')
  if (p.reason !== undefined) why.append(el('span', 'reason', p.reason))
  if (p.detail !== undefined) why.append(el('span', 'detail', p.detail))
  if (p.detectedAfterMs !== undefined) why.append(el('span', 'detected', `detected after ${p.detectedAfterMs} ms`))
  tr.append(
    el('td', 'id', el('span', null, p.id), el('small', null, p.service)),
    el('td', 'state-cell', el('span', `state badge ${stateClass(p.state)}`, p.state), relative('since', p.stateSince, now, 'for ', '')),
    why,
    el('td', null, relative('last-seen', p.lastSeen, now, '', ' ago')),
    el('td', 'protocol', p.protocol),
    el('td', 'address', el('span', null, `${p.host}:${p.port}`), el('small', null, via)),
    el('td', 'labels',
      ...(p.tags ?? []).map((t) => el('span', 'chip tag', t)),
      ...Object.entries(p.meta ?? {}).map(([k, v]) => el('span', 'chip meta', `${k}=${v}`)))
  )
  return tr
}

function logItem (entry) {
  const li = el('li', `event-${stateClass(entry.state)}`,
    el('time', null, clock(entry.at)),
    el('span', 'revision', `r${entry.revision}`),
    el('span', `event badge ${stateClass(entry.state)}`, entry.event),
    el('span', 'who', `${entry.service}/${entry.id}`))
  const why = [entry.reason, entry.detail, entry.detectedAfterMs === undefined ? undefined : `after ${entry.detectedAfterMs} ms`]
    .filter((x) => x !== undefined && x !== '').join(' · ')
  if (why !== '') li.append(el('span', 'why', why))
  li.dataset.revision = String(entry.revision)
  return li
}

/** A span that says how long ago `iso` was, kept current by the ticker below. */
function relative (className, iso, now, prefix, suffix) {
  const span = el('small', `rel ${className}`)
  if (iso === null || iso === undefined) return span
  span.dataset.ts = iso
  span.dataset.prefix = prefix
  span.dataset.suffix = suffix
  span.title = iso
  span.textContent = prefix + ago(iso, now) + suffix
  return span
}

function tick () {
  const now = Date.now()
  for (const span of document.querySelectorAll('.rel[data-ts]')) {
    span.textContent = span.dataset.prefix + ago(span.dataset.ts, now) + span.dataset.suffix
  }
}

function stateClass (state) {
  return STATES.includes(state) ? state : 'unknown'
}

function clock (ms) {
  const d = new Date(ms)
  return `${d.toLocaleTimeString([], { hour12: false })}.${String(d.getMilliseconds()).padStart(3, '0')}`
}

/** An element whose children are elements or strings; strings become Text nodes, never markup. */
function el (tag, className, ...children) {
  const e = document.createElement(tag)
  if (className !== null && className !== undefined) e.className = className
  e.append(...children)
  return e
}

function setText (node, text, tone) {
  node.textContent = text
  node.className = tone ?? ''
}

function setFeed (text, tone) {
  setText(ui.feed, text, tone)
}

function showNotice (text) {
  ui.notice.hidden = text === null
  ui.notice.textContent = text ?? ''
}

// ---- the token ------------------------------------------------------------------------------

function readStoredToken () {
  try {
    return sessionStorage.getItem(TOKEN_KEY) ?? ''
  } catch {
    return ''
  }
}

function useToken (value) {
  token = value
  try {
    if (value === '') sessionStorage.removeItem(TOKEN_KEY)
    else sessionStorage.setItem(TOKEN_KEY, value)
  } catch {}
  showTokenState()
  restart()
}

function showTokenState () {
  ui.token.value = ''
  ui.token.placeholder = token === '' ? 'only with --auth on' : 'a token is in use (this tab only)'
  ui.tokenForget.hidden = token === ''
  ui.tokenForm.classList.remove('attention')
}

ui.tokenForm.addEventListener('submit', (e) => {
  e.preventDefault()
  useToken(ui.token.value.trim())
})
ui.tokenForget.addEventListener('click', () => useToken(''))
ui.protocolFilter.addEventListener('change', () => {
  filter.protocol = ui.protocolFilter.value === '' ? null : ui.protocolFilter.value
  queueRender()
})
ui.textFilter.addEventListener('input', () => {
  filter.text = ui.textFilter.value
  queueRender()
})

showTokenState()
queueRender()
setInterval(tick, 1000)
void pollHealth()
void connect()
