/**
 * A segment: the part of a wildcard pattern between two `*`, made of
 * literal text and `?` (one character each). It matches a fixed number of
 * characters, which is what makes the leftmost-first search in wildcard.ts
 * exact. Every method works between two character boundaries and returns
 * one, or -1 for no match.
 */
import {codePointAt, endsHigh, nextChar, previousChar, splitsPair, startsLow} from './code-points.js'

/**
 * Finds a segment with `?` in it: the Shift-And (Baeza-Yates–Gonnet)
 * algorithm, one pass over the text with a bit per segment character, so
 * its cost is the text's length times the segment's length / 32, however
 * the text and segment are made (a naive try-each-position search is the
 * product of the two).
 */
class ShiftAndSearch {
  /** Words of state: ceil(characters / 32). */
  private readonly words: number
  /** Bit i of state: the last i + 1 characters read match the segment's first i + 1. */
  private readonly state: Int32Array
  /** For each ASCII character, the positions of the segment it may stand at (its own and every `?`), `words` words each. */
  private readonly ascii: Int32Array
  /** The same for the other characters of the segment. */
  private readonly others = new Map<number, Int32Array>()
  /** Any other character may stand only at a `?`. */
  private readonly anyChar: Int32Array
  private readonly lastWord: number
  private readonly lastBit: number

  /** `chars`: the segment's characters as code points, -1 for `?`. */
  constructor(chars: number[]) {
    const words = Math.ceil(chars.length / 32)
    this.words = words
    this.state = new Int32Array(words)
    this.anyChar = new Int32Array(words)
    chars.forEach((char, index) => {
      if (char < 0) this.anyChar[index >> 5] |= 1 << (index & 31)
    })
    this.ascii = new Int32Array(128 * words)
    for (let code = 0; code < 128; code++) this.ascii.set(this.anyChar, code * words)
    chars.forEach((char, index) => {
      if (char < 0) return
      let mask: Int32Array
      if (char < 128) {
        mask = this.ascii.subarray(char * words, (char + 1) * words)
      } else {
        mask = this.others.get(char) ?? Int32Array.from(this.anyChar)
        this.others.set(char, mask)
      }

      mask[index >> 5] |= 1 << (index & 31)
    })
    this.lastWord = (chars.length - 1) >> 5
    this.lastBit = 1 << ((chars.length - 1) & 31)
  }

  /** Where the leftmost occurrence within [from, limit) ends. */
  search(s: string, from: number, limit: number): number {
    const {words, state, ascii, lastWord, lastBit} = this
    state.fill(0)
    // Words from `live` on are all zero, and stay so until a carry reaches them: only the live ones are shifted.
    let live = 1
    let at = from
    while (at < limit) {
      const char = codePointAt(s, at)
      at += char > 0xffff ? 2 : 1
      let masks = ascii
      let offset = char * words
      if (char >= 128) {
        masks = this.others.get(char) ?? this.anyChar
        offset = 0
      }

      let carry = 1
      for (let word = 0; word < live; word++) {
        const bits = state[word]
        state[word] = ((bits << 1) | carry) & masks[offset + word]
        carry = bits >>> 31
      }

      if (carry && live < words) {
        state[live] = masks[offset + live] & 1
        live++
      }

      if (state[lastWord] & lastBit) return at
      while (live > 1 && state[live - 1] === 0) live--
    }

    return -1
  }
}

export class Segment {
  /** `?` before the first literal. */
  private readonly lead: number
  /** The literal runs, in order. */
  private readonly literals: string[]
  /** `?` after each literal. */
  private readonly after: number[]
  /** Per literal: may it be found starting on a pair's second half, or ending on its first? Then that place is no match. */
  private readonly cutsPair: boolean[]
  /** How a middle segment is found: a literal by indexOf, anything with `?` by Shift-And. */
  private readonly searcher: ShiftAndSearch | undefined

  /** `text`: a part of a pattern with no `*` in it. */
  constructor(readonly text: string) {
    this.literals = []
    this.after = []
    let lead = 0
    let literal = ''
    const chars: number[] = []
    for (const char of text) {
      chars.push(char === '?' ? -1 : char.codePointAt(0)!)
      if (char !== '?') {
        literal += char
      } else if (literal !== '') {
        this.literals.push(literal)
        this.after.push(1)
        literal = ''
      } else if (this.literals.length > 0) {
        this.after[this.after.length - 1]++
      } else {
        lead++
      }
    }

    if (literal !== '') {
      this.literals.push(literal)
      this.after.push(0)
    }

    this.lead = lead
    this.cutsPair = this.literals.map((run) => startsLow(run) || endsHigh(run))
    this.searcher = chars.includes(-1) ? new ShiftAndSearch(chars) : undefined
  }

  get isEmpty(): boolean {
    return this.text === ''
  }

  /** Where the segment ends when it starts at `at`, not passing `limit`. */
  matchAt(s: string, at: number, limit: number): number {
    let pos = skipForward(s, at, limit, this.lead)
    for (let index = 0; index < this.literals.length && pos >= 0; index++) {
      const literal = this.literals[index]
      const end = pos + literal.length
      if (end > limit || !s.startsWith(literal, pos) || (this.cutsPair[index] && splitsPair(s, end))) return -1
      pos = skipForward(s, end, limit, this.after[index])
    }

    return pos
  }

  /** Where the segment starts when it ends at `end`, not before `floor`. */
  matchEndingAt(s: string, end: number, floor: number): number {
    let pos = end
    for (let index = this.literals.length - 1; index >= 0 && pos >= 0; index--) {
      pos = skipBackward(s, pos, floor, this.after[index])
      if (pos < 0) return -1
      const literal = this.literals[index]
      const start = pos - literal.length
      if (start < floor || !s.startsWith(literal, start) || (this.cutsPair[index] && splitsPair(s, start))) return -1
      pos = start
    }

    return pos < 0 ? -1 : skipBackward(s, pos, floor, this.lead)
  }

  /** Where the leftmost occurrence within [from, limit) ends: the earliest end, as every occurrence is as many characters long. */
  search(s: string, from: number, limit: number): number {
    if (this.searcher) return this.searcher.search(s, from, limit)
    const literal = this.literals[0]
    for (let at = s.indexOf(literal, from); at >= 0; at = s.indexOf(literal, at + 1)) {
      const end = at + literal.length
      if (end > limit) return -1
      if (!this.cutsPair[0] || (!splitsPair(s, at) && !splitsPair(s, end))) return end
    }

    return -1
  }
}

function skipForward(s: string, at: number, limit: number, count: number): number {
  let pos = at
  for (let n = 0; n < count; n++) {
    if (pos >= limit) return -1
    pos = nextChar(s, pos)
  }

  return pos
}

function skipBackward(s: string, at: number, floor: number, count: number): number {
  let pos = at
  for (let n = 0; n < count; n++) {
    if (pos <= floor) return -1
    pos = previousChar(s, pos)
  }

  return pos
}
