// Text that other users wrote, made safe to print on a terminal: the people commands
// (server/cli/people-format.ts) and the pretty log lines (server/common/log-format.ts) both show
// tags, meta, reasons and request paths, and neither may let one move the cursor, clear the
// screen or retitle the terminal of whoever reads it. Pure.

/**
 * C0 and C1 control characters (ESC starts every terminal escape sequence, and U+009B is a
 * one-character CSI to terminals that honour 8-bit controls), DEL, the line and paragraph
 * separators, and the bidirectional overrides and isolates that make text display in an order
 * other than its own (CVE-2021-42574).
 */
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g
/** What JSON.stringify leaves raw of those: it escapes only U+0000–U+001F. */
const UNSAFE_IN_JSON = /[\u007f-\u009f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g

function escapeChar (c: string): string {
  return `\\u${(c.codePointAt(0) as number).toString(16).padStart(4, '0')}`
}

/** `text` safe to print on a terminal: every unsafe character as a visible `\uXXXX`. */
export function printable (text: string): string {
  return text.replace(UNSAFE, escapeChar)
}

/** `value` as one line of JSON that is safe on a terminal and means the same: the characters
 *  JSON.stringify would leave raw are written as `\uXXXX` escapes, which JSON reads back alike. */
export function jsonLine (value: unknown): string {
  return JSON.stringify(value).replace(UNSAFE_IN_JSON, escapeChar)
}
