import {ChunkedDecoder} from '../protocol/chunked-decoder.js'
import {MultipartParser, type Part} from '../protocol/multipart-parser.js'
import {readMarker} from './marker.js'

/** Where a subscription's messages go: every one counted, then its marker (if it has one) checked. */
export interface MessageSink {
  received(bodyBytes: number): void
  marker(publisher: number, seq: number, sentMicros: number): void
}

const CR = 0x0d
const LF = 0x0a
const MARKER = Buffer.from('msgbus-load=')
const CONTENT_TYPE = Buffer.from('content-type:')
/** A chunk held back for the rest of its bytes; a larger one goes to the general path, which streams it. */
const MAX_HELD_CHUNK = 1024 * 1024
/** Hex digits of a chunk size the fast path reads; more is the general path's to judge. */
const MAX_SIZE_DIGITS = 8

/**
 * Reads one subscription's stream after the response head. With thousands
 * of subscriptions a test-sub process spends its time here, once per
 * message and connection, and the time it takes is latency it adds to the
 * last connections it reads. So the stream msgbus sends (every message one
 * chunk: its headers, Content-Type first, the body and the next delimiter
 * line) is read straight off the bytes: no strings, no objects, no
 * allocation. Anything else (another server's framing, chunk extensions,
 * the closing delimiter) hands the rest of the stream, from the start of
 * that chunk, to the library's chunked decoder and multipart parser, which
 * read any split of any stream; the stream then stays with them.
 */
export class SubscriptionStream {
  /** `\r\n--boundary\r\n`: how every msgbus part ends; the opening chunk is all of it but the first CRLF. */
  private readonly delimiterLine: Buffer
  /** The first bytes of a chunk that did not all arrive in one read, copied out of the shared read buffer. */
  private held: Buffer | undefined
  /** The opening delimiter was read: the next chunk starts a part. */
  private inPart = false
  private general: ((data: Buffer) => void) | undefined
  /** A marker's publisher, seq and sent time, as read. */
  private readonly fields = [0, 0, 0]

  constructor(
    private readonly boundary: string,
    private readonly chunked: boolean,
    private readonly sink: MessageSink,
    /** Gets every part with its headers (test-sub --print); it takes the general path, which makes them. */
    private readonly onPart?: (part: Part) => void,
  ) {
    this.delimiterLine = Buffer.from(`\r\n--${boundary}\r\n`, 'latin1')
    // A boundary declared with dashes has two delimiter spellings (see MultipartParser): the general path's.
    if (!chunked || onPart || boundary.startsWith('--')) this.general = this.generalReader(false)
  }

  /** Reads data[0, end); data may be a shared read buffer, reused once this returns. */
  write(data: Buffer, end: number): void {
    if (this.held) {
      data = Buffer.concat([this.held, data.subarray(0, end)])
      end = data.length
      this.held = undefined
    }

    let at = 0
    while (at < end) {
      if (this.general) return this.general(data.subarray(at, end))
      const next = this.chunk(data, at, end)
      if (next === 0) {
        this.general = this.generalReader(this.inPart)
      } else if (next < 0) {
        this.held = Buffer.from(data.subarray(at, end))
        return
      } else {
        at = next
      }
    }
  }

  /**
   * One chunk at data[at]: returns where the next one starts, -1 when it has
   * not all arrived, 0 when it is not one this fast path reads.
   */
  private chunk(data: Buffer, at: number, end: number): number {
    let size = 0
    let i = at
    for (; i < end && i - at <= MAX_SIZE_DIGITS; i++) {
      const digit = hexDigit(data[i])
      if (digit < 0) break
      size = size * 16 + digit
    }

    if (i === end) return i - at <= MAX_SIZE_DIGITS ? -1 : 0
    // The last chunk (size 0), a size line with more than digits, a bad one: the general path's.
    if (i === at || size === 0 || size > MAX_HELD_CHUNK || data[i] !== CR) return 0
    if (i + 1 === end) return -1
    if (data[i + 1] !== LF) return 0
    const start = i + 2
    const stop = start + size
    if (stop + 2 > end) return -1
    if (data[stop] !== CR || data[stop + 1] !== LF) return 0
    return this.part(data, start, stop) ? stop + 2 : 0
  }

