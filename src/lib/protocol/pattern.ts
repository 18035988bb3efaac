/**
 * Wildcard pattern lists with OpenSSH's match_pattern_list semantics:
 * comma-separated patterns, `*` matches any run, `?` one character, and a
 * leading `!` negates. A string matches the list when some positive pattern
 * matches it and no negated pattern does; a negated match wins over any
 * positive one, and a list of only negated patterns matches nothing (write
 * `*,!image/*` to mean "everything but images"). Every comma separates, so
 * a leading, doubled or trailing one adds the empty pattern, which matches
 * only the empty string (OpenSSH ignores a trailing one; this differs only
 * for the empty string, which no filter is ever asked about).
 */
import {countChars} from './code-points.js'
import {compileWildcard, type WildcardTest} from './wildcard.js'

export type Matcher = (value: string) => boolean

export interface PatternOptions {
  /** Compare ASCII letters without regard to case (media types, which are ASCII); sender names are case-sensitive. */
  ignoreCase?: boolean
}

/**
 * The most patterns in one list. Lists are written by hand (`text/*,image/*`)
 * and a wildcard covers many names, so 32 is more than any real list needs;
 * with MAX_PATTERN_CHARS it bounds what one list costs per message (each
 * pattern is at most one pass over the value per segment, wildcard.ts).
 */
export const MAX_PATTERNS = 32

/**
 * The longest pattern, in characters, its `!` not counted. What is matched
 * is at most 255 long (a channel or user name: 255 bytes; a media type:
 * 127 + 1 + 127 characters), so a pattern for any one name fits, with a `*`
 * to spare.
 */
export const MAX_PATTERN_CHARS = 256

/** A pattern list over the limits above; the message is one line saying which. */
export class PatternListError extends Error {}

const NOTHING: Matcher = () => false

function shown(pattern: string): string {
  return JSON.stringify(pattern.length > 40 ? `${pattern.slice(0, 40)}…` : pattern)
}

function checkLimits(patterns: string[]): void {
  if (patterns.length > MAX_PATTERNS) throw new PatternListError(`a list has at most ${MAX_PATTERNS} patterns, not ${patterns.length}`)
  for (const pattern of patterns) {
    const chars = countChars(pattern.startsWith('!') ? pattern.slice(1) : pattern)
    if (chars > MAX_PATTERN_CHARS) throw new PatternListError(`a pattern has at most ${MAX_PATTERN_CHARS} characters, not ${chars}: ${shown(pattern)}`)
  }
}

const ASCII_UPPER = /[A-Z]/g

/** ASCII letters lower-cased, as OpenSSH's tolower; the string itself (no copy) when it has no capitals. */
export function foldCase(value: string): string {
  for (let index = 0; index < value.length; index++) {
    const unit = value.charCodeAt(index)
    if (unit >= 0x41 && unit <= 0x5a) return value.replace(ASCII_UPPER, (letter) => letter.toLowerCase())
  }

  return value
}

function anyOf(tests: WildcardTest[]): WildcardTest {
  if (tests.length === 1) return tests[0]
  return (value) => {
    for (let index = 0; index < tests.length; index++) if (tests[index](value)) return true
    return false
  }
}

/**
 * Compiles a pattern list once, so a subscription's filter costs a few
 * string comparisons per message. Throws PatternListError when the list has
 * more than MAX_PATTERNS patterns or one longer than MAX_PATTERN_CHARS.
 */
export function compilePatternList(list: string, options: PatternOptions = {}): Matcher {
  const patterns = list.split(',')
  checkLimits(patterns)
  const fold = options.ignoreCase ? foldCase : undefined
  const positive: WildcardTest[] = []
  const negative: WildcardTest[] = []
  for (const pattern of patterns) {
    const negated = pattern.startsWith('!')
    const text = negated ? pattern.slice(1) : pattern
    const test = compileWildcard(fold ? fold(text) : text)
    if (negated) negative.push(test)
    else positive.push(test)
  }

  if (positive.length === 0) return NOTHING
  const anyPositive = anyOf(positive)
  const anyNegative = negative.length > 0 ? anyOf(negative) : undefined
  const test = anyNegative ? (value: string) => anyPositive(value) && !anyNegative(value) : anyPositive
  return fold ? (value) => test(fold(value)) : test
}
