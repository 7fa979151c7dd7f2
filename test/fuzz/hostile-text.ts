// Hostile text for the fuzz tests. A string
// field gets the whole of Unicode: NUL, C0 and C1 controls, lone surrogates, noncharacters,
// astral code points, JSON and URL metacharacters, and lengths short, around its limit and far
// beyond it. fast-check's own 'binary' unit leaves out lone surrogates, hence our own unit.
import fc from 'fast-check'

/**
 * Developer aid only, never set in `npm test` or `npm run fuzz`: ROSTER_FUZZ_LEAVE_OUT lists
 * (comma-separated) classes of input behind bugs known on main (issue 9, item 0), so that the
 * rest of a fuzz test can be checked on a build that still has them, or one bug be confirmed
 * alone: `nul`, `lone-surrogates`, `line-terminators` (a meta key with one vanishes), `astral`
 * (counted as one character by the gateway, two by the leader's frame check), `long-meta-keys`,
 * `infinite-numbers` (minRevision=Infinity); `all` for every one. Default: nothing left out.
 */
export const LEAVE_OUT: ReadonlySet<string> = new Set((process.env.ROSTER_FUZZ_LEAVE_OUT ?? '').split(',').map((s) => s.trim()).filter((s) => s !== ''))

export function leftOut (kind: string): boolean {
  return LEAVE_OUT.has(kind) || LEAVE_OUT.has('all')
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g

function safe (s: string): string {
  if (LEAVE_OUT.size === 0) return s
  if (leftOut('nul')) s = s.replace(/\0/g, '\u2400')
  if (leftOut('lone-surrogates')) s = s.replace(LONE_SURROGATE, '\uFFFD')
  if (leftOut('line-terminators')) s = s.replace(/[\n\r\u2028\u2029]/g, ' ')
  if (leftOut('astral')) s = s.replace(/[\uD800-\uDBFF][\uDC00-\uDFFF]/g, '\u00E9')
  return s
}

const codeUnit = (min: number, max: number): fc.Arbitrary<string> =>
  fc.integer({ min, max }).map((c) => String.fromCharCode(c))

/** Characters that break parsers, encoders or displays, beyond the controls. */
const TRICKY = [
  '\u2028', '\u2029', '\uFEFF', '\uFFFE', '\uFFFF', '\uFFFD', '\u200B', '\u0301', '\u{1F600}', '\u{10FFFF}',
  '"', '\\', '/', '%', '?', '#', '&', '=', '+', ';', ',', ' ', '\t', '\r', '\n', '*', '.', ':', '[', ']', '{', '}'
]

/** One unit of hostile text: mostly printable ASCII (so strings look like values), then every
 *  class a store, a parser or an encoder may choke on. Two adjacent surrogates may pair up. */
export const hostileUnit: fc.Arbitrary<string> = fc.oneof(
  { weight: 8, arbitrary: codeUnit(0x20, 0x7e) },
  { weight: 2, arbitrary: fc.constant('\u0000') },
  { weight: 2, arbitrary: codeUnit(0x01, 0x1f) },
  { weight: 1, arbitrary: codeUnit(0x7f, 0x9f) },
  { weight: 2, arbitrary: codeUnit(0xd800, 0xdfff) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }) },
  { weight: 2, arbitrary: fc.constantFrom(...TRICKY) }
)

/** Text a registry must store as it is: any code point but NUL (Postgres text cannot hold
 *  it), and no lone surrogate (it has no UTF-8 form). Controls, noncharacters and astral
 *  characters included. */
export const storableUnit: fc.Arbitrary<string> = fc.oneof(
  { weight: 8, arbitrary: codeUnit(0x20, 0x7e) },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }).filter((c) => c !== '\u0000') },
  { weight: 1, arbitrary: fc.constantFrom(...TRICKY) }
)

/** Storable text of `minLength`–`maxLength` units (a unit is one code point, or a grapheme). */
export function storableText (minLength: number, maxLength: number): fc.Arbitrary<string> {
  return fc.string({ unit: storableUnit, minLength, maxLength }).map(safe)
}

/**
 * Hostile text for a field whose limit is `limit` characters: mostly short, often within two
 * of the limit, sometimes far beyond it (up to past the gateway's 64 KiB body limit), the long
 * ones being one character repeated with hostile ones spliced in.
 */
export function hostileText (limit: number): fc.Arbitrary<string> {
  const around = fc.string({ unit: hostileUnit, minLength: Math.max(0, limit - 2), maxLength: limit + 2 })
  const far = fc.tuple(
    fc.oneof(fc.integer({ min: limit + 1, max: limit * 4 + 8 }), fc.integer({ min: 60_000, max: 70_000 })),
    hostileUnit,
    fc.array(fc.tuple(fc.nat(), hostileUnit), { minLength: 1, maxLength: 3 })
  ).map(([length, fill, splices]) => {
    let s = fill.repeat(length)
    for (const [at, unit] of splices) {
      const i = at % (s.length + 1)
      s = s.slice(0, i) + unit + s.slice(i)
    }
    return s
  })
  return fc.oneof(
    { weight: 12, arbitrary: fc.string({ unit: hostileUnit, minLength: 0, maxLength: 12 }) },
    { weight: 3, arbitrary: around },
    { weight: 1, arbitrary: far }
  ).map(safe)
}

/** UTF-8 of `s`, except that a lone surrogate becomes its three-byte WTF-8 form (ED A0 80 for
 *  U+D800) instead of U+FFFD: the bytes a careless client would really send. */
export function wtf8 (s: string): Buffer {
  const bytes: number[] = []
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i)
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1)
      if (d >= 0xdc00 && d <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00)
        i++
      }
    }
    if (c < 0x80) bytes.push(c)
    else if (c < 0x800) bytes.push(0xc0 | (c >> 6), 0x80 | (c & 0x3f))
    else if (c < 0x10000) bytes.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f))
    else bytes.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 0x3f), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f))
  }
  return Buffer.from(bytes)
}

/** Percent-encodes every byte of wtf8(s) outside RFC 3986's unreserved set, so that any text
 *  (NUL, a lone surrogate as %ED%A0%80) reaches the server exactly as generated. */
export function percentEncode (s: string): string {
  let out = ''
  for (const b of wtf8(s)) {
    const ch = String.fromCharCode(b)
    out += /[A-Za-z0-9\-._~]/.test(ch) ? ch : `%${b.toString(16).toUpperCase().padStart(2, '0')}`
  }
  return out
}

/** Shows a string with every control, non-ASCII and lone surrogate escaped, shortened. */
export function show (value: unknown, max = 300): string {
  const s = JSON.stringify(value, (_k, v: unknown) => (typeof v === 'string' && v.length > max ? `${v.slice(0, max)}…(${v.length} chars)` : v)) ?? String(value)
  const escaped = s.replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
  return escaped.length > max * 3 ? `${escaped.slice(0, max * 3)}…` : escaped
}
