/**
 * A streaming reader of multipart streams (multipart/x-mixed-replace,
 * multipart/mixed), lenient in what it accepts as docs/protocol.md's "Clients
 * must accept" asks: `\r\n` or bare `\n` line ends, parts with or without
 * Content-Length, a delimiter with or without a line end before it, a
 * preamble, transport padding, empty parts, the close delimiter anywhere,
 * a boundary declared with leading dashes (`boundary=--frame`) and used
 * either as cameras do (`--frame`) or as RFC 2046 says (`----frame`), and
 * any split of the bytes across writes. Memory is bounded: a part's headers and body are held
 * to limits, and an oversized one is an error, never an out-of-memory.
 */
import {codedError} from '../util/errors.js'
import {CR, DASH, LF} from './bytes.js'

export interface Part {
  /** Header names lower-cased; repeated headers joined with ", ". */
  headers: Record<string, string>
  body: Buffer
}

export interface MultipartLimits {
  /** Largest body of one part, in bytes. Default 64 MiB. */
  maxPartSize?: number
  /** Largest header block of one part, in bytes. Default 64 KiB. */
  maxHeaderSize?: number
  /**
   * The caller reuses each buffer once write() returns (a socket's shared
   * `onread` buffer): the parser then copies the little it keeps between
   * writes, and a part's body is valid only during onPart.
   */
  transientInput?: boolean
}

/** A multipart stream the parser refuses: malformed past reading on, or over its MultipartLimits. */
export class MultipartError extends codedError('ERR_MSGBUS_MULTIPART_INVALID') {}

const enum State {
  Preamble,
  AfterDelimiter,
  Padding,
  Headers,
  SizedBody,
  OpenBody,
  SeekDelimiter,
  Closed,
}

const CRLF_CRLF = Buffer.from('\r\n\r\n')
const BARE_LF = /(?:^|[^\r])\n/
const SP = 0x20
const HT = 0x09

/** Adds a header, joining repeats; names such as `constructor` and `__proto__` are headers like any other. */
function addHeader(headers: Record<string, string>, name: string, value: string): void {
  const joined = Object.hasOwn(headers, name) ? `${headers[name]}, ${value}` : value
  if (name === '__proto__') Object.defineProperty(headers, name, {value: joined, enumerable: true, writable: true, configurable: true})
  else headers[name] = joined
}

export class MultipartParser {
  private readonly delimiter: Buffer
  /**
   * The boundary was declared with leading dashes (`boundary=--frame`): cameras
   * then delimit with `--frame`, RFC 2046 with `----frame`. The parser looks for
   * `--frame` and takes two dashes just before it as part of the delimiter.
   */
  private readonly dashed: boolean
  private readonly delimiterText: string
  /** Bytes of an unsized body held back per write: a split delimiter, the dashes and line end before it. */
  private readonly holdBack: number
  private readonly maxPartSize: number
  private readonly maxHeaderSize: number
  private readonly transientInput: boolean
  private state = State.Preamble
  /** Unconsumed bytes carried over from earlier writes. */
  private pending: Buffer | undefined
  private headers: Record<string, string> = {}
  private headerBytes = 0
  private remaining = 0
  private bodyChunks: Buffer[] = []
  private bodyLength = 0
  private partHasHeaders = false
  /**
   * The part had headers and their block ended with a bare LF: the 2007
   * dialect, whose body is every byte before the delimiter, trailing line
   * ends included.
   */
  private bareHeaders = false

  constructor(
    boundary: string,
    private readonly onPart: (part: Part) => void,
    limits: MultipartLimits = {},
  ) {
    if (boundary === '') throw new MultipartError('empty multipart boundary')
    this.dashed = boundary.startsWith('--')
    this.delimiter = Buffer.from(this.dashed ? boundary : `--${boundary}`, 'latin1')
    this.delimiterText = this.delimiter.toString('latin1')
    this.holdBack = this.delimiter.length + 1 + (this.dashed ? 2 : 0)
    this.maxPartSize = limits.maxPartSize ?? 64 * 1024 * 1024
    this.maxHeaderSize = limits.maxHeaderSize ?? 64 * 1024
    this.transientInput = limits.transientInput ?? false
  }

  /** True once the close delimiter was seen; later bytes are ignored. */
  get closed(): boolean {
    return this.state === State.Closed
  }

  /**
   * Parses the bytes, calling onPart for each part completed. A part's body
   * may be a view into the chunks written (no copy), so do not reuse a
   * buffer once written (unless transientInput). Throws MultipartError when
   * a limit is passed.
   */
  write(chunk: Buffer): void {
    if (this.state === State.Closed || chunk.length === 0) return
    let data = chunk
    if (this.pending) {
      data = Buffer.concat([this.pending, chunk])
      this.pending = undefined
    }

    let at = 0
    while (at < data.length && (this.state as State) !== State.Closed) {
      const next = this.step(data, at)
      if (next < 0) {
        // Needs more bytes than there are: keep what is left for the next write.
        this.pending = data.subarray(at)
        break
      }

      at = next
    }

    if (this.transientInput) this.detachFrom(chunk)
  }

