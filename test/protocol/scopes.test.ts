// Scopes and globs: the grammar, what each scope allows, and glob matching checked against a
// reference (a regular expression) on generated globs and names, including the hostile globs
// that make a backtracking matcher explode.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { canRead, canWrite, globMatches, isAdmin, parseScope } from '../../server/protocol/scopes.js'

const NAME_CHARS = 'abz09-._'.split('')
const name = fc.array(fc.constantFrom(...NAME_CHARS), { minLength: 1, maxLength: 20 }).map((a) => a.join(''))
const glob = fc.array(fc.constantFrom(...NAME_CHARS, '*'), { minLength: 1, maxLength: 12 }).map((a) => a.join(''))

function reference (g: string, n: string): boolean {
  const source = g.split('*').map((part) => part.replace(/[.]/g, '\\.')).join('[a-z0-9._-]*')
  return new RegExp(`^${source}$`).test(n)
}

describe('scopes', () => {
  it('parses the four forms and nothing else', () => {
    expect(parseScope('admin')).toEqual({ kind: 'admin' })
    expect(parseScope('read')).toEqual({ kind: 'read', glob: '*' })
    expect(parseScope('read:pay*')).toEqual({ kind: 'read', glob: 'pay*' })
    expect(parseScope('write:payments')).toEqual({ kind: 'write', glob: 'payments' })
    for (const bad of ['', 'write', 'write:', 'Write:x', 'write:Pay', 'read:a b', 'admin:x', 'read:x\u0000', 'read:' + 'a'.repeat(129), 'delete:x', ' read']) {
      expect(parseScope(bad), bad).toBeNull()
    }
  })

  it('write implies read of the same services; admin is everything', () => {
    const s = ['write:pay*', 'read:orders']
    expect(canWrite(s, 'payments')).toBe(true)
    expect(canRead(s, 'payments')).toBe(true)
    expect(canRead(s, 'orders')).toBe(true)
    expect(canWrite(s, 'orders')).toBe(false)
    expect(canRead(s, 'billing')).toBe(false)
    expect(canRead(['read'], 'anything')).toBe(true)
    expect(canWrite(['read'], 'anything')).toBe(false)
    expect(isAdmin(s)).toBe(false)
    expect(isAdmin(['admin'])).toBe(true)
    expect(canWrite(['admin'], 'x')).toBe(true)
    // Unparseable scopes grant nothing.
    expect(canRead(['read:Pay*', 'bogus'], 'payments')).toBe(false)
  })

  it('matches a glob as its reference regular expression does', () => {
    fc.assert(fc.property(glob, name, (g, n) => globMatches(g, n) === reference(g, n)), { numRuns: 5000 })
  })

  it('a glob without * matches only itself; * matches every name; a name matches itself', () => {
    fc.assert(fc.property(name, name, (a, b) => globMatches(a, b) === (a === b)))
    fc.assert(fc.property(name, (n) => globMatches('*', n) && globMatches(n, n) && globMatches(`*${n.slice(1)}`, n)))
  })

  it('stays linear on hostile globs', () => {
    const hostile = '*a'.repeat(60) + '*b'
    const started = performance.now()
    expect(globMatches(hostile, 'a'.repeat(63))).toBe(false)
    expect(performance.now() - started).toBeLessThan(50)
  })
})
