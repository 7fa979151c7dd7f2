// The help text layout every `roster` command shares: a two-column table whose first column is
// as wide as the widest entry actually shown, so that long flag names never push their
// description out of line and a short list is not padded to another command's widest flag.
// Pure: it returns lines, the caller prints them.

/** One row of a help table: what to type (`--port PORT`, `ls [SERVICE]`) and what it does. */
export type HelpRow = readonly [left: string, right: string]

/** The gap between the columns. */
const GAP = 2

/** `rows` as aligned lines, each indented by two spaces; `minWidth` lines up several tables. */
export function helpTable (rows: readonly HelpRow[], minWidth = 0): string[] {
  const width = Math.max(minWidth, ...rows.map(([left]) => left.length))
  return rows.map(([left, right]) => `  ${left.padEnd(width + GAP)}${right}`.trimEnd())
}

/** The first column's width for `tables` printed one under another. */
export function helpWidth (...tables: ReadonlyArray<readonly HelpRow[]>): number {
  return Math.max(0, ...tables.flat().map(([left]) => left.length))
}
