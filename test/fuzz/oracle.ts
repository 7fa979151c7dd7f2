// What the fuzzers expect of an answer, written independently of the server's code: the
// provider a registration must read back as, the documented limits an accepted value must
// obey, and how a query parameter reads as an integer. One-directional on purpose: the server
// may refuse more than this says, never accept less.
import { isDeepStrictEqual } from 'node:util'
import { show } from './hostile-text.js'

const SPEC_KEYS = ['host', 'port', 'protocol', 'heartbeat', 'heartbeatIntervalMs', 'tags', 'meta', 'check', 'deregisterAfterMs'] as const

/** The writable fields of a provider as the registry must return them. */
export function specOf (p: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(SPEC_KEYS.filter((k) => p[k] !== undefined).map((k) => [k, p[k]]))
}

/** A registration body with the documented defaults filled in (model.ts). */
export function expectedSpec (body: Record<string, unknown>): Record<string, unknown> {
  return specOf({ heartbeatIntervalMs: 1000, tags: [], meta: {}, ...body })
}

/** Throws unless `got` is `want` exactly (every string code unit for code unit), naming the
 *  fields that differ. */
export function expectSame (got: Record<string, unknown>, want: Record<string, unknown>, where: string): void {
  if (isDeepStrictEqual(got, want)) return
  const keys = [...new Set([...Object.keys(got), ...Object.keys(want)])].filter((k) => !isDeepStrictEqual(got[k], want[k]))
  throw new Error(`${where} differs from what was written: ${keys.map((k) => `${k}: wrote ${show(want[k])}, got ${show(got[k])}`).join('; ')}`)
}

/** Characters as JSON Schema counts them (code points; a lone surrogate is one). */
export function characters (s: string): number {
  return [...s].length
}

/** Documented limits that an accepted registration must obey (model.ts): the schema's own
 *  checks cover the rest; these are the ones a record schema can silently skip. */
export function limitProblem (provider: Record<string, unknown>): string | null {
  const meta = provider.meta as Record<string, string> | undefined
  for (const key of Object.keys(meta ?? {})) {
    if (characters(key) > 64) return `accepted a meta key of ${characters(key)} characters (limit 64): ${show(key, 80)}`
  }
  return null
}

/** The integer a query parameter stands for as the gateway's validator coerces it (Ajv: a
 *  non-empty string equal to its numeric value), or null when it is none: NaN, Infinity and
 *  fractions are not integers. */
export function queryInteger (v: string): number | null {
  const n = Number(v)
  // eslint-disable-next-line eqeqeq
  return v !== '' && v == (n as unknown as string) && Number.isInteger(n) ? n : null
}

/** The values of parameter `name` in a query. */
export function values (query: Array<[string, string]>, name: string): string[] {
  return query.filter(([k]) => k === name).map(([, v]) => v)
}

/** Service names as model.ts defines them. */
export const SERVICE_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/
