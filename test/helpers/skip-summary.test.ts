// The run's closing summary of skipped tests (skip-summary.ts), from a real vitest run of a
// fixture as a child process: the tests that skipped themselves are listed under their notes,
// the one skipped in the source is not, and the run still passes.
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { expect, it } from 'vitest'

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url))
const FIXTURE = 'test/helpers/fixtures/skip-summary'

it('ends the run by listing the self-skipped tests under what they need', () => {
  const run = spawnSync(process.execPath, ['node_modules/vitest/vitest.mjs', 'run', '--root', FIXTURE, '--config', 'vitest.config.ts', '--color=false'], {
    cwd: REPO_ROOT, encoding: 'utf8', timeout: 60_000, env: { ...process.env, NO_COLOR: '1', CI: '1' }
  })
  expect(run.status, run.stdout + run.stderr).toBe(0)
  const summary = run.stdout.slice(run.stdout.indexOf('3 tests were skipped'))
  expect(summary.split('\n').slice(0, 6)).toEqual([
    '3 tests were skipped for want of something on this machine; install it and run again to include them:',
    '  2 needs frobnicate (apt-get install frobnicate):',
    '    skips.fixture.ts > needs a tool',
    '    skips.fixture.ts > needs the tool too',
    '  1 needs FROB_URL: set it to include this:',
    '    skips.fixture.ts > needs a variable'
  ])
  expect(run.stdout).not.toContain('> is skipped in the source')
}, 90_000)
