/** A command-line mistake: the scripts print it with their usage and exit 2. */
export class UsageError extends Error {}

/** A numeric option: `fallback` when absent, else a number ≥ min (a whole one unless `integer` is false). */
export function numberOption(text: string | undefined, what: string, fallback: number, min: number, integer = true): number {
  if (text === undefined) return fallback
  const value = Number(text)
  if (!Number.isFinite(value) || value < min || (integer && !Number.isInteger(value))) {
    throw new UsageError(`--${what}: expected ${integer ? 'a whole number' : 'a number'} ≥ ${min}, got ${JSON.stringify(text)}`)
  }

  return value
}

/** `--help` (or -h) given: print the usage and exit. */
export function exitOnHelp(asked: boolean | undefined, help: string): void {
  if (!asked) return
  process.stdout.write(help)
  process.exit(0)
}
