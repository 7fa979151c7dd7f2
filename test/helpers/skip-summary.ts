// A vitest reporter, beside the default one (vitest.config.ts): at the end of a run it says
// which tests skipped themselves for want of something on this machine, and how to include
// them, so that a green `npm test` never hides a suite that did not run. A test that skips
// itself does so with a note (`skip(!hasX, NEEDS_X)`, test/helpers/requirements.ts); tests
// skipped without one (filtered out with -t, or .skip in the source) are not its business.
import type { Reporter, TestModule } from 'vitest/node'

export default class SkipSummary implements Reporter {
  onTestRunEnd (testModules: ReadonlyArray<TestModule>): void {
    const byNote = new Map<string, string[]>()
    for (const module of testModules) {
      for (const test of module.children.allTests()) {
        const result = test.result()
        if (result.state !== 'skipped' || result.note === undefined || result.note === '') continue
        const names = byNote.get(result.note) ?? []
        names.push(`${module.moduleId.slice(module.project.config.root.length + 1)} > ${test.fullName}`)
        byNote.set(result.note, names)
      }
    }
    if (byNote.size === 0) return
    const count = [...byNote.values()].reduce((n, names) => n + names.length, 0)
    const lines = [`\n${count} ${count === 1 ? 'test was' : 'tests were'} skipped for want of something on this machine; install it and run again to include ${count === 1 ? 'it' : 'them'}:`]
    for (const [note, names] of byNote) {
      lines.push(`  ${names.length} ${note}:`, ...names.map((n) => `    ${n}`))
    }
    process.stdout.write(`${lines.join('\n')}\n`)
  }
}
