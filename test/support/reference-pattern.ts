/**
 * OpenSSH's match_pattern and match_pattern_list (match.c), transcribed
 * for property tests of src/lib/protocol/pattern.ts. Deliberately the C
 * algorithm, recursion and all, not a regular expression. Two differences,
 * both the project's documented choices:
 * - it works on code points, not bytes (`?` is one character of a UTF-8 name);
 * - case folding, when asked for, lower-cases both the pattern and the
 *   string (OpenSSH lower-cases the pattern and leaves the string to the
 *   caller; msgbus media types are lower-cased before matching anyway).
 */

/** match_pattern(s, pattern): `*` any run, `?` any one character, anything else itself. */
export function matchPattern(s: readonly string[], pattern: readonly string[], si = 0, pi = 0): boolean {
  for (;;) {
    if (pi === pattern.length) return si === s.length
    if (pattern[pi] === '*') {
      while (pattern[pi] === '*') pi++
      if (pi === pattern.length) return true
      if (pattern[pi] !== '?') {
        // The next pattern character is a literal: try only where it occurs.
        for (; si < s.length; si++) {
          if (s[si] === pattern[pi] && matchPattern(s, pattern, si + 1, pi + 1)) return true
        }

        return false
      }

      for (; si < s.length; si++) {
        if (matchPattern(s, pattern, si, pi)) return true
      }

      return false
    }

    if (si === s.length) return false
    if (pattern[pi] !== '?' && pattern[pi] !== s[si]) return false
    si++
    pi++
  }
}

/**
 * match_pattern_list(string, pattern, dolower): 1 when a positive pattern
 * matches and no negated one does, -1 at once when a negated pattern matches,
 * 0 otherwise. As in the C loop, a trailing comma adds no empty pattern,
 * while a leading or doubled one does.
 */
export function matchPatternList(string: string, list: string, ignoreCase = false): -1 | 0 | 1 {
  const fold = (text: string): string[] => Array.from(ignoreCase ? text.replace(/[A-Z]/g, (c) => c.toLowerCase()) : text)
  const s = fold(string)
  const chars = Array.from(list)
  let gotPositive = false
  for (let i = 0; i < chars.length; ) {
    let negated = false
    if (chars[i] === '!') {
      negated = true
      i++
    }

    const sub: string[] = []
    while (i < chars.length && chars[i] !== ',') sub.push(chars[i++])
    if (i < chars.length && chars[i] === ',') i++
    if (matchPattern(s, fold(sub.join('')))) {
      if (negated) return -1
      gotPositive = true
    }
  }

  return gotPositive ? 1 : 0
}
