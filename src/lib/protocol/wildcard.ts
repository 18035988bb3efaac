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
 * does. Nothing is ever tried twice: the first and last segments are
 * compared in place, and the search for each one between starts where the
 * one before ended, so together they read the string about once (a segment
 * with `?` costs its length / 32 per character read, wildcard-segment.ts).
 * No backtracking, whatever the pattern and the string.
 */
import {endsHigh, startsLow} from './code-points.js'
import {Segment} from './wildcard-segment.js'

/** How a pattern is tested: the commonest shapes (`alice`, `text/*`, `*.png`, `*`) are one string comparison. */
const enum Shape {
  Exact,
  Prefix,
  Suffix,
  Anything,
  Segments,
}

/** One pattern, compiled. */
export class Wildcard {
  private readonly shape: Shape
  /** The literal of an Exact, Prefix or Suffix pattern. */
  private readonly literal: string = ''
  private readonly first: Segment | undefined
  private readonly last: Segment | undefined
  /** The non-empty segments between the first and the last. */
  private readonly middle: Segment[] = []
  /** The UTF-16 unit every match starts with, or -1 when the pattern starts with `*` or `?`: a list skips the pattern on a glance at the value. */
  readonly lead: number

  constructor(pattern: string) {
    const parts = pattern.split('*')
    const [prefix] = parts
    const suffix = parts.at(-1)!
    const starsOnlyBetween = parts.slice(1, -1).every((part) => part === '')
    if (pattern.includes('?')) {
      this.shape = Shape.Segments
    } else if (parts.length === 1) {
      this.shape = Shape.Exact
      this.literal = pattern
    } else if (parts.every((part) => part === '')) {
      this.shape = Shape.Anything
    } else if (starsOnlyBetween && suffix === '' && !endsHigh(prefix)) {
      this.shape = Shape.Prefix
      this.literal = prefix
    } else if (starsOnlyBetween && prefix === '' && !startsLow(suffix)) {
      this.shape = Shape.Suffix
      this.literal = suffix
    } else {
      this.shape = Shape.Segments
    }

    const opening = this.shape === Shape.Suffix ? '' : prefix
    this.lead = opening === '' || opening.startsWith('?') ? -1 : opening.charCodeAt(0)
    if (this.shape !== Shape.Segments) return
    const segments = parts.map((text) => new Segment(text))
    this.first = segments[0]
    if (segments.length === 1) return
    this.last = segments.at(-1)
    this.middle = segments.slice(1, -1).filter((segment) => !segment.isEmpty)
  }

  /** Whether the whole value matches. */
  matches(value: string): boolean {
    switch (this.shape) {
      case Shape.Exact:
        return value === this.literal
      case Shape.Prefix:
        return value.startsWith(this.literal)
      case Shape.Suffix:
        return value.endsWith(this.literal)
      case Shape.Anything:
        return true
      default:
        return this.matchesSegments(value)
    }
  }

  private matchesSegments(value: string): boolean {
    const first = this.first!
    const last = this.last
    if (!last) return first.matchAt(value, 0, value.length) === value.length
    const from = first.isEmpty ? 0 : first.matchAt(value, 0, value.length)
    if (from < 0) return false
    const limit = last.isEmpty ? value.length : last.matchEndingAt(value, value.length, from)
    if (limit < 0) return false
    let at = from
    for (let index = 0; index < this.middle.length && at >= 0; index++) at = this.middle[index].search(value, at, limit)
    return at >= 0
  }
}
