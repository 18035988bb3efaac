/**
 * A streaming reader of multipart streams (multipart/x-mixed-replace,
 * multipart/mixed), lenient in what it accepts as PROTOCOL.md's "Clients
 * must accept" asks: `\r\n` or bare `\n` line ends, parts with or without
 * Content-Length, a delimiter with or without a line end before it, a
 * preamble, empty parts, the close delimiter anywhere, and any split of the
 * bytes across writes. Memory is bounded: a part's headers and body are held
 * to limits, and an oversized one is an error, never an out-of-memory.
 */

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
}

export class MultipartError extends Error {}

const enum State {
  Preamble,
  AfterDelimiter,
  Headers,
  SizedBody,
  OpenBody,
  SeekDelimiter,
  Closed,
}

const LF = 0x0a
const CR = 0x0d
const DASH = 0x2d

export class MultipartParser {
  private readonly delimiter: Buffer
  private readonly maxPartSize: number
  private readonly maxHeaderSize: number
  private state = State.Preamble
  /** Unconsumed bytes carried over from earlier writes. */
  private pending: Buffer | undefined
  private headers: Record<string, string> = {}
  private headerBytes = 0
  private remaining = 0
  private bodyChunks: Buffer[] = []
  private bodyLength = 0
  private partHasHeaders = false

  constructor(
    boundary: string,
    private readonly onPart: (part: Part) => void,
    limits: MultipartLimits = {},
  ) {
    if (boundary === '') throw new MultipartError('empty multipart boundary')
    // Cameras often declare `boundary=--frame` and then delimit with `--frame`.
    this.delimiter = Buffer.from(boundary.startsWith('--') ? boundary : `--${boundary}`, 'latin1')
    this.maxPartSize = limits.maxPartSize ?? 64 * 1024 * 1024
    this.maxHeaderSize = limits.maxHeaderSize ?? 64 * 1024
  }

  /** True once the close delimiter was seen; later bytes are ignored. */
  get closed(): boolean {
    return this.state === State.Closed
  }

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
        return
      }

      at = next
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
        // `--` closes; else optional padding and a line end, then the headers.
        if (data.length - at < 2) return -1
        if (data[at] === DASH && data[at + 1] === DASH) {
          this.state = State.Closed
          return data.length
        }

        let i = at
        while (i < data.length && (data[i] === 0x20 || data[i] === 0x09)) i++
        if (i === data.length) return -1
        if (data[i] === CR) {
          if (i + 1 === data.length) return -1
          if (data[i + 1] === LF) i += 2
        } else if (data[i] === LF) {
          i++
        }

        this.startPart()
        return i
      }

      case State.Headers:
        return this.readHeaderLine(data, at)

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
          const keep = Math.min(data.length - at, this.delimiter.length + 1)
          this.addBody(data.subarray(at, data.length - keep))
          this.pending = data.subarray(data.length - keep)
          return data.length
        }

        // The tail kept above always holds the line end before a delimiter, so it is here to strip.
        let end = found
        if (end > at && data[end - 1] === LF) end -= end - 1 > at && data[end - 2] === CR ? 2 : 1
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
  }

  private readHeaderLine(data: Buffer, at: number): number {
    const lf = data.indexOf(LF, at)
    if (lf < 0) {
      if (this.headerBytes + data.length - at > this.maxHeaderSize) throw new MultipartError('part headers too large')
      // A delimiter where a header should be: a part with no blank line after its (absent) headers.
      if (data.indexOf(this.delimiter, at) === at) return this.afterDelimiter(at)
      return -1
    }

    this.headerBytes += lf + 1 - at
    if (this.headerBytes > this.maxHeaderSize) throw new MultipartError('part headers too large')
    const end = lf > at && data[lf - 1] === CR ? lf - 1 : lf
    if (end === at) {
      this.beginBody()
      return lf + 1
    }

    const line = data.toString('latin1', at, end)
    if (line.startsWith(this.delimiter.toString('latin1'))) {
      // Headers cut short by the next delimiter: an empty part.
      return this.afterDelimiter(at)
    }

    const colon = line.indexOf(':')
    if (colon > 0) {
      const name = line.slice(0, colon).trim().toLowerCase()
      const value = line.slice(colon + 1).trim()
      this.headers[name] = name in this.headers ? `${this.headers[name]}, ${value}` : value
      this.partHasHeaders = true
    }

    return lf + 1
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

/** The boundary parameter of a multipart Content-Type, quoted or not. */
export function boundaryOf(contentType: string | undefined): string | undefined {
  if (!contentType || !/^\s*multipart\//i.test(contentType)) return undefined
  const match = /;\s*boundary\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]+))/i.exec(contentType)
  if (!match) return undefined
  return match[1] !== undefined ? match[1].replace(/\\(.)/g, '$1') : match[2]
}
