// `roster token create|list|revoke`: the token API from the command line, over HTTP to a gateway
// (`--url`, env ROSTER_URL) with an admin token (`--token`, env ROSTER_TOKEN; the environment is
// the better place for it, since a flag shows in process lists). Exit 0 on success, 1 when the
// gateway refused or could not be reached (its message is printed), 2 on bad usage.
import { parseArgs } from 'node:util'

const DEFAULT_URL = 'http://127.0.0.1:7070'
/** A gateway answers within its own write bounds (about 4 s for a leader that does not answer);
 *  beyond this the command gives up rather than hang a script. */
const REQUEST_TIMEOUT_MS = 10_000
/** `--expires-in`: a positive whole number of seconds, minutes, hours or days, up to ten years. */
const DURATION_RE = /^([1-9][0-9]{0,5})([smhd])$/
const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const
const MAX_EXPIRES_IN_MS = 3650 * UNIT_MS.d

const USAGE = [
  'Usage:',
  '  roster token create --name NAME --scope SCOPE [--scope SCOPE …] [--expires-in 30d]',
  '  roster token list',
  '  roster token revoke ID',
  '',
  'Scopes: read, read:<glob>, write:<glob>, admin (a glob is a-z 0-9 - . _ and * for any run of them).',
  '--expires-in: N followed by s, m, h or d. The secret is printed once: store it.',
  '',
  'Flags (environment twin in brackets):',
  `  --url URL        the gateway (default ${DEFAULT_URL}) [ROSTER_URL]`,
  '  --token SECRET   an admin token [ROSTER_TOKEN]',
  '  --help           show this help'
].join('\n')

class UsageError extends Error {}

interface Answer { status: number, body: unknown }

export async function tokenCommand (argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let parsed: ReturnType<typeof parse>
  try {
    parsed = parse(argv, env)
  } catch (err) {
    if (!(err instanceof UsageError) && (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') !== true) throw err
    console.error(`roster token: ${(err as Error).message}\n\n${USAGE}`)
    return 2
  }
  if (parsed === 'help') {
    console.log(USAGE)
    return 0
  }
  const { action, url, token } = parsed
  let answer: Answer
  try {
    answer = await request(url, token, action.method, action.path, action.body)
  } catch (err) {
    console.error(`roster token: could not reach ${url}: ${(err as Error).message}`)
    return 1
  }
  if (answer.status >= 400) {
    const body = answer.body as { code?: unknown, message?: unknown } | undefined
    const message = typeof body?.message === 'string' ? body.message : `HTTP ${answer.status}`
    console.error(`roster token: ${message}${typeof body?.code === 'string' ? ` (${body.code})` : ''}`)
    return 1
  }
  if (action.kind === 'create') {
    console.log(JSON.stringify(answer.body, null, 2))
  } else if (action.kind === 'list') {
    const { tokens } = answer.body as { tokens: Array<{ id: string, name: string, scopes: string[], createdAt: string, expiresAt: string | null }> }
    console.log(['ID', 'NAME', 'SCOPES', 'CREATED', 'EXPIRES'].join('\t'))
    for (const t of tokens) console.log([t.id, t.name, t.scopes.join(','), t.createdAt, t.expiresAt ?? 'never'].join('\t'))
  } else {
    console.log(`revoked ${action.id}`)
  }
  return 0
}

type Action =
  | { kind: 'create', method: 'POST', path: string, body: unknown }
  | { kind: 'list', method: 'GET', path: string, body?: undefined }
  | { kind: 'revoke', method: 'DELETE', path: string, body?: undefined, id: string }

function parse (argv: string[], env: NodeJS.ProcessEnv): 'help' | { action: Action, url: string, token: string | undefined } {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      url: { type: 'string' },
      token: { type: 'string' },
      name: { type: 'string' },
      scope: { type: 'string', multiple: true },
      'expires-in': { type: 'string' },
      help: { type: 'boolean', short: 'h' }
    }
  })
  if (values.help === true) return 'help'
  const [sub, ...args] = positionals
  const url = (values.url ?? nonEmpty(env.ROSTER_URL) ?? DEFAULT_URL).replace(/\/+$/, '')
  if (!/^https?:\/\/[^/\s]+$/.test(url)) throw new UsageError(`--url must be http(s)://HOST[:PORT], got ${JSON.stringify(url)}`)
  const token = values.token ?? nonEmpty(env.ROSTER_TOKEN)
  if (token !== undefined && !/^[\x21-\x7e]+$/.test(token)) throw new UsageError('--token (ROSTER_TOKEN) must be printable ASCII without spaces')
  const onlyFor = (flags: Array<keyof typeof values>, what: string): void => {
    for (const f of flags) if (values[f] !== undefined) throw new UsageError(`--${f} applies only to ${what}`)
  }
  let action: Action
  if (sub === 'create') {
    if (args.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(args[0])}`)
    if (values.name === undefined) throw new UsageError('create needs --name')
    if (values.scope === undefined || values.scope.length === 0) throw new UsageError('create needs at least one --scope')
    const body: Record<string, unknown> = { name: values.name, scopes: values.scope }
    if (values['expires-in'] !== undefined) body.expiresAt = new Date(Date.now() + durationMs(values['expires-in'])).toISOString()
    action = { kind: 'create', method: 'POST', path: '/v1/tokens', body }
  } else if (sub === 'list') {
    if (args.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(args[0])}`)
    onlyFor(['name', 'scope', 'expires-in'], 'create')
    action = { kind: 'list', method: 'GET', path: '/v1/tokens' }
  } else if (sub === 'revoke') {
    if (args.length !== 1) throw new UsageError('revoke needs exactly one token ID')
    onlyFor(['name', 'scope', 'expires-in'], 'create')
    const id = args[0] as string
    action = { kind: 'revoke', method: 'DELETE', path: `/v1/tokens/${encodeURIComponent(id)}`, id }
  } else {
    throw new UsageError(sub === undefined ? 'missing subcommand' : `unknown subcommand ${JSON.stringify(sub)}`)
  }
  return { action, url, token }
}

function durationMs (text: string): number {
  const m = DURATION_RE.exec(text)
  const ms = m === null ? NaN : Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS]
  if (!(ms <= MAX_EXPIRES_IN_MS)) throw new UsageError(`--expires-in must be a number followed by s, m, h or d, at most 3650d; got ${JSON.stringify(text)}`)
  return ms
}

function nonEmpty (value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value
}

async function request (url: string, token: string | undefined, method: string, path: string, body: unknown): Promise<Answer> {
  const headers: Record<string, string> = {}
  if (token !== undefined) headers.authorization = `Bearer ${token}`
  if (body !== undefined) headers['content-type'] = 'application/json'
  const res = await fetch(url + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS)
  })
  const text = await res.text()
  let parsed: unknown
  try {
    parsed = text === '' ? undefined : JSON.parse(text)
  } catch {
    parsed = undefined
  }
  return { status: res.status, body: parsed }
}
