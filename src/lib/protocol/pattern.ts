/**
 * Wildcard pattern lists with OpenSSH's match_pattern_list semantics:
 * comma-separated patterns, `*` matches any run, `?` one character, and a
 * leading `!` negates. A string matches the list when some positive pattern
 * matches it and no negated pattern does; a negated match wins over any
 * positive one, and a list of only negated patterns matches nothing (write
 * `*,!image/*` to mean "everything but images"). As in OpenSSH, a leading
 * or doubled comma adds the empty pattern, which matches only the empty
 * string (a message without a sender, to `sender=`), and a trailing one
 * adds nothing.
 */
import {codedError} from '../util/errors.js'
import {countChars} from './code-points.js'
import {Wildcard} from './wildcard.js'

export type Matcher = (value: string) => boolean

export interface PatternOptions {
  /** Compare ASCII letters without regard to case (media types, which are ASCII); sender names are case-sensitive. */
  ignoreCase?: boolean
}

/**
 * The most patterns in one list. Lists are written by hand (`text/*,image/*`)
 * and a wildcard covers many names, so 32 is more than any real list needs;
 * with MAX_PATTERN_CHARS it bounds what one list costs per message (each
 * pattern is at most one pass over the value per segment, wildcard.ts),
 * as MAX_LIST_CHARS does.
 */
export const MAX_PATTERNS = 32

/**
 * The longest pattern, in characters, its `!` not counted. What is matched
 * is at most 255 long (a channel or user name: 255 bytes; a media type:
 * 127 + 1 + 127 characters), so a pattern for any one name fits, with a `*`
 * to spare.
 */
export const MAX_PATTERN_CHARS = 256

/**
 * The most characters of patterns in one list, `!`s and commas not counted.
 * A list's cost per message grows with its length: 32 patterns of 256
 * characters each cost some 0.1 ms a match against a 255-character value,
 * which a few thousand subscriptions would turn into seconds per message.
 * A kibibyte is room for any list written by hand.
 */
export const MAX_LIST_CHARS = 1024

/** A pattern list over the limits above; the message is one line saying which. */
export class PatternListError extends codedError('ERR_MSGBUS_PATTERN_LIST_INVALID') {}

function shown(pattern: string): string {
  return JSON.stringify(pattern.length > 40 ? `${pattern.slice(0, 40)}…` : pattern)
}

function checkLimits(patterns: string[]): void {
  if (patterns.length > MAX_PATTERNS) throw new PatternListError(`a list has at most ${MAX_PATTERNS} patterns, not ${patterns.length}`)
  let total = 0
  for (const pattern of patterns) {
    const chars = countChars(pattern.startsWith('!') ? pattern.slice(1) : pattern)
    if (chars > MAX_PATTERN_CHARS) throw new PatternListError(`a pattern has at most ${MAX_PATTERN_CHARS} characters, not ${chars}: ${shown(pattern)}`)
    total += chars
  }

  if (total > MAX_LIST_CHARS) throw new PatternListError(`a list has at most ${MAX_LIST_CHARS} characters of patterns, not ${total}`)
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

/**
 * A pattern list, compiled once so that a subscription's filter costs a few
 * string comparisons per message. `new PatternList(list)` throws
 * PatternListError when the list has more than MAX_PATTERNS patterns, one
 * longer than MAX_PATTERN_CHARS, or more than MAX_LIST_CHARS in all.
 */
export class PatternList {
  private readonly positive: Wildcard[] = []
  private readonly negative: Wildcard[] = []

  /** `list` as given; with ignoreCase its ASCII letters are folded here, and matches() must be given folded values (foldCase). */
  constructor(list: string, options: PatternOptions = {}) {
    const patterns = list === '' ? [] : list.split(',')
    if (patterns.length > 1 && patterns[patterns.length - 1] === '') patterns.pop()
    checkLimits(patterns)
    for (const pattern of patterns) {
      const negated = pattern.startsWith('!')
      const text = negated ? pattern.slice(1) : pattern
      const wildcard = new Wildcard(options.ignoreCase ? foldCase(text) : text)
      if (negated) this.negative.push(wildcard)
      else this.positive.push(wildcard)
    }
  }

  /** Whether a positive pattern matches the value and no negated one does. */
  matches(value: string): boolean {
    // NaN for the empty string: then only patterns without a lead are tried.
    const first = value.charCodeAt(0)
    if (!anyMatches(this.positive, value, first)) return false
    return this.negative.length === 0 || !anyMatches(this.negative, value, first)
  }
}

/** Whether a pattern matches the value; those that must start with another unit than `first` (Wildcard.lead) are not tried. */
function anyMatches(patterns: Wildcard[], value: string, first: number): boolean {
  for (let index = 0; index < patterns.length; index++) {
    const pattern = patterns[index]
    if ((pattern.lead < 0 || pattern.lead === first) && pattern.matches(value)) return true
  }

  return false
}

/** A PatternList as a function; with ignoreCase, values are folded before matching. Throws PatternListError as PatternList does. */
export function compilePatternList(list: string, options: PatternOptions = {}): Matcher {
  const compiled = new PatternList(list, options)
  return options.ignoreCase ? (value) => compiled.matches(foldCase(value)) : (value) => compiled.matches(value)
}
