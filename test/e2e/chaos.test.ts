// The chaos run in miniature (chaos/runner.ts, the runner behind `npm run chaos`): 2 leaders,
// 3 workers and 2 gateways as separate processes on server Postgres, a few rounds of SIGKILL or
// SIGSTOP on a random one under writes, heartbeat churn and watchers; every check must pass and
// no process may outlive the run. Server Postgres only: standby leaders need its advisory lock.
import { describe, expect, it } from 'vitest'
import { DEFAULT_OPTIONS, formatReport, runChaos } from '../../chaos/runner.js'
import { testDatabaseUrl } from '../helpers/postgres.js'

/** Fixed, so that a failure replays with `npm run chaos -- --rounds 5 --round-ms 2500 --seed 290`.
 *  Its schedule: SIGKILL leader-1, SIGKILL worker-0, SIGKILL leader-0, SIGSTOP gateway-1,
 *  SIGSTOP leader-0. Both leaders are SIGKILLed, so the active one is, whichever it was. */
const SEED = 290

describe('chaos, 5 rounds', () => {
  it('loses no acknowledged write, feeds every watcher the exact change log, and ends with true provider states', async () => {
    const lines: string[] = []
    const report = await runChaos({
      ...DEFAULT_OPTIONS,
      rounds: 5,
      roundMs: 2500,
      seed: SEED,
      adminUrl: testDatabaseUrl,
      // A loaded two-core machine restarts a tsx process in seconds; the test's own bound is
      // the timeout below.
      recoverMs: 30_000,
      settleMs: 10_000,
      print: (line) => { lines.push(line) }
    })
    const summary = [...lines, ...formatReport(report)].join('\n')
    expect(report.checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.findings.join('; ')}`), summary).toEqual([])
    expect(report.ok, summary).toBe(true)
    expect(report.faults).toHaveLength(5)
    expect(report.writes.acked).toBeGreaterThan(0)
    expect(report.leaderKillFailoverMs.length, summary).toBeGreaterThanOrEqual(1)
    expect(report.leftover).toEqual([])
  }, 150_000)
})
