/**
 * Wildcard pattern lists with OpenSSH's match_pattern_list semantics:
 * comma-separated patterns, `*` matches any run, `?` one character, and a
 * leading `!` negates. A string matches the list when some positive pattern
 * matches it and no negated pattern does; a negated match wins over any
 * positive one, and a list of only negated patterns matches nothing (write
 * `*,!image/*` to mean "everything but images").
 */
export type Matcher = (value: string) => boolean

export interface PatternOptions {
  /** Compare without regard to case (media types); sender names are case-sensitive. */
  ignoreCase?: boolean
}

function toRegExpSource(pattern: string): string {
  let source = ''
  for (const char of pattern) {
    if (char === '*') source += '.*'
    else if (char === '?') source += '.'
    // The syntax characters only: under the `u` flag an escaped `-` is an error.
    else source += char.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&')
  }

  return source
}

/** Compiles a pattern list once, so a subscription's filter costs one RegExp test per message. */
export function compilePatternList(list: string, options: PatternOptions = {}): Matcher {
  const positive: string[] = []
  const negative: string[] = []
  for (const raw of list.split(',')) {
    if (raw.startsWith('!')) negative.push(toRegExpSource(raw.slice(1)))
    else positive.push(toRegExpSource(raw))
  }

  // `s` so `*` crosses any character, `u` so `?` is one code point, not one UTF-16 unit.
  const flags = options.ignoreCase ? 'isu' : 'su'
  const anyPositive = positive.length > 0 ? new RegExp(`^(?:${positive.join('|')})$`, flags) : undefined
  const anyNegative = negative.length > 0 ? new RegExp(`^(?:${negative.join('|')})$`, flags) : undefined
  if (!anyPositive) return () => false
  if (!anyNegative) return (value) => anyPositive.test(value)
  return (value) => anyPositive.test(value) && !anyNegative.test(value)
}
