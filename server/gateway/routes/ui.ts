// GET /ui: the live dashboard, static files (server/gateway/ui/) that every gateway serves from
// memory. They are open with --auth on too, since they hold no registry data: the page reads the
// registry itself through the REST API and the feed with the token its user types. Every answer
// carries a strict Content-Security-Policy (scripts and connections to this origin only, no
// inline script or style), so that provider data the page shows can never run as code.
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { loadUiAssets, type UiAsset, type UiFileName } from '../ui-assets.js'

export const UI_PATH = '/ui'

/** 'self' covers ws: and wss: to the same host and port (CSP Level 3), which the feed needs.
 *  Images only from this origin; nothing may frame the page, post a form or change its base. */
export const UI_CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'"
].join('; ')

/** The names have no content hash, so a browser must ask again each time (a 304 when nothing
 *  changed): a gateway upgraded in place then never serves a new page with an old script. */
const CACHE_CONTROL = 'no-cache'

const SECURITY_HEADERS = {
  'content-security-policy': UI_CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin'
} as const

/** Hidden from the OpenAPI document (it describes the JSON API) and open with --auth on. */
const ROUTE_CONFIG = { schema: { hide: true }, config: { access: 'open' as const } }

export const uiRoutes: FastifyPluginAsync = async (app) => {
  const assets = await loadUiAssets()

  function serve (name: UiFileName) {
    const asset = assets.get(name) as UiAsset
    return async (req: FastifyRequest, reply: FastifyReply) => {
      void reply.headers(SECURITY_HEADERS).header('cache-control', CACHE_CONTROL).header('etag', asset.etag)
      if (matchesEtag(req.headers['if-none-match'], asset.etag)) return reply.status(304).send()
      return reply.type(asset.contentType).send(asset.body)
    }
  }

  // `/` has nothing else to show; a temporary redirect, so that a later root page is not cached away.
  app.get('/', ROUTE_CONFIG, async (_req, reply) => reply.redirect(UI_PATH, 302))
  // Both spellings: the page names its files by absolute path, so either one works.
  app.get(UI_PATH, ROUTE_CONFIG, serve('index.html'))
  app.get(`${UI_PATH}/`, ROUTE_CONFIG, serve('index.html'))
  for (const name of ['app.js', 'model.js', 'style.css', 'favicon.svg'] as const) app.get(`${UI_PATH}/${name}`, ROUTE_CONFIG, serve(name))
}

/** If-None-Match: `*`, or a list of entity tags (weak ones compare by their opaque part, RFC 9110 §13.1.2). */
function matchesEtag (header: string | undefined, etag: string): boolean {
  if (header === undefined) return false
  return header.split(',').some((t) => {
    const tag = t.trim()
    return tag === '*' || tag.replace(/^W\//, '') === etag
  })
}
