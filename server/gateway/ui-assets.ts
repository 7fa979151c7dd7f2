// The dashboard's static files (server/gateway/ui/), read into memory once when a gateway is
// built, each with its content type and a strong ETag. A fixed list: a request can only ever name
// one of these, so no URL can make the gateway read another file. The files carry no registry
// data; the page fetches that itself, with the token its user types (routes/ui.ts).
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'

/** Two levels below the repository root, like server/store/migrate.ts: from this source file and
 *  from its bundled copy in dist/server/ alike, '../../' is the root (bin/roster.js). */
const UI_DIR = fileURLToPath(new URL('../../server/gateway/ui/', import.meta.url))

export interface UiAsset {
  body: Buffer
  contentType: string
  etag: string
}

/** URL path (under /ui/) → file in UI_DIR and its content type. */
const FILES = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'model.js': 'text/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8',
  'favicon.svg': 'image/svg+xml'
} as const

export type UiFileName = keyof typeof FILES
export const UI_FILE_NAMES = Object.keys(FILES) as UiFileName[]

export async function loadUiAssets (dir: string = UI_DIR): Promise<Map<UiFileName, UiAsset>> {
  const assets = new Map<UiFileName, UiAsset>()
  for (const name of UI_FILE_NAMES) {
    const body = await readFile(`${dir}/${name}`)
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`
    assets.set(name, { body, contentType: FILES[name], etag })
  }
  return assets
}
