/**
 * One wildcard pattern (`*` any run of characters, `?` one character,
 * anything else itself), matched against a whole string without a regular
 * expression, at a cost bounded by construction.
 *
 * The pattern is cut at each `*` into segments, each a fixed number of
 * characters long. The first must match at the start, the last at the end,
 * and the ones between are found left to right, each at its leftmost place
 * after the one before: a segment placed further left ends further left
 * and leaves more room for the rest, so if any placement works this one
 * does. Nothing is ever tried twice, so the cost is at most one pass over
 * the string per segment: linear in the string's length, times the
 * segment's length / 32 for segments with `?` (see wildcard-segment.ts).
 */
import {endsHigh, startsLow} from './code-points.js'
import {Segment} from './wildcard-segment.js'

/** A test of a whole string against one pattern. */
export type WildcardTest = (value: string) => boolean

const ALWAYS: WildcardTest = () => true

/** Compiles a pattern; the commonest shapes (`alice`, `text/*`, `*`) cost one string comparison. */
export function compileWildcard(pattern: string): WildcardTest {
  if (!pattern.includes('?')) {
    const parts = pattern.split('*')
    if (parts.length === 1) return (value) => value === pattern
    if (parts.every((part) => part === '')) return ALWAYS
    const [prefix] = parts
    const suffix = parts.at(-1)!
    if (parts.length === 2 || parts.slice(1, -1).every((part) => part === '')) {
      if (suffix === '' && !endsHigh(prefix)) return (value) => value.startsWith(prefix)
      if (prefix === '' && !startsLow(suffix)) return (value) => value.endsWith(suffix)
    }
  }

  return matcherOf(pattern.split('*').map((text) => new Segment(text)))
}

function matcherOf(segments: Segment[]): WildcardTest {
  const first = segments[0]
  if (segments.length === 1) return (value) => first.matchAt(value, 0, value.length) === value.length
  const last = segments.at(-1)!
  const middle = segments.slice(1, -1).filter((segment) => !segment.isEmpty)
  return (value) => {
    const from = first.isEmpty ? 0 : first.matchAt(value, 0, value.length)
    if (from < 0) return false
    const limit = last.isEmpty ? value.length : last.matchEndingAt(value, value.length, from)
    if (limit < 0) return false
    let at = from
    for (let index = 0; index < middle.length && at >= 0; index++) at = middle[index].search(value, at, limit)
    return at >= 0
  }
}