  /**
   * The payload data[start, stop) of a chunk, if it is one whole msgbus part
   * (or the opening delimiter): reads it and returns true. Byte loops, not
   * Buffer's compare and indexOf: on a part this short a call into C++ costs
   * more than the search.
   */
  private part(data: Buffer, start: number, stop: number): boolean {
    const line = this.delimiterLine
    if (!this.inPart) {
      // The opening: `--boundary\r\n`.
      this.inPart = stop - start === line.length - 2 && matches(data, start, line, 2)
      return this.inPart
    }

    const bodyEnd = stop - line.length
    if (bodyEnd < start + CONTENT_TYPE.length || !matches(data, bodyEnd, line, 0)) return false
    for (let k = 0; k < CONTENT_TYPE.length; k++) {
      if ((data[start + k] | 0x20) !== CONTENT_TYPE[k]) return false
    }

    // The Content-Type line, and the marker in it.
    let i = start + CONTENT_TYPE.length
    let marker = -1
    for (; i < bodyEnd && data[i] !== CR && data[i] !== LF; i++) {
      if (marker < 0 && data[i] === MARKER[0] && matches(data, i, MARKER, 0)) marker = i
    }

    // The blank line that ends the headers; a bare LF (which may end them sooner) is the general path's.
    let headEnd = -1
    for (; i + 2 < bodyEnd; i++) {
      if (data[i] !== LF) continue
      if (data[i - 1] !== CR) return false
      if (data[i + 1] === CR && data[i + 2] === LF) {
        headEnd = i - 1
        break
      }
    }

    if (headEnd < 0) return false
    if (marker >= 0 && !this.readMarker(data, start, marker)) return false
    this.sink.received(bodyEnd - headEnd - 4)
    if (marker >= 0) this.sink.marker(this.fields[0], this.fields[1], this.fields[2])
    return true
  }

  /**
   * The marker whose name is at data[at], in the Content-Type line at
   * `start`, into `fields`; false when it is not well formed (the general
   * path then judges the part).
   */
  private readMarker(data: Buffer, start: number, at: number): boolean {
    // `;\s*msgbus-load=`: the parameter, not a word inside another one.
    let before = at - 1
    while (before > start && (data[before] === 0x20 || data[before] === 0x09)) before--
    if (data[before] !== 0x3b) return false
    // `<publisher>.<seq>.<sent>`, each exact as a double (as readMarker's Number() reads them).
    const fields = this.fields
    let i = at + MARKER.length
    for (let f = 0; f < 3; f++) {
      if (f > 0 && data[i++] !== 0x2e) return false
      const from = i
      let value = 0
      for (; i < data.length && data[i] >= 0x30 && data[i] <= 0x39; i++) value = value * 10 + data[i] - 0x30
      if (i === from || i - from > 16 || value > Number.MAX_SAFE_INTEGER) return false
      fields[f] = value
    }

    return true
  }

  /** The library's decoder and parser, from the start of a chunk; `inPart`: a delimiter was read, the chunk begins a part. */
  private generalReader(inPart: boolean): (data: Buffer) => void {
    const parser = new MultipartParser(
      this.boundary,
      (part) => {
        this.onPart?.(part)
        this.sink.received(part.body.length)
        const marker = readMarker(part.headers['content-type'])
        if (marker) this.sink.marker(marker.publisher, marker.seq, marker.sentMicros)
      },
      {transientInput: true},
    )
    if (inPart) parser.write(this.delimiterLine.subarray(2))
    if (!this.chunked) return (data) => parser.write(data)
    const decoder = new ChunkedDecoder((payload) => parser.write(payload))
    return (data) => decoder.write(data)
  }
}

/** Whether data[at...] holds bytes[from...]. */
function matches(data: Buffer, at: number, bytes: Buffer, from: number): boolean {
  if (at + bytes.length - from > data.length) return false
  for (let k = from; k < bytes.length; k++) {
    if (data[at + k - from] !== bytes[k]) return false
  }

  return true
}

function hexDigit(byte: number): number {
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30
  const lower = byte | 0x20
  return lower >= 0x61 && lower <= 0x66 ? lower - 0x57 : -1
}
