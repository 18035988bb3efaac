import {ChunkedDecoder} from '../protocol/chunked-decoder.js'
import {MultipartParser, type Part} from '../protocol/multipart-parser.js'
import {isMessageId, parseMessageId} from '../bus/message-id.js'
import {CR, LF} from '../protocol/bytes.js'
import {MARKER_BYTES, readMarker} from './marker.js'
import {HAS_ID, HAS_MARKER, Literal, MsgbusPart, NOT_MSGBUS, readNumbers, viewOf} from './msgbus-part.js'

/** Where a subscription's messages go: every one counted, then its marker (if it has one) checked, then its id (if it has one) kept. */
export interface MessageSink {
  received(bodyBytes: number): void
  marker(publisher: number, seq: number, sentMicros: number): void
  /** The message's id, `<ms>-<seq>`, as its two numbers. */
  id(ms: number, seq: number): void
  /** A gap event (`Msgbus-Event: gap`, asked for with `?gaps=1`): not a message. */
  gap(): void
}

const CONTENT_TYPE = Buffer.from('content-type:')
const MESSAGE_ID = Buffer.from('message-id:')
const MSGBUS_EVENT = Buffer.from('msgbus-event:')
const GAP = Buffer.from('gap')
/** A chunk held back for the rest of its bytes; a larger one goes to the general path, which streams it. */
const MAX_HELD_CHUNK = 1024 * 1024
/** Hex digits of a chunk size the fast path reads; more is the general path's to judge. */
const MAX_SIZE_DIGITS = 8

/** Scratch for the part being read: reads run one at a time, and one object stays in the cache where one per connection would not. */
const MSGBUS_PART = new MsgbusPart()
/** The delimiter lines of each boundary: msgbus has one boundary for all its streams. A server with one per stream gets its own, uncached past the first few. */
const DELIMITERS = new Map<string, {opening: Literal; closing: Literal}>()
const MAX_CACHED_BOUNDARIES = 64

function delimitersOf(line: Buffer): {opening: Literal; closing: Literal} {
  const key = line.toString('latin1')
  let delimiters = DELIMITERS.get(key)
  if (!delimiters) {
    delimiters = {opening: new Literal(line.subarray(2)), closing: new Literal(line)}
    if (DELIMITERS.size < MAX_CACHED_BOUNDARIES) DELIMITERS.set(key, delimiters)
  }

  return delimiters
}

/**
 * Reads one subscription's stream after the response head. With thousands
 * of subscriptions a test-sub process spends its time here, once per
 * message and connection, and the time it takes is latency it adds to the
 * last connections it reads. So the stream msgbus sends (every message one
 * chunk: its headers, Content-Type first, the body and the next delimiter
 * line) is read straight off the bytes: no strings, no objects, no
 * allocation; a part exactly as msgbus writes it by MsgbusPart, a word at
 * a time, any other part by the byte loops below. Anything else (another
 * server's framing, chunk extensions, the closing delimiter) hands the
 * rest of the stream, from the start of that chunk, to the library's
 * chunked decoder and multipart parser, which read any split of any
 * stream; the stream then stays with them.
 */
export class SubscriptionStream {
  /** `\r\n--boundary\r\n`: how every msgbus part ends; the opening chunk is all of it but the first CRLF. */
  private readonly delimiterLine: Buffer
  /** The same, as Literals: every part is checked for it. */
  private readonly closing: Literal
  private readonly opening: Literal
  /** The first bytes of a chunk that did not all arrive in one read, copied out of the shared read buffer. */
  private held: Buffer | undefined
  /** The opening delimiter was read: the next chunk starts a part. */
  private inPart = false
  private general: ((data: Buffer) => void) | undefined
  /** A marker's publisher, seq and sent time, as read. */
  private readonly fields = [0, 0, 0]
  /** A Message-ID's two numbers, as read. */
  private readonly idFields = [0, 0]

