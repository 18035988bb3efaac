/**
 * A reference reader of multipart streams for property tests: the whole
 * stream at once, as a latin1 string, one rule after the other as
 * docs/protocol.md "Clients must accept" and the README state them. Slow and
 * simple on purpose; it shares no code with src/lib/protocol/multipart-parser.ts.
 *
 * The rules:
 * - The delimiter is `--<boundary>`; a boundary declared with leading dashes
 *   (`--frame`) is itself the delimiter, and two dashes just before it belong
 *   to it (RFC 2046 writers send `----frame`). The first delimiter may come
 *   anywhere; what precedes it is preamble.
 * - After a delimiter: `--` closes the stream (nothing after it counts);
 *   fewer than two more bytes is an unfinished stream. Otherwise a part
 *   starts: spaces and tabs (transport padding), then one `\r\n` or `\n`.
 * - Header lines end at `\n`, one `\r` before it dropped. The empty line ends
 *   the headers. A line that begins with the delimiter (after `--` too, for a
 *   dashed boundary) abandons the part: the stream continues at that delimiter.
 *   A line with a colon after its first character is a header: the name
 *   before it, trimmed and lower-cased, the value after it, trimmed; repeats
 *   are joined with `, `. Other lines are ignored.
 * - A Content-Length of decimal digits: the body is that many bytes; then
 *   everything up to the next delimiter is skipped. Otherwise the body runs
 *   to the next delimiter, less the two dashes of a dashed boundary's
 *   delimiter, then less one `\r\n` or `\n`, unless the part has headers
 *   and the empty line that ended them was a bare `\n` (the 2007 dialect):
 *   then no line end is taken off.
 * - A part with no header and an empty body is not a part.
 * - A part whose body is not complete when the input ends is not a part.
 */

export interface ReferencePart {
  /** Own properties only, made with Object.fromEntries: a header named `__proto__` is a header. */
  headers: Record<string, string>
  body: Buffer
}

export interface ReferenceResult {
  parts: ReferencePart[]
  closed: boolean
}

/** JavaScript's String.prototype.trim, written out (what counts as white space in latin1). */
const TRIM = /^[\t\n\v\f\r \u00a0]+|[\t\n\v\f\r \u00a0]+$/g

export function referenceParse(stream: Buffer, boundary: string): ReferenceResult {
  if (boundary === '') throw new Error('empty boundary')
  const text = stream.toString('latin1')
  const dashed = boundary.startsWith('--')
  const delimiter = dashed ? boundary : `--${boundary}`
  const parts: ReferencePart[] = []
  const unfinished = (): ReferenceResult => ({parts, closed: false})

  /** Where a delimiter starts when the line at `at` begins with one, else -1. */
  const delimiterAtLineStart = (at: number): number => {
    if (text.startsWith(delimiter, at)) return at
    if (dashed && text.startsWith(`--${delimiter}`, at)) return at + 2
    return -1
  }

  let next = text.indexOf(delimiter)
  parts: while (next >= 0) {
    let at = next + delimiter.length
    if (text.length - at < 2) return unfinished()
    if (text.slice(at, at + 2) === '--') return {parts, closed: true}

    while (text[at] === ' ' || text[at] === '\t') at++
    if (text.startsWith('\r\n', at)) at += 2
    else if (text[at] === '\n') at += 1

    const headers = new Map<string, string>()
    /** Whether the last header line read (in the end the empty one) ended with a bare `\n`. */
    let bare = false
    for (;;) {
      const abandon = delimiterAtLineStart(at)
      if (abandon >= 0) {
        next = abandon
        continue parts
      }

      const lf = text.indexOf('\n', at)
      if (lf < 0) return unfinished()
      const line = text.slice(at, lf).replace(/\r$/, '')
      bare = lf === at
      at = lf + 1
      if (line === '') break
      const colon = line.indexOf(':')
      if (colon > 0) {
        const name = line.slice(0, colon).replace(TRIM, '').toLowerCase()
        const value = line.slice(colon + 1).replace(TRIM, '')
        const before = headers.get(name)
        headers.set(name, before === undefined ? value : `${before}, ${value}`)
      }
    }

    let body: string
    const length = headers.get('content-length')
    if (length !== undefined && /^[0-9]+$/.test(length)) {
      const end = at + Number(length)
      if (end > text.length) return unfinished()
      body = text.slice(at, end)
      next = text.indexOf(delimiter, end)
    } else {
      next = text.indexOf(delimiter, at)
      if (next < 0) return unfinished()
      let raw = text.slice(at, next)
      if (dashed && raw.endsWith('--')) raw = raw.slice(0, -2)
      body = bare && headers.size > 0 ? raw : raw.replace(/\r?\n$/, '')
    }

    if (headers.size > 0 || body !== '') parts.push({headers: Object.fromEntries(headers), body: Buffer.from(body, 'latin1')})
  }

  return unfinished()
}
