import {CR, LF} from '../protocol/bytes.js'
import {MARKER_NAME as MARKER_PARAMETER} from './marker.js'

/**
 * The part msgbus writes, read four bytes at a time. test-sub reads one
 * part per message and connection, so this is where its CPU goes after the
 * kernel's and Node's share of each read: the headers are walked as the
 * encoder writes them (protocol/multipart-encoder.ts), names compared as
 * whole 32-bit words and lines found a word at a time, the body skipped by
 * its Content-Length. A part of any other shape is not this reader's: it
 * says so, and the caller reads it byte by byte.
 */

const CRLF = 0x0a0d // little-endian: CR then LF
const EQUALS = 0x3d
const DIGIT_0 = 0x30

/** Bytes to compare at a position of a DataView a word at a time: exact, case included. */
export class Literal {
  readonly length: number
  private readonly words: Int32Array
  private readonly tail: Uint8Array

  constructor(bytes: Uint8Array) {
    this.length = bytes.length
    const whole = bytes.length >> 2
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length)
    this.words = Int32Array.from({length: whole}, (_, k) => view.getInt32(k * 4, true))
    this.tail = bytes.slice(whole * 4)
  }

  /** Whether view[at, at + length) holds these bytes; the caller makes sure they are inside the view. */
  at(view: DataView, at: number): boolean {
    const {words, tail} = this
    for (let k = 0; k < words.length; k++, at += 4) {
      if (view.getInt32(at, true) !== words[k]) return false
    }

    for (let k = 0; k < tail.length; k++) {
      if (view.getUint8(at + k) !== tail[k]) return false
    }

    return true
  }
}

const literal = (text: string): Literal => new Literal(Buffer.from(text, 'latin1'))
const CONTENT_TYPE = literal('Content-Type: ')
const CONTENT_LENGTH = literal('\r\nContent-Length: ')
const CONTENT_LOCATION = literal('\r\nContent-Location: ')
const MESSAGE_ID = literal('\r\nMessage-ID: ')
const FROM = literal('\r\nFrom: ')
const MARKER_NAME = literal(MARKER_PARAMETER)

/** A word with `byte` in each of its four bytes. */
const spread = (byte: number): number => Math.imul(byte, 0x01010101)
const CRS = spread(CR)
const LFS = spread(LF)
const EQUALSES = spread(EQUALS)

/** Non-zero when one of the four bytes of `word` is zero (bytes above a zero one may be flagged too). */
function zeroByte(word: number): number {
  return (word - 0x01010101) & ~word & 0x80808080
}

/** Where the line at `from` ends (its CR, followed by LF); -1 when a bare CR or LF comes first, or no line end before `limit`. */
function lineEnd(view: DataView, from: number, limit: number): number {
  let i = from
  while (i + 4 <= limit) {
    const word = view.getInt32(i, true)
    if (zeroByte(word ^ CRS) | zeroByte(word ^ LFS)) break
    i += 4
  }

  for (; i < limit; i++) {
    const byte = view.getUint8(i)
    if (byte === LF) return -1
    if (byte === CR) return i + 1 < limit && view.getUint8(i + 1) === LF ? i : -1
  }

  return -1
}

/** The first `=` in view[from, limit), or -1. */
function equalsSign(view: DataView, from: number, limit: number): number {
  let i = from
  while (i + 4 <= limit && !zeroByte(view.getInt32(i, true) ^ EQUALSES)) i += 4
  for (; i < limit; i++) {
    if (view.getUint8(i) === EQUALS) return i
  }

  return -1
}

/** The DataView last made, and its buffer: every plain-TCP read comes in one shared buffer, so one view serves them all. */
let viewed: Buffer | undefined
let lastView: DataView | undefined

/** A DataView of `data` for the readers here: the last one again while the reads come in the same buffer. */
export function viewOf(data: Buffer): DataView {
  if (data !== viewed || !lastView) {
    lastView = new DataView(data.buffer, data.byteOffset, data.length)
    viewed = data
  }

  return lastView
}

/**
 * Decimal numbers at `at` (before `limit`) joined by `separator`, as many
 * as `into` holds, each of 1 to 16 digits and exact as a double (as
 * Number() reads them); returns where they end, or -1 when they are not there.
 */
