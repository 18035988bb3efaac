/**
 * The worst filter lists the limits allow (src/lib/protocol/pattern.ts), and
 * the longest values they meet, for the matcher's benchmark
 * (bench/patterns.ts) and its cost test (test/support/filter-cost.ts).
 */
import {MAX_LIST_CHARS, MAX_PATTERNS} from '../src/lib/protocol/pattern.js'

/** A media type's essence as long as RFC 6838 allows (127 + 1 + 127), and a user name of 255 bytes. */
export const LONGEST_TYPE = `${'a'.repeat(127)}/${'a'.repeat(127)}`
export const LONGEST_NAME = 'a'.repeat(255)

export const times = (count: number, pattern: string): string => Array.from({length: count}, () => pattern).join(',')

/** As many copies of a pattern as one list may hold. */
export const fill = (pattern: string): string => times(Math.min(MAX_PATTERNS, Math.floor(MAX_LIST_CHARS / pattern.length)), pattern)

/** The issue's pattern (issue 10), ten times: 14 s a message for a backtracking matcher. */
export const ISSUE_LIST = times(10, '*a*a*a*a*a*a*a*a*a*b')

/** Patterns of up to 256 characters (the cap), most made to fail late against runs of `a`. */
export const WORST_PATTERNS: Record<string, string> = {
  'stars: *a*a…*a*b': `${'*a'.repeat(127)}*b`,
  'stars, the last piece missing: *b*a…*a': `*b${'*a'.repeat(127)}`,
  'one long literal: *aaa…ab*': `*${'a'.repeat(253)}b*`,
  'one long ? run: *a?a?…a?ab*': `*${'a?'.repeat(126)}ab*`,
  'one long ? run: *?a?a…?a?b*': `*${'?a'.repeat(126)}?b*`,
  'a ? run at the start, a piece missing: ???…?*b*a': `${'?'.repeat(252)}*b*a`,
  '31-character ? runs: (*a?a?…a?b)×7*': `${`*${'a?'.repeat(15)}b`.repeat(7)}*`,
  'short stars: *a*a…*a*b, 32 characters': `${'*a'.repeat(15)}*b`,
}