  constructor(
    private readonly boundary: string,
    private readonly chunked: boolean,
    private readonly sink: MessageSink,
    /** Gets every part with its headers (test-sub --print); it takes the general path, which makes them. */
    private readonly onPart?: (part: Part) => void,
  ) {
    this.delimiterLine = Buffer.from(`\r\n--${boundary}\r\n`, 'latin1')
    const delimiters = delimitersOf(this.delimiterLine)
    this.opening = delimiters.opening
    this.closing = delimiters.closing
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

    const view = viewOf(data)
    let at = 0
    while (at < end) {
      if (this.general) return this.general(data.subarray(at, end))
      const next = this.chunk(data, view, at, end)
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
  private chunk(data: Buffer, view: DataView, at: number, end: number): number {
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
    return this.part(data, view, start, stop) ? stop + 2 : 0
  }

  /**
   * The payload data[start, stop) of a chunk, if it is one whole msgbus part
   * (or the opening delimiter): reads it and returns true. Byte loops, not
   * Buffer's compare and indexOf: on a part this short a call into C++ costs
   * more than the search.
   */
  private part(data: Buffer, view: DataView, start: number, stop: number): boolean {
    if (!this.inPart) {
      // The opening: `--boundary\r\n`.
      this.inPart = stop - start === this.opening.length && this.opening.at(view, start)
      return this.inPart
    }

    const bodyEnd = stop - this.closing.length
    if (bodyEnd < start + CONTENT_TYPE.length || !this.closing.at(view, bodyEnd)) return false
    const msgbus = MSGBUS_PART
    const found = msgbus.read(view, start, bodyEnd)
    if (found !== NOT_MSGBUS) {
      this.sink.received(msgbus.bodyBytes)
      if (found & HAS_MARKER) this.sink.marker(msgbus.marker[0], msgbus.marker[1], msgbus.marker[2])
      if (found & HAS_ID) this.sink.id(msgbus.id[0], msgbus.id[1])
      return true
    }

    if (!matchesLower(data, start, CONTENT_TYPE)) return false

    // The Content-Type line, and the marker in it.
    let i = start + CONTENT_TYPE.length
    let marker = -1
    for (; i < bodyEnd && data[i] !== CR && data[i] !== LF; i++) {
      if (marker < 0 && data[i] === MARKER_BYTES[0] && matches(data, i, MARKER_BYTES)) marker = i
    }

    // The blank line that ends the headers; a bare LF (which may end them sooner) is the general path's.
    // On the way, the lines that start with an m: Message-ID, and Msgbus-Event (a gap part's).
    let headEnd = -1
    let id = -1
    let event = -1
    for (; i + 2 < bodyEnd; i++) {
      if (data[i] !== LF) continue
      if (data[i - 1] !== CR) return false
      if (data[i + 1] === CR && data[i + 2] === LF) {
        headEnd = i - 1
        break
      }

      if ((data[i + 1] | 0x20) !== 0x6d) continue
      if (matchesLower(data, i + 1, MESSAGE_ID)) id = i + 1 + MESSAGE_ID.length
      else if (matchesLower(data, i + 1, MSGBUS_EVENT)) event = i + 1 + MSGBUS_EVENT.length
    }

    if (headEnd < 0) return false
    if (event >= 0) {
      const at = skipBlanks(data, event)
      if (matches(data, at, GAP) && data[skipBlanks(data, at + GAP.length)] === CR) this.sink.gap()
      return true
    }

    if (marker >= 0 && !this.readMarker(data, view, start, marker)) return false
    this.sink.received(bodyEnd - headEnd - 4)
    if (marker >= 0) this.sink.marker(this.fields[0], this.fields[1], this.fields[2])
    if (id >= 0) {
      // Another server's id (not `<ms>-<seq>`) is kept by no one.
      const end = readNumbers(view, skipBlanks(data, id), data.length, 0x2d, this.idFields)
      if (end >= 0 && data[skipBlanks(data, end)] === CR) this.sink.id(this.idFields[0], this.idFields[1])
    }

    return true
  }

  /**
   * The marker whose name is at data[at], in the Content-Type line at
   * `start`, into `fields`; false when it is not well formed (the general
   * path then judges the part).
   */
  private readMarker(data: Buffer, view: DataView, start: number, at: number): boolean {
    // `;\s*msgbus-load=`: the parameter, not a word inside another one.
    let before = at - 1
    while (before > start && (data[before] === 0x20 || data[before] === 0x09)) before--
    if (data[before] !== 0x3b) return false
    // `<publisher>.<seq>.<sent>`.
    return readNumbers(view, at + MARKER_BYTES.length, data.length, 0x2e, this.fields) >= 0
  }

  /** The library's decoder and parser, from the start of a chunk; `inPart`: a delimiter was read, the chunk begins a part. */
  private generalReader(inPart: boolean): (data: Buffer) => void {
    const parser = new MultipartParser(
      this.boundary,
      (part) => {
        const event = part.headers['msgbus-event']
        if (event !== undefined) {
          if (event === 'gap') this.sink.gap()
          return
        }

        this.onPart?.(part)
        this.sink.received(part.body.length)
        const marker = readMarker(part.headers['content-type'])
        if (marker) this.sink.marker(marker.publisher, marker.seq, marker.sentMicros)
        const id = part.headers['message-id']
        if (id === undefined || !isMessageId(id)) return
        const [ms, seq] = parseMessageId(id)
        if (Number.isSafeInteger(ms) && Number.isSafeInteger(seq)) this.sink.id(ms, seq)
      },
      {transientInput: true},
    )
    if (inPart) parser.write(this.delimiterLine.subarray(2))
    if (!this.chunked) return (data) => parser.write(data)
    const decoder = new ChunkedDecoder((payload) => parser.write(payload))
    return (data) => decoder.write(data)
  }
}

/** Whether data[at...] holds `bytes`. */
export function matches(data: Buffer, at: number, bytes: Buffer): boolean {
  if (at + bytes.length > data.length) return false
  for (let k = 0; k < bytes.length; k++) {
    if (data[at + k] !== bytes[k]) return false
  }

  return true
}

/** Whether data[at...] holds `lower`, letters in any case (`lower` is lower case). */
function matchesLower(data: Buffer, at: number, lower: Buffer): boolean {
  if (at + lower.length > data.length) return false
  for (let k = 0; k < lower.length; k++) {
    if ((data[at + k] | 0x20) !== lower[k]) return false
  }

  return true
}

/** The first index from `at` on that is not a space or a tab. */
function skipBlanks(data: Buffer, at: number): number {
  while (at < data.length && (data[at] === 0x20 || data[at] === 0x09)) at++
  return at
}

function hexDigit(byte: number): number {
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30
  const lower = byte | 0x20
  return lower >= 0x61 && lower <= 0x66 ? lower - 0x57 : -1
}
