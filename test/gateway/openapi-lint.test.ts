// The committed OpenAPI document passes Redocly's recommended rules with no error and no warning,
// as `npx redocly lint openapi/openapi.json` reports them (the pinned @redocly/cli, the repository's redocly.yaml and
// its one reasoned exception in .redocly.lint-ignore.yaml).
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const REDOCLY = join(dirname(createRequire(import.meta.url).resolve('@redocly/cli/package.json')), 'bin', 'cli.js')

interface LintReport {
  totals: { errors: number, warnings: number, ignored: number }
  problems: Array<{ ruleId: string, severity: string, message: string, location: Array<{ pointer: string }> }>
}

/** `redocly lint --format=json <file>` in the repository, which exits 1 when it finds errors. */
async function lint (file: string): Promise<LintReport> {
  const { stdout } = await promisify(execFile)(process.execPath, [REDOCLY, 'lint', '--format=json', file], {
    cwd: ROOT,
    // Nothing leaves the machine: no usage report, no update check.
    env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
    maxBuffer: 16 * 1024 * 1024
  }).catch((err: { stdout?: string }) => ({ stdout: err.stdout ?? '' }))
  return JSON.parse(stdout) as LintReport
}

function describeProblems (report: LintReport): string {
  return report.problems.map((p) => `${p.severity} ${p.ruleId} at ${p.location[0]?.pointer ?? '?'}: ${p.message}`).join('\n')
}

describe('openapi/openapi.json under `redocly lint` (recommended rules)', () => {
  it('has no error and no warning', async () => {
    const report = await lint('openapi/openapi.json')
    expect(describeProblems(report)).toBe('')
    expect(report.totals).toMatchObject({ errors: 0, warnings: 0 })
  }, 30_000)

  it('ignores only the health check having no 4xx answer', async () => {
    const ignoreFile = await readFile(join(ROOT, '.redocly.lint-ignore.yaml'), 'utf8')
    const entries = ignoreFile.split('\n').filter((line) => !line.trimStart().startsWith('#') && line.trim() !== '')
    expect(entries).toEqual([
      'openapi/openapi.json:',
      '  operation-4xx-response:',
      "    - '#/paths/~1v1~1health/get/responses'"
    ])
  })

  it('reports a warning the document would have (so the first test can fail)', async () => {
    // The committed document with one operationId removed, linted from a copy that no ignore
    // file covers: the rule that the issue found broken everywhere must speak up.
    const doc = JSON.parse(await readFile(join(ROOT, 'openapi/openapi.json'), 'utf8')) as { paths: Record<string, Record<string, { operationId?: string }>> }
    delete doc.paths['/v1/services']?.get?.operationId
    const dir = await mkdtemp(join(tmpdir(), 'roster-lint-'))
    try {
      const file = join(dir, 'openapi.json')
      await writeFile(file, JSON.stringify(doc))
      const report = await lint(file)
      expect(report.totals.errors).toBe(0)
      expect(report.problems.filter((p) => p.severity === 'warn').map((p) => `${p.ruleId} ${p.location[0]?.pointer ?? ''}`).sort()).toEqual([
        'operation-4xx-response #/paths/~1v1~1health/get/responses',
        'operation-operationId #/paths/~1v1~1services/get/operationId'
      ])
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  }, 30_000)
})