  /** Copies what is kept between writes out of a buffer the caller is about to reuse. */
  private detachFrom(chunk: Buffer): void {
    const inside = (piece: Buffer) => piece.buffer === chunk.buffer
    if (this.pending && inside(this.pending)) this.pending = Buffer.from(this.pending)
    for (let i = 0; i < this.bodyChunks.length; i++) {
      if (inside(this.bodyChunks[i])) this.bodyChunks[i] = Buffer.from(this.bodyChunks[i])
    }
  }

  /** Consumes what it can from data[at..]; returns the new position, or -1 when it needs more bytes. */
  private step(data: Buffer, at: number): number {
    switch (this.state) {
      case State.Preamble:
      case State.SeekDelimiter: {
        const found = data.indexOf(this.delimiter, at)
        if (found < 0) return this.keepTail(data, at)
        return this.afterDelimiter(found)
      }

      case State.AfterDelimiter: {
        // `--` closes; anything else starts a part.
        if (data.length - at < 2) return -1
        if (data[at] === DASH && data[at + 1] === DASH) {
          this.state = State.Closed
          return data.length
        }

        this.startPart()
        this.state = State.Padding
        return at
      }

      case State.Padding: {
        // Transport padding (spaces, tabs) and the line end of the delimiter line.
        // Consumed as it comes, and counted with the headers so it cannot go on forever.
        let i = at
        while (i < data.length && (data[i] === SP || data[i] === HT)) i++
        this.headerBytes += i - at
        if (this.headerBytes > this.maxHeaderSize) throw new MultipartError('part headers too large')
        if (i === data.length) return i
        if (data[i] === CR) {
          if (i + 1 === data.length) return i > at ? i : -1
          if (data[i + 1] === LF) i += 2
        } else if (data[i] === LF) {
          i++
        }

        this.state = State.Headers
        return i
      }

      case State.Headers:
        return this.headerBytes === 0 ? this.readHeaderBlock(data, at) : this.readHeaderLine(data, at)

      case State.SizedBody: {
        const take = Math.min(this.remaining, data.length - at)
        this.bodyChunks.push(data.subarray(at, at + take))
        this.bodyLength += take
        this.remaining -= take
        if (this.remaining === 0) {
          this.emitPart()
          this.state = State.SeekDelimiter
        }

        return at + take
      }

      case State.OpenBody: {
        const found = data.indexOf(this.delimiter, at)
        if (found < 0) {
          // Keep enough of the tail to see a delimiter (and the line end before it) split across writes.
          const keep = Math.min(data.length - at, this.holdBack)
          this.addBody(data.subarray(at, data.length - keep))
          this.pending = data.subarray(data.length - keep)
          return data.length
        }

        // The tail kept above always holds the dashes and line end before a delimiter, so they are here to strip.
        let end = found
        if (this.dashed && end - 2 >= at && data[end - 1] === DASH && data[end - 2] === DASH) end -= 2
        // RFC 2046: the line end before a delimiter belongs to it. Not in the 2007 dialect, whose bodies run up to the dashes.
        if (!this.bareHeaders && end > at && data[end - 1] === LF) end -= end - 1 > at && data[end - 2] === CR ? 2 : 1
        this.addBody(data.subarray(at, end))
        this.emitPart()
        return this.afterDelimiter(found)
      }

      default:
        return data.length
    }
  }

  private afterDelimiter(found: number): number {
    this.state = State.AfterDelimiter
    return found + this.delimiter.length
  }

  /** In the preamble or between parts: drop what cannot start a delimiter, keep the rest. */
  private keepTail(data: Buffer, at: number): number {
    const keep = Math.min(data.length - at, this.delimiter.length - 1)
    if (keep > 0) this.pending = data.subarray(data.length - keep)
    return data.length
  }

  private startPart(): void {
    this.state = State.Headers
    this.headers = {}
    this.headerBytes = 0
    this.bodyChunks = []
    this.bodyLength = 0
    this.partHasHeaders = false
    this.bareHeaders = false
  }

  /**
   * The common case, read in one go: a whole CRLF header block already in
   * hand, no line of it a delimiter. Anything else goes line by line.
   */
  private readHeaderBlock(data: Buffer, at: number): number {
    const blank = data.indexOf(CRLF_CRLF, at)
    // No headers at all (a blank line at once) is the line reader's case too.
    if (blank <= at || blank + 4 - at > this.maxHeaderSize || (data[at] === CR && data[at + 1] === LF)) return this.readHeaderLine(data, at)
    const text = data.toString('latin1', at, blank)
    // A delimiter inside, or a bare LF (which may end the block sooner): line by line.
    if (text.includes(this.delimiterText) || BARE_LF.test(text)) return this.readHeaderLine(data, at)
    const headers = this.headers
    let lineStart = 0
    while (lineStart <= text.length) {
      let lineEnd = text.indexOf('\r\n', lineStart)
      if (lineEnd < 0) lineEnd = text.length
      const colon = text.indexOf(':', lineStart)
      if (colon > lineStart && colon < lineEnd) {
        const name = text.slice(lineStart, colon).trim().toLowerCase()
        const value = text.slice(colon + 1, lineEnd).trim()
        addHeader(headers, name, value)
        this.partHasHeaders = true
      }

      lineStart = lineEnd + 2
    }

    this.headerBytes = blank + 4 - at
    this.beginBody()
    return blank + 4
  }

