// README.md › Configuration is written for people (a row may join two flags, `all` stands for
// every role, the meaning column is prose), so it is checked rather than generated: every flag
// of server/cli/config.ts has a row, and each row's flags, environment names, default and roles
// are the definition's. A flag added, renamed, moved to another role or given a new default
// fails here until the README says so too.
import { readFile } from 'node:fs/promises'
import { KindGuard } from '@sinclair/typebox'
import { describe, expect, it } from 'vitest'
import { ALL_ROLES, ENVIRONMENT_ONLY, SETTINGS } from '../../server/cli/config.js'

const README = await readFile(new URL('../../README.md', import.meta.url), 'utf8')

interface Row { line: string, flags: string[], env: string[], default: string, roles: string[] }

/** The rows of the table under `### Configuration`, up to the next heading. */
function configurationRows (): Row[] {
  const section = README.split(/^### Configuration$/m)[1]?.split(/^#/m)[0] ?? ''
  const lines = section.split('\n').filter((l) => l.startsWith('|')).slice(2)
  return lines.map((line) => {
    const [flags = '', env = '', def = '', roles = ''] = line.slice(1, -1).split(' | ').map((c) => c.trim())
    return {
      line,
      flags: [...flags.matchAll(/`--([a-z-]+)`/g)].map((m) => m[1] as string),
      env: [...env.matchAll(/`([A-Z_]+)`/g)].map((m) => m[1] as string),
      default: def,
      roles: roles === 'all' ? [...ALL_ROLES] : roles.split(', ')
    }
  })
}

describe('README.md › Configuration', () => {
  const rows = configurationRows()
  const sorted = (list: readonly string[]): string[] => [...list].sort()

  it('has a table', () => {
    expect(rows.length).toBeGreaterThan(10)
  })

  it('lists every flag once, and no flag the roles do not have', () => {
    const listed = rows.flatMap((r) => r.flags)
    expect(sorted(listed)).toEqual(sorted(Object.keys(SETTINGS)))
  })

  it('gives each flag its environment names, default and roles', () => {
    const wrong: string[] = []
    for (const row of rows.filter((r) => r.flags.length > 0)) {
      const settings = row.flags.map((f) => SETTINGS[f as keyof typeof SETTINGS]).filter((s) => s !== undefined)
      const env = settings.flatMap((s) => s.env)
      const roles = new Set(settings.map((s) => sorted(s.roles).join(', ')))
      const defaults = new Set<unknown>(settings.map((s) => KindGuard.IsBoolean(s.schema) ? undefined : s.schema.default))
      const [def] = defaults
      // A default the definition has is shown as itself; without one the cell says what unset
      // means in words, never as one value a reader would take for the default.
      const defaultOk = defaults.size === 1 && (def === undefined ? !/^`[^`]*`$/.test(row.default) : row.default === `\`${String(def)}\``)
      if (env.join(', ') !== row.env.join(', ')) wrong.push(`${row.flags.join(', ')}: environment ${row.env.join(', ')}, but the definition has ${env.join(', ')}`)
      if (!defaultOk) wrong.push(`${row.flags.join(', ')}: default ${row.default}, but the definition has ${[...defaults].map((d) => d === undefined ? 'none' : `\`${String(d)}\``).join(' / ')}`)
      if (roles.size !== 1 || [...roles][0] !== sorted(row.roles).join(', ')) wrong.push(`${row.flags.join(', ')}: roles ${row.roles.join(', ')}, but the definition has ${[...roles].join(' / ')}`)
    }
    expect(wrong).toEqual([])
  })

  it('lists the environment-only settings (flag –) with their roles', () => {
    const envOnly = rows.filter((r) => r.flags.length === 0)
    expect(envOnly.map((r) => ({ env: r.env, roles: sorted(r.roles) }))).toEqual(
      Object.entries(ENVIRONMENT_ONLY).map(([name, s]) => ({ env: [name], roles: sorted(s.roles) }))
    )
  })
})
