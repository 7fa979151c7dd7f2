// A client generated from the committed openapi/openapi.json works, as README.md › Clients says:
// openapi-typescript writes the types, `tsc --strict` accepts programs that use them through
// openapi-fetch (the README's own program and its curl registrations among them) and rejects a
// wrong one, and the programs run against a live gateway: register, list with filters,
// maintenance, deregister, and a 400, a 404 and a 409.
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { removeTestStorage, startInProcess, testStorage, type InProcessRoster } from '../helpers/cluster.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const bin = (path: string): string => join(ROOT, 'node_modules', path)
const run = promisify(execFile)

/** The README's base URL, which the printed program uses. */
const README_BASE_URL = 'http://127.0.0.1:7070'

interface ReadmeClients {
  /** The shell commands of the "Other languages (OpenAPI)" section. */
  commands: string[]
  /** Its TypeScript program (roster-client.ts). */
  program: string
  /** What the section says the program prints. */
  printed: string
  /** Every registration body the README sends with curl, by service and id. */
  registrations: Array<{ service: string, id: string, body: string }>
}

async function readReadme (): Promise<ReadmeClients> {
  const readme = await readFile(join(ROOT, 'README.md'), 'utf8')
  const start = readme.indexOf('### Other languages (OpenAPI)')
  expect(start, 'README.md has a "### Other languages (OpenAPI)" section').toBeGreaterThan(0)
  const section = readme.slice(start, readme.indexOf('\n## ', start))
  const block = (fence: string): string => {
    const at = section.indexOf(fence)
    expect(at, `the section has a ${fence} block`).toBeGreaterThan(0)
    const from = at + fence.length
    return section.slice(from, section.indexOf('```', from))
  }
  const commands = block('```sh\n').split('\n').map((line) => line.replace(/\s+#.*$/, '').trim()).filter((line) => line !== '')
  const registrations = [...readme.matchAll(
    /curl -s -X PUT http:\/\/127\.0\.0\.1:7070\/v1\/services\/([a-z0-9._-]+)\/providers\/([A-Za-z0-9._:-]+) (?:\\\n\s*)?-H 'content-type: application\/json' *(?:\\\n\s*)?-d '(\{[^']*\})'/g
  )].map(([, service, id, body]) => ({ service: service as string, id: id as string, body: body as string }))
  return { commands, program: block('```ts\n'), printed: block('prints, on a fresh registry:\n\n```\n'), registrations }
}

/** Registers every README body through the typed client (so each literal is checked against
 *  ProviderSpec, excess properties included), then walks through the API and prints what it saw. */
