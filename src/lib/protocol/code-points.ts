/**
 * Stepping through a UTF-16 string one character (code point) at a time, as
 * a regular expression with the `u` flag does: a surrogate pair is one
 * character, a lone surrogate is one character too. Positions are UTF-16
 * indexes that never fall between the two halves of a pair.
 */

function isHigh(unit: number): boolean {
  return unit >= 0xd800 && unit <= 0xdbff
}

function isLow(unit: number): boolean {
  return unit >= 0xdc00 && unit <= 0xdfff
}

/** The position one character after `at` (`at` below the string's length). */
export function nextChar(s: string, at: number): number {
  return isHigh(s.charCodeAt(at)) && isLow(s.charCodeAt(at + 1)) ? at + 2 : at + 1
}

/** The position one character before `at` (`at` above 0). */
export function previousChar(s: string, at: number): number {
  return isLow(s.charCodeAt(at - 1)) && isHigh(s.charCodeAt(at - 2)) ? at - 2 : at - 1
}

/** The character at `at` (below the string's length): a lone surrogate is itself, as with the `u` flag. */
export function codePointAt(s: string, at: number): number {
  const unit = s.charCodeAt(at)
  if (!isHigh(unit)) return unit
  const low = s.charCodeAt(at + 1)
  return isLow(low) ? 0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00) : unit
}

/** Whether `at` falls between the two halves of a surrogate pair, so a match may not start or end there. */
export function splitsPair(s: string, at: number): boolean {
  return isLow(s.charCodeAt(at)) && isHigh(s.charCodeAt(at - 1))
}

/** Whether a literal's first unit is a lone low surrogate: where it is found, the text may have a pair's high half before it. */
export function startsLow(literal: string): boolean {
  return isLow(literal.charCodeAt(0))
}

/** Whether a literal's last unit is a lone high surrogate: where it is found, the text may have a pair's low half after it. */
export function endsHigh(literal: string): boolean {
  return isHigh(literal.charCodeAt(literal.length - 1))
}

/** How many characters a string has. */
export function countChars(s: string): number {
  let count = 0
  for (let at = 0; at < s.length; at = nextChar(s, at)) count++
  return count
}
