/**
 * `-v` may be repeated (`-v -v`, `-vvv`) or given a level (`-v 2`,
 * `--verbose=3`); oclif knows neither form for one flag, so the words are
 * rewritten into a single `--verbose=N` before parsing.
 */
export function normalizeVerbosity(argv: string[]): string[] {
  const rest: string[] = []
  let level: number | undefined
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i]
    if (word === '--') {
      rest.push(...argv.slice(i))
      break
    }

    const repeated = /^-(v+)$/.exec(word)
    const long = /^--verbose(?:=(.*))?$/.exec(word)
    if (!repeated && !long) {
      rest.push(word)
      continue
    }

    const inline = long?.[1]
    const next = argv[i + 1]
    if (inline !== undefined) {
      level = Number(inline)
    } else if ((word === '-v' || word === '--verbose') && next !== undefined && /^\d+$/.test(next)) {
      level = Number(next)
      i++
    } else {
      level = (level ?? 0) + (repeated ? repeated[1].length : 1)
    }
  }

  if (level !== undefined) rest.push(`--verbose=${Number.isNaN(level) ? 'NaN' : level}`)
  return rest
}