function walkthrough (registrations: ReadmeClients['registrations']): string {
  return `import createClient from 'openapi-fetch'
import type { components, paths } from './roster.js'

type ProviderSpec = components['schemas']['ProviderSpec']
type Provider = components['schemas']['Provider']

const roster = createClient<paths>({ baseUrl: process.argv[2] as string })
const seen: Record<string, unknown> = {}

async function register (service: string, id: string, body: ProviderSpec): Promise<number> {
  const put = await roster.PUT('/v1/services/{service}/providers/{id}', { params: { path: { service, id } }, body })
  if (put.error !== undefined) throw new Error(\`\${service}/\${id}: \${put.response.status} \${put.error.code}: \${put.error.message}\`)
  seen[\`register \${service}/\${id}\`] = [put.response.status, put.data.provider.state]
  return put.data.revision
}

let revision = 0
${registrations.map(({ service, id, body }) => `revision = await register(${JSON.stringify(service)}, ${JSON.stringify(id)}, ${body})`).join('\n')}

// List with filters, reading our own writes.
const blue = await roster.GET('/v1/services/{service}/providers', {
  params: { path: { service: 'orders' }, query: { protocol: 'http', tag: ['blue'], minRevision: revision } }
})
seen['orders http blue'] = blue.data?.providers.map((p: Provider) => p.id)
seen['revision header is the body revision'] = blue.response.headers.get('X-Roster-Revision') === String(blue.data?.revision)
const services = await roster.GET('/v1/services')
seen.services = services.data?.services.map((s) => s.name)

// A check narrows by its type: only an http check has a path.
const web = await roster.GET('/v1/services/{service}/providers/{id}', { params: { path: { service: 'web', id: 'web-1' } } })
const check = web.data?.check
seen['web-1 check path'] = check?.type === 'http' ? check.path : null

// Maintenance, then a filter on it, then release.
const held = await roster.PUT('/v1/services/{service}/providers/{id}/maintenance', {
  params: { path: { service: 'orders', id: 'orders-1' } },
  body: { enabled: true, reason: 'kernel upgrade' }
})
seen.maintenance = [held.response.status, held.data?.provider.state, held.data?.provider.reason]
const inMaintenance = await roster.GET('/v1/services/{service}/providers', {
  params: { path: { service: 'orders' }, query: { state: 'maintenance', minRevision: held.data?.revision } }
})
seen['orders in maintenance'] = inMaintenance.data?.providers.map((p) => p.id)
const released = await roster.PUT('/v1/services/{service}/providers/{id}/maintenance', {
  params: { path: { service: 'orders', id: 'orders-1' } },
  body: { enabled: false }
})
seen.released = [released.response.status, released.data?.provider.state]

// A ttl renewal, and one on a provider without a ttl check (409).
const renewed = await roster.PUT('/v1/services/{service}/providers/{id}/heartbeat', { params: { path: { service: 'jobs', id: 'job-1' } } })
seen.renewed = renewed.response.status
const notTtl = await roster.PUT('/v1/services/{service}/providers/{id}/heartbeat', { params: { path: { service: 'web', id: 'web-1' } } })
seen['renew without a ttl check'] = [notTtl.response.status, notTtl.error?.code]

// The errors the issue names: a 400 naming the field, a 404, a 409.
const bad = await roster.PUT('/v1/services/{service}/providers/{id}', {
  params: { path: { service: 'orders', id: 'orders-2' } },
  body: { host: '127.0.0.1', port: 70000, protocol: 'http', heartbeat: 'tcp://127.0.0.1:9101' }
})
seen['400'] = [bad.response.status, bad.error?.code, bad.error?.message]
const unknown = await roster.GET('/v1/services/{service}/providers/{id}', { params: { path: { service: 'orders', id: 'nobody' } } })
seen['404'] = [unknown.response.status, unknown.error?.code]
const elsewhere = await roster.PUT('/v1/services/{service}/providers/{id}', {
  params: { path: { service: 'orders', id: 'web-1' } },
  body: { host: '127.0.0.1', port: 8080, protocol: 'http', check: { type: 'tcp', intervalMs: 1000, timeoutMs: 500 } }
})
seen['409'] = [elsewhere.response.status, elsewhere.error?.code]

// Deregister, after which the provider is gone.
const gone = await roster.DELETE('/v1/services/{service}/providers/{id}', { params: { path: { service: 'orders', id: 'orders-1' } } })
seen.deregistered = [gone.response.status, typeof gone.data?.revision]
const after = await roster.GET('/v1/services/{service}/providers/{id}', {
  params: { path: { service: 'orders', id: 'orders-1' }, query: { minRevision: gone.data?.revision } }
})
seen['after deregistration'] = after.response.status

const health = await roster.GET('/v1/health')
seen.health = [health.data?.status, health.data?.leader]

console.log(JSON.stringify(seen))
`
}

/** Mistakes the generated types must refuse, one per line that tsc must report. */
const WRONG = `import createClient from 'openapi-fetch'
import type { paths } from './roster.js'

const roster = createClient<paths>({ baseUrl: 'http://127.0.0.1:7070' })
const spec = { host: 'h', port: 80 }
await roster.PUT('/v1/services/{service}/providers/{id}', { params: { path: { service: 'a', id: 'b' } }, body: { ...spec, protocol: 'ftp', heartbeat: 'tcp://h:1' } })
await roster.PUT('/v1/services/{service}/providers/{id}', { params: { path: { service: 'a', id: 'b' } }, body: { ...spec, protocol: 'http', check: { type: 'http', ttlMs: 1000 } } })
await roster.PUT('/v1/services/{service}/providers/{id}', { params: { path: { service: 'a', id: 'b' } }, body: { ...spec, protocol: 'http', tgas: ['blue'] } })
await roster.GET('/v1/services/{service}/providers', { params: { path: { service: 'a' }, query: { state: 'sleeping' } } })
await roster.PUT('/v1/services/{service}/providers/{id}/maintenance', { params: { path: { service: 'a', id: 'b' } }, body: { reason: 'no enabled' } })
`

