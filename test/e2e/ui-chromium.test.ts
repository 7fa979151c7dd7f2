// The dashboard at /ui driven in headless Chromium (Debian's, through playwright-core) against
// `roster leader|worker|gateway` child processes and real heartbeat processes: a provider shown
// `up`, SIGKILLed, and `down` on the page within one second without a reload; hostile provider
// text shown literally and never run; the feed resumed with `since` after its gateway is killed,
// and replaced on a `reset: true` snapshot; --auth on with no, a wrong and a good token.
// Screenshots go to test-artifacts/ui/ (gitignored). Chromium is not something `npm install`
// brings, so on a machine without it these tests are skipped (the run's summary says so); with
// ROSTER_TEST_CHROMIUM set, as `.ci/run` sets it after installing Chromium, a missing binary is
// a failure, never a skip.
import { existsSync, mkdirSync, statSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { NEEDS_CHROMIUM } from '../helpers/requirements.js'
import { freeLeaderEndpoint, freePort } from '../../harness/ports.js'
import { type RosterProcess, spawnRoster, waitForLeader, waitForReady } from '../../harness/roster-process.js'
import { storageFlags, testStorage } from '../helpers/cluster.js'
import { cleanUpAfterEachTest } from '../helpers/e2e-cleanup.js'
import { spawnEmitter } from '../helpers/emitters.js'
import { waitFor } from '../../harness/wait-for.js'

// The page's globals, for the functions this file runs inside Chromium (tsconfig has no DOM lib).
declare const document: any
declare const window: any
declare const sessionStorage: any
declare const localStorage: any

/** Debian's Chromium (`apt-get install chromium`); ROSTER_TEST_CHROMIUM names another binary. */
const CHROMIUM = process.env.ROSTER_TEST_CHROMIUM ?? '/usr/bin/chromium'
const skipped = process.env.ROSTER_TEST_CHROMIUM === undefined && !existsSync(CHROMIUM)
const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/ui/', import.meta.url))
const INTERVAL_MS = 100
const NOBODY = 'tcp://127.0.0.1:9'
const BOOTSTRAP = 'bootstrap-secret-for-the-dashboard-test-0123456789'
/** Node and the page read the same system clock, so their Date.now() values compare directly. */
const KILL_TO_PAGE_BOUND_MS = 1000

const HOSTILE_TAGS = ['<img src=x onerror="window.__pwned=\'tag\'">', '<script>window.__pwned="script"</script>', '"><svg onload=alert(1)>']
const HOSTILE_META = { '<b onmouseover=alert(2)>key</b>': '<img src=x onerror=alert(3)>', note: '</td></tr><tr><td>injected' }
const HOSTILE_REASON = '<iframe src="javascript:alert(4)"></iframe> & <u>reason</u>'

cleanUpAfterEachTest()

let browser: Browser

beforeAll(async () => {
  if (skipped) return
  if (!existsSync(CHROMIUM)) {
    throw new Error(`the dashboard tests need Chromium at ${CHROMIUM}: apt-get install chromium (.ci/run does), or set ROSTER_TEST_CHROMIUM`)
  }
  browser = await chromium.launch({ executablePath: CHROMIUM })
  mkdirSync(ARTIFACTS, { recursive: true })
})

afterAll(async () => {
  await browser?.close()
})

interface Cluster { url: string, port: number, bind: string, gateway: RosterProcess }

async function startCluster (opts: { auth?: boolean } = {}): Promise<Cluster> {
  const storage = await testStorage('roster-ui-')
  const bind = await freeLeaderEndpoint()
  spawnRoster(['leader', '--bind', bind, ...storageFlags(storage)], opts.auth === true ? { ROSTER_BOOTSTRAP_TOKEN: BOOTSTRAP } : {})
  spawnRoster(['worker', '--leader', bind])
  const port = await freePort()
  const gateway = await startGateway(bind, port, opts.auth === true)
  return { url: `http://127.0.0.1:${port}`, port, bind, gateway }
}

/** A `roster gateway` on `port` (a fixed one, so that a restarted gateway is the page's origin again). */
async function startGateway (bind: string, port: number, auth = false): Promise<RosterProcess> {
  const proc = spawnRoster(['gateway', '--leader', bind, '--port', String(port), ...(auth ? ['--auth', 'on'] : [])])
  const url = `http://127.0.0.1:${port}`
  try {
    await waitForLeader(url, 30_000)
    if (auth) {
      await waitFor(async () => (await call('GET', `${url}/v1/services`, { token: BOOTSTRAP })).status === 200, { timeoutMs: 30_000, what: 'the bootstrap token accepted' })
    } else {
      await waitForReady(url, 30_000)
    }
  } catch (err) {
    throw new Error(`${(err as Error).message}\ngateway: ${proc.output()}`)
  }
  return proc
}

async function call (method: string, url: string, opts: { token?: string, body?: unknown } = {}): Promise<{ status: number, body: any }> {
  const headers: Record<string, string> = {}
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`
  if (opts.body !== undefined) headers['content-type'] = 'application/json'
  const res = await fetch(url, { method, headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body) })
  const text = await res.text()
  return { status: res.status, body: text === '' ? undefined : JSON.parse(text) }
}

async function register (url: string, service: string, id: string, spec: Record<string, unknown>, token?: string): Promise<void> {
  const res = await call('PUT', `${url}/v1/services/${service}/providers/${id}`, { token, body: { host: '127.0.0.1', port: 8080, protocol: 'http', ...spec } })
  expect(res.status, JSON.stringify(res.body)).toBe(201)
}

interface Dashboard {
  page: Page
  context: BrowserContext
  pageErrors: string[]
  consoleErrors: string[]
  dialogs: string[]
  requests: string[]
  sockets: Array<{ url: string, frames: any[] }>
}

/** Opens `/` (which redirects to /ui) in a fresh browser context and records what the page does. */
async function openDashboard (url: string): Promise<Dashboard> {
  const context = await browser.newContext({ viewport: { width: 1500, height: 800 } })
  const page = await context.newPage()
  const d: Dashboard = { page, context, pageErrors: [], consoleErrors: [], dialogs: [], requests: [], sockets: [] }
  page.on('pageerror', (err) => d.pageErrors.push(err.message))
  page.on('console', (m) => { if (m.type() === 'error') d.consoleErrors.push(m.text()) })
  page.on('dialog', (dialog) => { d.dialogs.push(dialog.message()); void dialog.dismiss() })
  page.on('request', (r) => d.requests.push(r.url()))
  page.on('websocket', (ws) => {
    const s = { url: ws.url(), frames: [] as any[] }
    d.sockets.push(s)
    ws.on('framereceived', (f) => s.frames.push(JSON.parse(String(f.payload))))
  })
  await page.goto(`${url}/`)
  expect(page.url()).toBe(`${url}/ui`)
  return d
}

async function stateOf (page: Page, id: string): Promise<string | null> {
  return await page.evaluate((id) => document.querySelector(`#providers tr[data-id="${id}"] .state`)?.textContent ?? null, id)
}

async function waitForState (page: Page, id: string, state: string | null, timeoutMs = 15_000): Promise<void> {
  await page.waitForFunction(([id, state]) => (document.querySelector(`#providers tr[data-id="${id}"] .state`)?.textContent ?? null) === state,
    [id, state] as const, { timeout: timeoutMs })
}

async function shownIds (page: Page): Promise<string[]> {
  return await page.evaluate(() => [...document.querySelectorAll('#providers tbody tr[data-id]')].map((tr: any) => tr.dataset.id))
}

async function textOf (page: Page, selector: string): Promise<string> {
  return await page.evaluate((s) => document.querySelector(s)?.textContent ?? '', selector)
}

async function screenshot (page: Page, name: string): Promise<void> {
  const path = `${ARTIFACTS}${name}`
  await page.screenshot({ path, fullPage: true })
  expect(statSync(path).size).toBeGreaterThan(10_000)
}

function cspViolations (d: Dashboard): string[] {
  return d.consoleErrors.filter((e) => /Content Security Policy/i.test(e))
}

describe('the dashboard at /ui, in Chromium', () => {
  it('shows a provider up, then down within 1 s of its SIGKILL without a reload; hostile text stays text', async ({ skip }) => {
    skip(skipped, NEEDS_CHROMIUM)
    const c = await startCluster()
    const emitter = await spawnEmitter({ id: 'orders-1', intervalMs: INTERVAL_MS })
    await register(c.url, 'orders', 'orders-1', { heartbeat: emitter.endpoint, heartbeatIntervalMs: INTERVAL_MS, tags: ['blue', 'eu-west-1a'], meta: { version: '1.4.2' } })
    await register(c.url, 'payments', 'evil-1', { protocol: 'rpc', heartbeat: NOBODY, tags: HOSTILE_TAGS, meta: HOSTILE_META })
    const hold = await call('PUT', `${c.url}/v1/services/payments/providers/evil-1/maintenance`, { body: { enabled: true, reason: HOSTILE_REASON } })
    expect(hold.status).toBe(200)

    const d = await openDashboard(c.url)
    try {
      const { page } = d
      await waitForState(page, 'orders-1', 'up')
      await waitForState(page, 'evil-1', 'maintenance')
      expect(await textOf(page, '#services tr[data-service="orders"] td.n.up')).toBe('1')
      expect(await textOf(page, '#services tr[data-service="payments"] td.n.maintenance')).toBe('1')
      expect(await textOf(page, '#providers tr[data-id="orders-1"] .labels')).toBe('blueeu-west-1aversion=1.4.2')
      expect(await textOf(page, '#providers tr[data-id="orders-1"] .protocol')).toBe('http')

      // Hostile text: shown character for character, and nothing in it became an element or ran.
      const evil = await page.evaluate(() => {
        const row = document.querySelector('#providers tr[data-id="evil-1"]')
        return {
          chips: [...row.querySelectorAll('.chip')].map((e: any) => e.textContent),
          reason: row.querySelector('.why .reason')?.textContent,
          cells: row.children.length,
          injected: document.querySelectorAll('#providers img, #providers svg, #providers script, #providers iframe, #providers b, #providers u, #events img').length,
          pwned: window.__pwned ?? null
        }
      })
      expect(evil).toEqual({
        chips: [...HOSTILE_TAGS, ...Object.entries(HOSTILE_META).map(([k, v]) => `${k}=${v}`)],
        reason: HOSTILE_REASON,
        cells: 7,
        injected: 0,
        pwned: null
      })

      // From the kill to the DOM change, timed in the page by a MutationObserver; bounded wait.
      await page.evaluate(() => {
        window.__downAt = null
        const check = (): void => {
          if (window.__downAt === null && document.querySelector('#providers tr[data-id="orders-1"] .state')?.textContent === 'down') window.__downAt = Date.now()
        }
        new window.MutationObserver(check).observe(document.body, { subtree: true, childList: true, characterData: true })
      })
      const killedAt = Date.now()
      emitter.kill('SIGKILL')
      const downAt = await (await page.waitForFunction(() => window.__downAt, undefined, { timeout: 5000, polling: 'raf' })).jsonValue() as number
      const elapsedMs = downAt - killedAt
      expect(elapsedMs, `down on the page ${elapsedMs} ms after the SIGKILL`).toBeLessThan(KILL_TO_PAGE_BOUND_MS)
      expect(elapsedMs).toBeGreaterThanOrEqual(0)

      expect(await textOf(page, '#providers tr[data-id="orders-1"] .why .reason')).toBe('disconnected')
      expect(await textOf(page, '#providers tr[data-id="orders-1"] .why .detected')).toMatch(/^detected after \d+ ms$/)
      expect(await textOf(page, '#providers tr[data-id="orders-1"] .last-seen')).toMatch(/^\d+ s ago$/)
      expect(await textOf(page, '#providers tr[data-id="orders-1"] .since')).toMatch(/^for \d+ s$/)
      expect(await textOf(page, '#events li:first-child .event')).toBe('down')
      expect(await textOf(page, '#events li:first-child .who')).toBe('orders/orders-1')
      expect(await textOf(page, '#events li:first-child .why')).toMatch(/^disconnected · after \d+ ms$/)
      expect(await textOf(page, '#services tr[data-service="orders"] td.n.down')).toBe('1')

      // The revision shown is the registry's; the leader link comes from /v1/health.
      const health = await call('GET', `${c.url}/v1/health`)
      await page.waitForFunction((r) => document.querySelector('#revision')?.textContent === String(r), health.body.revision, { timeout: 5000 })
      await page.waitForFunction(() => document.querySelector('#leader')?.textContent === 'connected', undefined, { timeout: 5000 })
      expect(await textOf(page, '#feed')).toBe('live')
      await screenshot(page, 'dashboard-down.png')

      // Filters: state, text, service.
      await page.click('#state-filter button.down')
      await waitFor(async () => (await shownIds(page)).join() === 'orders-1', { what: 'only the down provider' })
      await page.click('#state-filter button.all')
      await page.fill('#text-filter', 'eu-west')
      await waitFor(async () => (await shownIds(page)).join() === 'orders-1', { what: 'the text filter' })
      await page.fill('#text-filter', '')
      await page.click('#services tr[data-service="payments"] button')
      await waitFor(async () => (await shownIds(page)).join() === 'evil-1', { what: 'the service filter' })
      expect(await textOf(page, '#providers-title')).toBe('payments')
      await page.selectOption('#protocol-filter', 'http')
      await waitFor(async () => (await textOf(page, '#providers tbody')) === 'no provider matches', { what: 'the protocol filter' })

      expect(d.dialogs).toEqual([])
      expect(d.pageErrors).toEqual([])
      expect(cspViolations(d)).toEqual([])
      expect(d.sockets.map((s) => s.url)).toEqual([`${c.url.replace('http', 'ws')}/v1/watch`])
    } finally {
      await d.context.close()
    }
  }, 120_000)

  it('resumes with since after its gateway is killed, and replaces everything on a reset, without a reload', async ({ skip }) => {
    skip(skipped, NEEDS_CHROMIUM)
    const c = await startCluster()
    const e1 = await spawnEmitter({ id: 'orders-1', intervalMs: INTERVAL_MS })
    const e2 = await spawnEmitter({ id: 'orders-2', intervalMs: INTERVAL_MS })
    await register(c.url, 'orders', 'orders-1', { heartbeat: e1.endpoint, heartbeatIntervalMs: INTERVAL_MS })
    await register(c.url, 'orders', 'orders-2', { heartbeat: e2.endpoint, heartbeatIntervalMs: INTERVAL_MS })

    const d = await openDashboard(c.url)
    try {
      const { page } = d
      await waitForState(page, 'orders-1', 'up')
      await waitForState(page, 'orders-2', 'up')
      await page.evaluate(() => { window.__sameDocument = true })

      // The gateway dies; meanwhile orders-2 dies too. The page must learn it from the replay.
      const seen = Number(await textOf(page, '#revision'))
      await c.gateway.kill('SIGKILL')
      await page.waitForFunction(() => document.querySelector('#feed')?.textContent.startsWith('reconnecting'), undefined, { timeout: 5000 })
      e2.kill('SIGKILL')
      await e2.exited
      const restarted = await startGateway(c.bind, c.port)
      await waitForState(page, 'orders-2', 'down', 40_000)
      expect(await stateOf(page, 'orders-1')).toBe('up')
      const resumed = d.sockets.at(-1) as Dashboard['sockets'][number]
      expect(resumed.url).toBe(`${c.url.replace('http', 'ws')}/v1/watch?since=${seen}`)
      expect(resumed.frames[0]).toMatchObject({ type: 'event', event: 'down', provider: { id: 'orders-2' } })
      expect(resumed.frames.some((f) => f.type === 'snapshot')).toBe(false)

      // Now a gateway of another registry, behind the page's revision: after the gateway's wait
      // for it (2 s) the page gets a `reset: true` snapshot and must drop what it had.
      const atReset = Number(await textOf(page, '#revision'))
      await restarted.kill('SIGKILL')
      const other = await testStorage('roster-ui-other-')
      const otherBind = await freeLeaderEndpoint()
      spawnRoster(['leader', '--bind', otherBind, ...storageFlags(other)])
      await startGateway(otherBind, c.port)
      await register(c.url, 'inventory', 'fresh-1', { heartbeat: NOBODY })
      await waitForState(page, 'fresh-1', 'pending', 40_000)
      await waitForState(page, 'orders-1', null)
      expect(await shownIds(page)).toEqual(['fresh-1'])
      const last = d.sockets.at(-1) as Dashboard['sockets'][number]
      expect(last.url).toBe(`${c.url.replace('http', 'ws')}/v1/watch?since=${atReset}`)
      expect(last.frames[0]).toMatchObject({ type: 'snapshot', reset: true })
      const health = await call('GET', `${c.url}/v1/health`)
      await page.waitForFunction((r) => document.querySelector('#revision')?.textContent === String(r), health.body.revision, { timeout: 5000 })
      expect(await page.evaluate(() => window.__sameDocument)).toBe(true)
      expect(d.pageErrors).toEqual([])
      await screenshot(page, 'dashboard-after-reset.png')
    } finally {
      await d.context.close()
    }
  }, 120_000)

  it('with --auth on, asks for a token, refuses a bad one, and runs live on a good one it never puts in a URL', async ({ skip }) => {
    skip(skipped, NEEDS_CHROMIUM)
    const c = await startCluster({ auth: true })
    const created = await call('POST', `${c.url}/v1/tokens`, { token: BOOTSTRAP, body: { name: 'dashboard', scopes: ['read:orders'] } })
    expect(created.status).toBe(201)
    const secret = created.body.secret as string
    const emitter = await spawnEmitter({ id: 'orders-1', intervalMs: INTERVAL_MS })
    await register(c.url, 'orders', 'orders-1', { heartbeat: emitter.endpoint, heartbeatIntervalMs: INTERVAL_MS }, BOOTSTRAP)
    await register(c.url, 'payments', 'pay-1', { heartbeat: NOBODY }, BOOTSTRAP)

    const d = await openDashboard(c.url)
    try {
      const { page } = d
      await page.waitForFunction(() => document.querySelector('#feed')?.textContent === 'waiting for a token', undefined, { timeout: 10_000 })
      expect(await textOf(page, '#notice')).toBe('This gateway requires a token (--auth on): a bearer token is required: send Authorization: Bearer <secret>. Enter a token with read scope above.')
      expect(await shownIds(page)).toEqual([])
      expect(d.sockets).toEqual([])
      await screenshot(page, 'dashboard-auth-needed.png')

      await page.fill('#token', 'roster_thisIsNotAValidTokenAtAll0123456789abcdefgh')
      await page.click('#token-form button[type="submit"]')
      await page.waitForFunction(() => document.querySelector('#notice')?.textContent.startsWith('The token was refused'), undefined, { timeout: 10_000 })
      expect(await textOf(page, '#notice')).toBe('The token was refused: unknown or revoked token. Enter another one above.')

      await page.fill('#token', secret)
      await page.press('#token', 'Enter')
      await waitForState(page, 'orders-1', 'up')
      expect(await page.evaluate(() => document.querySelector('#notice').hidden)).toBe(true)
      // read:orders: payments is not the token's to see, on REST or the feed.
      expect(await shownIds(page)).toEqual(['orders-1'])
      expect(await page.evaluate(() => [...document.querySelectorAll('#services tbody tr')].map((tr: any) => tr.dataset.service))).toEqual(['', 'orders'])

      const killedAt = Date.now()
      emitter.kill('SIGKILL')
      await waitForState(page, 'orders-1', 'down', 5000)
      expect(Date.now() - killedAt).toBeLessThan(5000)

      // The secret is in this tab's sessionStorage and nowhere else: no URL, no cookie, no localStorage.
      const stored = await page.evaluate(() => ({ session: sessionStorage.getItem('roster.token'), local: localStorage.length, cookie: document.cookie, url: window.location.href }))
      expect(stored).toEqual({ session: secret, local: 0, cookie: '', url: `${c.url}/ui` })
      const urls = [...d.requests, ...d.sockets.map((s) => s.url)]
      expect(urls.filter((u) => u.includes(secret) || u.includes('roster_'))).toEqual([])
      expect(d.sockets.length).toBeGreaterThan(0)
      await screenshot(page, 'dashboard-auth-live.png')

      await page.click('#token-forget')
      await page.waitForFunction(() => document.querySelector('#feed')?.textContent === 'waiting for a token', undefined, { timeout: 10_000 })
      expect(await page.evaluate(() => sessionStorage.getItem('roster.token'))).toBeNull()
      expect(await shownIds(page)).toEqual([])
      expect(d.pageErrors).toEqual([])
      expect(cspViolations(d)).toEqual([])
    } finally {
      await d.context.close()
    }
  }, 120_000)
})
