// What a token may do: its scopes, parsed and matched against service names. Pure, shared by the
// gateway (every request's authorization) and the leader (which checks the scopes of every token
// it stores, and whether an admin token exists, for the bootstrap). The grammar:
//   read            every service, reads only
//   read:<glob>     reads of the matching services
//   write:<glob>    writes (register, maintenance, ttl renewal, deregister) and reads of them
//   admin           everything, the token API included
// A glob is service-name characters (a-z 0-9 - . _) plus `*`, which stands for any run of them.

/** The grammar above as one regular expression, for the schemas (REST bodies, protocol frames).
 *  A glob is at most 128 characters: a service name is at most 63, and room for a `*` between
 *  each of them is more than any real pattern needs. */
export const SCOPE_PATTERN = '^(admin|read|(read|write):[a-z0-9._*-]{1,128})$'
export const SCOPE_DESCRIPTION = 'read, read:<glob>, write:<glob> or admin; a glob is a-z 0-9 - . _ and * (any run of them)'
const SCOPE_RE = new RegExp(SCOPE_PATTERN)

export type Scope =
  | { kind: 'admin' }
  | { kind: 'read', glob: string }
  | { kind: 'write', glob: string }

/** Parses one scope; null when it does not follow the grammar. Bare `read` is `read:*`. */
export function parseScope (text: string): Scope | null {
  if (!SCOPE_RE.test(text)) return null
  if (text === 'admin') return { kind: 'admin' }
  if (text === 'read') return { kind: 'read', glob: '*' }
  const colon = text.indexOf(':')
  return { kind: text.slice(0, colon) as 'read' | 'write', glob: text.slice(colon + 1) }
}

/**
 * Whether `glob` matches all of `name`. Iterative, with one saved position for the last `*`
 * (the classic wildcard match): O(length of glob × length of name) in the worst case, where a
 * regular expression built from a hostile glob such as `*a*a*a…b` backtracks exponentially.
 */
export function globMatches (glob: string, name: string): boolean {
  let g = 0
  let n = 0
  let star = -1
  let resume = 0
  while (n < name.length) {
    if (g < glob.length && glob[g] !== '*' && glob[g] === name[n]) {
      g++
      n++
    } else if (g < glob.length && glob[g] === '*') {
      star = g++
      resume = n
    } else if (star !== -1) {
      g = star + 1
      n = ++resume
    } else {
      return false
    }
  }
  while (g < glob.length && glob[g] === '*') g++
  return g === glob.length
}

function parsed (scopes: readonly string[]): Scope[] {
  const out: Scope[] = []
  for (const s of scopes) {
    const scope = parseScope(s)
    if (scope !== null) out.push(scope)
  }
  return out
}

export function isAdmin (scopes: readonly string[]): boolean {
  return scopes.includes('admin')
}

/** Reads of `service`: admin, read or read:<glob>, and write:<glob> (write implies read). */
export function canRead (scopes: readonly string[], service: string): boolean {
  return parsed(scopes).some((s) => s.kind === 'admin' || globMatches(s.glob, service))
}

/** Writes to `service`: admin or write:<glob>. */
export function canWrite (scopes: readonly string[], service: string): boolean {
  return parsed(scopes).some((s) => s.kind === 'admin' || (s.kind === 'write' && globMatches(s.glob, service)))
}
