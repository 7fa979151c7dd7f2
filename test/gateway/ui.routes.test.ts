// The dashboard's static files over real HTTP from a listening gateway: what is served, with which
// content type, cache and security headers; 304 on a matching ETag; `/` redirects; --auth on
// leaves the files open but not the data; and no URL, however hostile, reaches another file.
import { readFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import fc from 'fast-check'
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildGateway } from '../../server/gateway/app.js'
import { createReplica } from '../../server/gateway/replica.js'
import { UI_CONTENT_SECURITY_POLICY } from '../../server/gateway/routes/ui.js'
import { createTokenTable } from '../../server/gateway/token-table.js'
import { noLeader } from './helpers.js'

const UI_DIR = new URL('../../server/gateway/ui/', import.meta.url)
const FILES = [
  { path: '/ui', file: 'index.html', type: 'text/html; charset=utf-8' },
  { path: '/ui/', file: 'index.html', type: 'text/html; charset=utf-8' },
  { path: '/ui/app.js', file: 'app.js', type: 'text/javascript; charset=utf-8' },
  { path: '/ui/model.js', file: 'model.js', type: 'text/javascript; charset=utf-8' },
  { path: '/ui/style.css', file: 'style.css', type: 'text/css; charset=utf-8' },
  { path: '/ui/favicon.svg', file: 'favicon.svg', type: 'image/svg+xml' }
]

let open: { app: FastifyInstance, base: string }
let authOn: { app: FastifyInstance, base: string }