describe('a client generated from openapi/openapi.json (openapi-typescript + openapi-fetch)', () => {
  let roster: InProcessRoster
  let dir: string
  let readme: ReadmeClients

  beforeAll(async () => {
    readme = await readReadme()
    dir = await mkdtemp(join(tmpdir(), 'roster-openapi-client-'))
    // The programs import openapi-fetch (and tsc finds @types/node) through the repository's modules.
    await symlink(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir')
    await writeFile(join(dir, 'package.json'), JSON.stringify({ type: 'module', private: true }))
    roster = await startInProcess(await testStorage())
  })

  afterAll(async () => {
    await roster?.stop()
    await removeTestStorage()
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  })

  it('the README prints the commands this test runs, and its curl registrations include a check', () => {
    expect(readme.commands).toEqual([
      'npx openapi-typescript openapi/openapi.json -o roster.d.ts',
      'npx tsc --noEmit --strict --module nodenext --target es2022 roster-client.ts',
      'npx tsx roster-client.ts'
    ])
    expect(readme.registrations.map((r) => `${r.service}/${r.id}`)).toEqual(['orders/orders-1', 'web/web-1', 'jobs/job-1'])
    expect(readme.registrations.map((r) => JSON.parse(r.body) as { check?: { type: string } }).map((b) => b.check?.type)).toEqual([undefined, 'http', 'ttl'])
  })

  it('generates, typechecks the right programs, refuses the wrong one, and runs against a live gateway', async () => {
    // 1. Types from the committed document, as the README's first command writes them.
    await run(process.execPath, [bin('openapi-typescript/bin/cli.js'), 'openapi/openapi.json', '-o', join(dir, 'roster.d.ts')], { cwd: ROOT })
    const types = await readFile(join(dir, 'roster.d.ts'), 'utf8')
    expect(types).toContain('registerProvider: {')
    expect(types).toContain('ProviderState: "pending" | "up" | "down" | "maintenance";')

    // 2. One tsc run over the README's program, the walkthrough and the wrong program: errors
    //    in the wrong one only, one per mistake.
    await writeFile(join(dir, 'roster-client.ts'), readme.program)
    await writeFile(join(dir, 'walkthrough.ts'), walkthrough(readme.registrations))
    await writeFile(join(dir, 'wrong.ts'), WRONG)
    const tsc = await run(process.execPath, [
      bin('typescript/bin/tsc'), '--noEmit', '--strict', '--module', 'nodenext', '--target', 'es2022', '--pretty', 'false',
      'roster-client.ts', 'walkthrough.ts', 'wrong.ts'
    ], { cwd: dir }).then(({ stdout }) => stdout, (err: { stdout?: string }) => err.stdout ?? String(err))
    const errors = tsc.split('\n').filter((line) => /^\S+\(\d+,\d+\): error /.test(line))
    expect(errors.filter((line) => !line.startsWith('wrong.ts(')), tsc).toEqual([])
    expect(errors.map((line) => Number(/^wrong\.ts\((\d+),/.exec(line)?.[1])), tsc).toEqual([6, 7, 8, 9, 10])

    // 3. The README's program against the live gateway prints what the README says.
    const program = readme.program.replace(`'${README_BASE_URL}'`, `'${roster.url}'`)
    expect(program).not.toBe(readme.program)
    await writeFile(join(dir, 'roster-client.ts'), program)
    const tsx = bin('tsx/dist/cli.mjs')
    const printed = await run(process.execPath, [tsx, 'roster-client.ts'], { cwd: dir })
    expect(printed.stdout).toBe(readme.printed)

    // 4. The walkthrough: the README's registrations, filters, maintenance, errors, deregistration.
    const { stdout } = await run(process.execPath, [tsx, 'walkthrough.ts', roster.url], { cwd: dir })
    expect(JSON.parse(stdout)).toEqual({
      // web-1 exists already (the README's program registered it): the same body is a 200, and
      // its http check (of 127.0.0.1:8080) may have run by then.
      'register orders/orders-1': [201, 'pending'],
      'register web/web-1': [200, expect.stringMatching(/^(pending|up|down)$/)],
      'register jobs/job-1': [201, 'pending'],
      'orders http blue': ['orders-1'],
      'revision header is the body revision': true,
      services: ['jobs', 'orders', 'web'],
      'web-1 check path': '/health',
      maintenance: [200, 'maintenance', 'kernel upgrade'],
      'orders in maintenance': ['orders-1'],
      released: [200, 'pending'],
      renewed: 200,
      'renew without a ttl check': [409, 'ROSTER_ERR_NO_TTL_CHECK'],
      400: [400, 'FST_ERR_VALIDATION', 'body/port must be <= 65535'],
      404: [404, 'ROSTER_ERR_PROVIDER_NOT_FOUND'],
      409: [409, 'ROSTER_ERR_PROVIDER_CONFLICT'],
      deregistered: [200, 'number'],
      'after deregistration': 404,
      health: ['ok', 'connected']
    })
  }, 120_000)
})
