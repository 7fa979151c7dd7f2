// Reading a benchmark's integer flags: the command line's value or the declared default, checked
// against a range, with an error that names the flag.

export function intFlag (flags: Record<string, string | undefined>, defaults: Record<string, { default: string }>, name: string, min: number, max: number): number {
  const raw = flags[name] ?? defaults[name]?.default
  const v = Number(raw)
  if (!Number.isInteger(v) || v < min || v > max) throw new Error(`--${name} must be an integer ${min}–${max}, got ${JSON.stringify(raw)}`)
  return v
}