async function listen (auth: boolean): Promise<{ app: FastifyInstance, base: string }> {
  const tokens = createTokenTable()
  // A leader's (empty) token list, so that --auth on answers 401 rather than 503 "not loaded".
  tokens.load(1, 1, [])
  const app = await buildGateway({ replica: createReplica(), leader: noLeader(), tokens }, { auth })
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, base: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}` }
}

beforeAll(async () => {
  open = await listen(false)
  authOn = await listen(true)
})

afterAll(async () => {
  await open?.app.close()
  await authOn?.app.close()
})

describe('the dashboard\'s files', () => {
  it.each(FILES)('$path is $file as $type, with no-cache, an ETag and the strict CSP', async ({ path, file, type }) => {
    const res = await fetch(`${open.base}${path}`)
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe(type)
    expect(Buffer.from(await res.arrayBuffer())).toEqual(await readFile(new URL(file, UI_DIR)))
    expect(res.headers.get('cache-control')).toBe('no-cache')
    expect(res.headers.get('etag')).toMatch(/^"[A-Za-z0-9_-]{22}"$/)
    expect(res.headers.get('content-security-policy')).toBe(UI_CONTENT_SECURITY_POLICY)
    expect(res.headers.get('x-content-type-options')).toBe('nosniff')
    expect(res.headers.get('referrer-policy')).toBe('no-referrer')
    expect(res.headers.get('x-frame-options')).toBe('DENY')
  })

  it('has a CSP without inline script or style, that connects only to its own origin', () => {
    const directives = Object.fromEntries(UI_CONTENT_SECURITY_POLICY.split('; ').map((d) => [d.split(' ')[0], d.split(' ').slice(1)]))
    expect(directives['default-src']).toEqual(["'none'"])
    expect(directives['script-src']).toEqual(["'self'"])
    expect(directives['style-src']).toEqual(["'self'"])
    expect(directives['connect-src']).toEqual(["'self'"])
    expect(directives['frame-ancestors']).toEqual(["'none'"])
  })

  it('answers 304 with no body to a matching If-None-Match (strong, weak, in a list or *), 200 otherwise', async () => {
    const first = await fetch(`${open.base}/ui/app.js`)
    await first.arrayBuffer()
    const etag = first.headers.get('etag') as string
    for (const header of [etag, `W/${etag}`, `"nope", ${etag}`, '*']) {
      const res = await fetch(`${open.base}/ui/app.js`, { headers: { 'if-none-match': header } })
      expect(res.status, header).toBe(304)
      expect(await res.text()).toBe('')
      expect(res.headers.get('etag')).toBe(etag)
    }
    const other = await fetch(`${open.base}/ui/app.js`, { headers: { 'if-none-match': '"something-else"' } })
    expect(other.status).toBe(200)
    expect((await other.text()).length).toBeGreaterThan(0)
  })

  it('answers HEAD with the headers and no body, and ignores query strings', async () => {
    const head = await fetch(`${open.base}/ui`, { method: 'HEAD' })
    expect(head.status).toBe(200)
    expect(head.headers.get('content-type')).toBe('text/html; charset=utf-8')
    expect(await head.text()).toBe('')
    const withQuery = await fetch(`${open.base}/ui?token=<script>alert(1)</script>`)
    expect(withQuery.status).toBe(200)
    expect(await withQuery.text()).toBe(await readFile(new URL('index.html', UI_DIR), 'utf8'))
  })

  it('redirects / to /ui (302)', async () => {
    const res = await fetch(`${open.base}/`, { redirect: 'manual' })
    expect(res.status).toBe(302)
    expect(res.headers.get('location')).toBe('/ui')
  })

  it('stays open with --auth on, while the data it reads needs a token', async () => {
    for (const { path } of FILES) expect((await fetch(`${authOn.base}${path}`)).status, path).toBe(200)
    expect((await fetch(`${authOn.base}/`, { redirect: 'manual' })).status).toBe(302)
    const data = await fetch(`${authOn.base}/v1/services`)
    expect(data.status).toBe(401)
    expect(((await data.json()) as { message: string }).message).toMatch(/bearer token is required/)
  })

  it('is not part of the OpenAPI document', async () => {
    const doc = await (await fetch(`${open.base}/openapi.json`)).json() as { paths: Record<string, unknown> }
    expect(Object.keys(doc.paths).filter((p) => p === '/' || p.startsWith('/ui'))).toEqual([])
  })
})

describe('hostile paths', () => {
  const PACKAGE_JSON_MARK = '"name": "roster"'

  it('reach no other file: traversal, encodings, case, NUL, doubled slashes', async () => {
    const paths = [
      '/ui/../package.json', '/ui/%2e%2e/package.json', '/ui/..%2fpackage.json', '/ui/%2e%2e%2f%2e%2e%2fpackage.json',
      '/ui/..%5cpackage.json', '/ui/ui-assets.ts', '/ui/index.html', '/ui/App.js', '/ui/app.js/', '/ui//app.js',
      '/ui/app.js%00.html', '/ui/app.js%2f', '/ui/.%2fapp.js', '/ui/%2Fetc%2Fpasswd', '/ui/model.d.ts', '/UI', '/ui/app.js::$DATA'
    ]
    for (const path of paths) {
      const res = await open.app.inject({ method: 'GET', url: path })
      expect([400, 404], `${path}: ${res.statusCode}`).toContain(res.statusCode)
      expect(res.body).not.toContain(PACKAGE_JSON_MARK)
    }
  })

  it('any path under /ui/ answers one of the dashboard\'s files or a 4xx JSON error (generated, whole Unicode)', async () => {
    const bodies = await Promise.all(FILES.map(async (f) => await readFile(new URL(f.file, UI_DIR), 'utf8')))
    await fc.assert(fc.asyncProperty(fc.string({ unit: 'binary', maxLength: 80 }), fc.boolean(), async (tail, encode) => {
      // Unencoded, the client's URL parser may normalise a tail into a served path ('.', a
      // trailing control character): then the answer must be that file, and nothing else.
      const res = await open.app.inject({ method: 'GET', url: `/ui/${encode ? encodeURIComponent(tail) : tail}` })
      if (res.statusCode === 200) {
        expect(bodies).toContain(res.body)
        return
      }
      expect([400, 404]).toContain(res.statusCode)
      expect(res.headers['content-type']).toMatch(/^application\/json/)
      expect(res.body).not.toContain(PACKAGE_JSON_MARK)
    }), { numRuns: 300 })
  })
})
