// README.md's "Errors" table is the error catalogue (server/protocol/error-codes.ts), row for row:
// the table must equal the catalogue's rendering, so that a new code, a changed status or a
// reworded meaning cannot reach one and not the other. And every ROSTER_ERR_* code the sources
// and the documents name must be in the catalogue: a code made up in one file fails here.
//
// Rewrite the README's table after changing the catalogue:
//   ROSTER_WRITE_ERRORS=1 npx vitest run test/docs/errors.test.ts
import { readdir, readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { Errors, type ErrorEntry } from '../../server/protocol/error-codes.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const README = path.join(ROOT, 'README.md')
const HEADING = '## Errors'
const CATALOGUE: readonly ErrorEntry[] = Object.values(Errors)

function statusText (status: ErrorEntry['status']): string {
  if (status === null) return '–'
  return typeof status === 'number' ? String(status) : status.join(' or ')
}

/** The table as the README shows it: by code, so that a reader with a code in hand finds it. */
function renderTable (): string {
  const rows = [...CATALOGUE]
    .sort((a, b) => a.code.localeCompare(b.code))
    .map((e) => `| \`${e.code}\` | ${statusText(e.status)} | ${e.meaning} |`)
  return ['| code | status | meaning |', '|---|---|---|', ...rows].join('\n')
}

/** The first table after the "Errors" heading: its lines, and where they are in the file. */
function findTable (text: string): { start: number, end: number } {
  const heading = text.indexOf(`\n${HEADING}\n`)
  if (heading === -1) throw new Error(`README.md has no "${HEADING}" section`)
  const start = text.indexOf('\n|', heading) + 1
  if (start === 0) throw new Error(`README.md's "${HEADING}" section has no table`)
  let end = start
  while (text.startsWith('|', end)) {
    const next = text.indexOf('\n', end)
    end = next === -1 ? text.length : next + 1
  }
  return { start, end: text[end - 1] === '\n' ? end - 1 : end }
}

async function filesUnder (dir: string, ext: RegExp): Promise<string[]> {
  const entries = await readdir(path.join(ROOT, dir), { recursive: true, withFileTypes: true })
  return entries.filter((e) => e.isFile() && ext.test(e.name)).map((e) => path.join(e.parentPath, e.name))
}

describe('the error catalogue', () => {
  it('has one entry per code, each meaning one line a table can hold', () => {
    const codes = CATALOGUE.map((e) => e.code)
    expect(new Set(codes).size).toBe(codes.length)
    for (const e of CATALOGUE) {
      expect(e.code, e.code).toMatch(/^ROSTER_ERR_[A-Z]+(?:_[A-Z]+)*$/)
      expect(e.meaning, e.code).not.toMatch(/[|\n]/)
      for (const s of e.status === null ? [] : [e.status].flat()) expect(s, e.code).toSatisfy((n: number) => Number.isInteger(n) && n >= 400 && n <= 599)
    }
  })

  it("is README.md's Errors table", async () => {
    const rendered = renderTable()
    if (process.env.ROSTER_WRITE_ERRORS === '1') {
      const text = await readFile(README, 'utf8')
      const { start, end } = findTable(text)
      await writeFile(README, text.slice(0, start) + rendered + text.slice(end))
    }
    const text = await readFile(README, 'utf8')
    const { start, end } = findTable(text)
    expect(text.slice(start, end), 'README.md\'s Errors table differs from server/protocol/error-codes.ts: regenerate it (see this test\'s header)').toBe(rendered)
  })

  it('holds every ROSTER_ERR_* code the server, its documents and the OpenAPI document name', async () => {
    const known = new Set(CATALOGUE.map((e) => e.code))
    const files = [
      ...await filesUnder('server', /\.(ts|md)$/),
      path.join(ROOT, 'README.md'),
      path.join(ROOT, 'ARCHITECTURE.md'),
      path.join(ROOT, 'openapi/openapi.json'),
      path.join(ROOT, 'openapi/asyncapi.json')
    ]
    const unknown: string[] = []
    for (const file of files) {
      // Whole codes only (`ROSTER_ERR_…` in a comment is none); ROSTER_ERR_CLIENT_* are the
      // TypeScript client's own (client/errors.ts), thrown in the caller's process.
      for (const [code] of (await readFile(file, 'utf8')).matchAll(/ROSTER_ERR_[A-Z]+(?:_[A-Z]+)*(?![A-Z_])/g)) {
        if (!known.has(code as ErrorEntry['code']) && !code.startsWith('ROSTER_ERR_CLIENT_')) unknown.push(`${path.relative(ROOT, file)}: ${code}`)
      }
    }
    expect(unknown).toEqual([])
  })
})
