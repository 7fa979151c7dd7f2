// `roster/client` as someone who installs the package gets it: `npm pack` (which runs the
// `prepare` build), the tarball unpacked into a project of its own outside this repository, with
// the package's runtime and type dependencies beside it as npm would place them. There the
// README's TypeScript example runs as printed (plain JavaScript) against a real Roster, and
// typechecks (TypeScript, strict, NodeNext) from the shipped declarations alone; a type error is
// caught; and the shipped bundle imports nothing but `ws` and Node's built-ins.
import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { removeTestStorage, startInProcess, testStorage, type InProcessRoster } from '../helpers/cluster.js'

const run = promisify(execFile)
const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')
/** What npm would install beside the package for a user of the client: `ws` at run time, TypeBox
 *  for the declarations' types, Node's types for the user's own program. */
const DEPENDENCIES = ['ws', '@sinclair/typebox', '@types/node']

let work: string
let project: string
let packed: string[]
let roster: InProcessRoster

/** The README's `### TypeScript` example: its first ts block, and the output block after it. */
async function readmeExample (): Promise<{ code: string, output: string[] }> {
  const readme = await readFile(join(ROOT, 'README.md'), 'utf8')
  const section = readme.slice(readme.indexOf('\n### TypeScript\n'))
  const code = /```ts\n([\s\S]*?)```/.exec(section)?.[1]
  const printed = /```ts\n[\s\S]*?```\n```\n([\s\S]*?)```/.exec(section)?.[1]
  if (code === undefined || printed === undefined) throw new Error('README.md has no TypeScript example with its output under ### TypeScript')
  const [command, ...output] = printed.trimEnd().split('\n')
  expect(command).toBe('$ node example.mjs')
  return { code, output }
}

async function typecheck (): Promise<{ ok: boolean, output: string }> {
  try {
    await run(process.execPath, [TSC, '-p', project], { cwd: project })
    return { ok: true, output: '' }
  } catch (err) {
    const { stdout, stderr } = err as { stdout: string, stderr: string }
    return { ok: false, output: stdout + stderr }
  }
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'roster-client-pack-'))
  // `prepare` prints its own line; npm's JSON is the rest of stdout.
  const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', work], { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 })
  const [report] = JSON.parse(stdout.slice(stdout.indexOf('['))) as Array<{ filename: string, files: Array<{ path: string }> }>
  if (report === undefined) throw new Error(`npm pack reported nothing: ${stdout}`)
  packed = report.files.map((f) => f.path)
  project = join(work, 'project')
  await mkdir(join(project, 'node_modules', 'roster'), { recursive: true })
  await run('tar', ['-xzf', join(work, report.filename), '-C', join(project, 'node_modules', 'roster'), '--strip-components=1'])
  for (const dep of DEPENDENCIES) {
    await mkdir(join(project, 'node_modules', dep, '..'), { recursive: true })
    await symlink(join(ROOT, 'node_modules', dep), join(project, 'node_modules', dep), 'dir')
  }
  await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'uses-roster', private: true, type: 'module' }))
  await writeFile(join(project, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, skipLibCheck: false, types: ['node'] },
    include: ['*.ts']
  }))
  roster = await startInProcess(await testStorage('roster-client-pack-'))
}, 120_000)

afterAll(async () => {
  await roster?.stop()
  await removeTestStorage()
  if (work !== undefined) await rm(work, { recursive: true, force: true })
})

describe('the packed roster/client', () => {
  it('ships the built client and its declarations, and none of the repository\'s tests', () => {
    expect(packed).toContain('dist/client/index.js')
    expect(packed).toContain('dist/client/types/client/index.d.ts')
    expect(packed).toContain('bin/roster.js')
    // The client's sources are shipped for the `roster` command, which bin/roster.js bundles from
    // server/ and client/ on the installed package's first run (the people commands use it).
    expect(packed).toContain('client/index.ts')
    expect(packed.filter((p) => p.startsWith('test/') || p.startsWith('bench/'))).toEqual([])
  })

  it('imports nothing but ws and Node\'s built-ins: none of the server\'s runtime (zeromq, pg, fastify)', async () => {
    const bundle = await readFile(join(project, 'node_modules', 'roster', 'dist', 'client', 'index.js'), 'utf8')
    const specifiers = [...bundle.matchAll(/^\s*(?:import|export)\s[^'"]*?from\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/gm)].map((m) => m[1] ?? m[2])
    expect(specifiers.filter((s) => s !== 'ws' && !s?.startsWith('node:'))).toEqual([])
    expect(specifiers).toContain('ws')
    expect(bundle).not.toMatch(/zeromq|fastify|from\s*["']pg["']/)
  })

  it('runs the README example as printed, and it typechecks from the shipped declarations', async () => {
    const { code, output } = await readmeExample()
    await writeFile(join(project, 'example.mjs'), code)
    const { stdout } = await run(process.execPath, ['example.mjs'], { cwd: project, env: { ...process.env, ROSTER_URL: roster.url }, timeout: 30_000 })
    expect(stdout.trimEnd().split('\n')).toEqual(output)

    await writeFile(join(project, 'example.ts'), code)
    const checked = await typecheck()
    expect(checked.output).toBe('')
    expect(checked.ok).toBe(true)

    // The types are the server's, not `any`: a wrong field type and an unknown state fail.
    await writeFile(join(project, 'wrong.ts'), [
      "import { RosterClient } from 'roster/client'",
      "const roster = new RosterClient({ urls: ['http://127.0.0.1:7070'] })",
      "await roster.register('orders', 'o-1', { host: 'h', port: '8080', protocol: 'http' })",
      "await roster.list('orders', { state: 'sleeping' })",
      'export {}'
    ].join('\n'))
    const wrong = await typecheck()
    await rm(join(project, 'wrong.ts'))
    expect(wrong.ok).toBe(false)
    expect(wrong.output).toMatch(/wrong\.ts\(3,[0-9]+\): error TS2322: Type 'string' is not assignable to type 'number'/)
    expect(wrong.output).toMatch(/wrong\.ts\(4,[0-9]+\): error TS2322: Type '"sleeping"' is not assignable/)
  }, 60_000)
})