export function readNumbers(view: DataView, at: number, limit: number, separator: number, into: number[]): number {
  let i = at
  for (let f = 0; f < into.length; f++) {
    if (f > 0) {
      if (i >= limit || view.getUint8(i) !== separator) return -1
      i++
    }

    const from = i
    let value = 0
    for (; i < limit; i++) {
      const digit = view.getUint8(i) - DIGIT_0
      if (digit < 0 || digit > 9) break
      value = value * 10 + digit
    }

    if (i === from || i - from > 16 || value > Number.MAX_SAFE_INTEGER) return -1
    into[f] = value
  }

  return i
}

/** What `read` found, beside the message itself. */
export const HAS_MARKER = 1
export const HAS_ID = 2
/** `read`'s answer for a part of another shape. */
export const NOT_MSGBUS = -1

export class MsgbusPart {
  /** The marker's publisher, seq and sent time, when `read` says HAS_MARKER. */
  readonly marker = [0, 0, 0]
  /** The Message-ID's two numbers, when `read` says HAS_ID. */
  readonly id = [0, 0]
  /** The body's length, when `read` found a message. */
  bodyBytes = 0
  /** Content-Length's value, as read. */
  private readonly length = [0]

  /**
   * Reads the part in view[start, bodyEnd) (bodyEnd: where its closing
   * delimiter starts) if it is a message as msgbus writes it: Content-Type,
   * Content-Length, Content-Location, Message-ID, maybe From, a blank line,
   * the body. Returns HAS_MARKER | HAS_ID as found, or NOT_MSGBUS for any
   * other shape, including one whose marker or id the general parser might
   * read otherwise (spaces, 17 digits, another `msgbus-load=` first).
   */
  read(view: DataView, start: number, bodyEnd: number): number {
    if (start + CONTENT_TYPE.length > bodyEnd || !CONTENT_TYPE.at(view, start)) return NOT_MSGBUS
    let at = start + CONTENT_TYPE.length
    let end = lineEnd(view, at, bodyEnd)
    if (end < 0) return NOT_MSGBUS
    let found = 0
    const equals = equalsSign(view, at, end)
    if (equals >= 0) {
      // The first `msgbus-load=` in the type (one always ends at an `=`), as `; msgbus-load=<n>.<n>.<n>`.
      const name = equals - MARKER_NAME.length
      if (name >= at && MARKER_NAME.at(view, name)) {
        let before = name - 1
        while (before > at && (view.getUint8(before) === 0x20 || view.getUint8(before) === 0x09)) before--
        if (view.getUint8(before) !== 0x3b || readNumbers(view, equals + 1, end, 0x2e, this.marker) < 0) return NOT_MSGBUS
        found |= HAS_MARKER
      } else if (equalsSign(view, equals + 1, end) >= 0) {
        // Another parameter first: which `=` ends the marker name, if any, is the byte-by-byte reader's to find.
        return NOT_MSGBUS
      }
    }

    at = end
    if (at + CONTENT_LENGTH.length > bodyEnd || !CONTENT_LENGTH.at(view, at)) return NOT_MSGBUS
    at = readNumbers(view, at + CONTENT_LENGTH.length, bodyEnd, 0, this.length)
    if (at < 0 || at + CONTENT_LOCATION.length > bodyEnd || !CONTENT_LOCATION.at(view, at)) return NOT_MSGBUS
    end = lineEnd(view, at + CONTENT_LOCATION.length, bodyEnd)
    if (end < 0 || end + MESSAGE_ID.length > bodyEnd || !MESSAGE_ID.at(view, end)) return NOT_MSGBUS
    at = readNumbers(view, end + MESSAGE_ID.length, bodyEnd, 0x2d, this.id)
    if (at < 0 || at + 4 > bodyEnd || view.getUint16(at, true) !== CRLF) return NOT_MSGBUS
    found |= HAS_ID
    if (at + FROM.length <= bodyEnd && FROM.at(view, at)) {
      at = lineEnd(view, at + FROM.length, bodyEnd)
      if (at < 0 || at + 4 > bodyEnd) return NOT_MSGBUS
    }

    // The blank line, and the body up to the delimiter: Content-Length bytes.
    if (view.getInt32(at, true) !== CRLF * 0x10001 || at + 4 + this.length[0] !== bodyEnd) return NOT_MSGBUS
    this.bodyBytes = this.length[0]
    return found
  }
}