  private readHeaderLine(data: Buffer, at: number): number {
    // A delimiter where a header should be: a part with no blank line after its (absent) headers.
    // Checked before the line is counted, so the outcome does not depend on where the input was split.
    const lf = data.indexOf(LF, at)
    const end = lf < 0 ? data.length : lf > at && data[lf - 1] === CR ? lf - 1 : lf
    const delimiterAt = this.delimiterAt(data, at, end)
    if (delimiterAt >= 0) return this.afterDelimiter(delimiterAt)
    if (lf < 0) {
      // Not counted while it may still turn out to be a delimiter (one is never longer than the hold-back).
      if (end - at >= this.holdBack && this.headerBytes + data.length - at > this.maxHeaderSize) throw new MultipartError('part headers too large')
      return -1
    }

    this.headerBytes += lf + 1 - at
    if (this.headerBytes > this.maxHeaderSize) throw new MultipartError('part headers too large')
    if (end === at) {
      this.bareHeaders = lf === at && this.partHasHeaders
      this.beginBody()
      return lf + 1
    }

    const line = data.toString('latin1', at, end)
    const colon = line.indexOf(':')
    if (colon > 0) {
      const name = line.slice(0, colon).trim().toLowerCase()
      const value = line.slice(colon + 1).trim()
      addHeader(this.headers, name, value)
      this.partHasHeaders = true
    }

    return lf + 1
  }

  /** Where the delimiter starts when the line data[at..end) begins with one (after `--` for a dashed boundary), else -1. */
  private delimiterAt(data: Buffer, at: number, end: number): number {
    if (this.isDelimiter(data, at, end)) return at
    if (this.dashed && data[at] === DASH && data[at + 1] === DASH && this.isDelimiter(data, at + 2, end)) return at + 2
    return -1
  }

  private isDelimiter(data: Buffer, at: number, end: number): boolean {
    const {delimiter} = this
    return end - at >= delimiter.length && data.compare(delimiter, 0, delimiter.length, at, at + delimiter.length) === 0
  }

  private beginBody(): void {
    const declared = this.headers['content-length']
    if (declared !== undefined && /^\d+$/.test(declared)) {
      const length = Number(declared)
      if (length > this.maxPartSize) throw new MultipartError(`part of ${length} bytes is over the limit of ${this.maxPartSize}`)
      this.remaining = length
      if (length === 0) {
        this.emitPart()
        this.state = State.SeekDelimiter
      } else {
        this.state = State.SizedBody
      }
    } else {
      this.state = State.OpenBody
    }
  }

  private addBody(piece: Buffer): void {
    if (piece.length === 0) return
    this.bodyLength += piece.length
    if (this.bodyLength > this.maxPartSize) throw new MultipartError(`part over the limit of ${this.maxPartSize} bytes`)
    this.bodyChunks.push(piece)
  }

  private emitPart(): void {
    const chunks = this.bodyChunks
    const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, this.bodyLength)
    this.bodyChunks = []
    // Empty parts (no headers, no body) carry nothing: the stream's opening or closing filler.
    if (!this.partHasHeaders && body.length === 0) return
    this.onPart({headers: this.headers, body})
  }
}

/** One `; name=value` parameter (RFC 9110 §5.6.6): a token or a quoted-string value, then anything up to the next `;`. */
const PARAMETER = /\s*;\s*([^\s;=]*)\s*(?:=\s*(?:"((?:[^"\\]|\\[\s\S])*)"|([^;\s]*)))?[^;]*/y

/**
 * The boundary parameter of a multipart Content-Type, quoted or not.
 * Parameters are read in order, so a quoted value of another parameter
 * (`name="x; boundary=y"`) is never taken for it. Undefined when the type is
 * not multipart or the boundary is missing or empty.
 */
export function boundaryOf(contentType: string | undefined): string | undefined {
  if (!contentType || !/^\s*multipart\/[^\s;]+\s*(;|$)/i.test(contentType)) return undefined
  const first = contentType.indexOf(';')
  if (first < 0) return undefined
  PARAMETER.lastIndex = first
  while (PARAMETER.lastIndex < contentType.length) {
    const match = PARAMETER.exec(contentType)
    if (!match) return undefined
    if (match[1].toLowerCase() !== 'boundary') continue
    const value = match[2] !== undefined ? match[2].replace(/\\([\s\S])/g, '$1') : match[3]
    return value || undefined
  }

  return undefined
}
