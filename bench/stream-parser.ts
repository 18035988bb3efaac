/**
 * A cheap incremental parser for one subscription: the HTTP response head,
 * then chunked transfer coding (or a raw HTTP/1.0 body), then the
 * multipart/x-mixed-replace parts, each with a Content-Length.
 *
 * It is fed (buffer, start, end) ranges of a read buffer that the caller
 * reuses (net's `onread`), so it never keeps a reference into it: the rare
 * header or size line split across reads is copied into a small carry.
 * Bytes are scanned with Buffer#indexOf and short byte loops; a part costs
 * a handful of comparisons and no string building.
 *
 * Benchmark bodies begin with MAGIC, then the sequence number (uint32 LE)
 * and the send time (float64 LE, performance.now() of the load process).
 */
export const MAGIC = Buffer.from('MBBENCH1', 'latin1')
export const SEQ_OFFSET = MAGIC.length
export const TIME_OFFSET = SEQ_OFFSET + 4
export const PREFIX = TIME_OFFSET + 8

const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1')
const CONTENT_LENGTH = Buffer.from('Content-Length:', 'latin1')
const MAX_CARRY = 64 * 1024

const enum C {
  Head,
  Size,
  Ext,
  Data,
  DataEnd,
  Raw,
  Done,
}

const enum M {
  Preamble,
  Headers,
  Body,
  Delimiter,
  Closed,
}

export interface StreamSink {
  /** The head arrived and the first delimiter followed: the subscription is live. */
  onLive(stream: SubscriptionParser): void
  /** A benchmark part arrived whole. */
  onPart(stream: SubscriptionParser, seq: number, sentAt: number): void
  /** The server ended the stream properly (close delimiter). */
  onClosed(stream: SubscriptionParser): void
  /** Something unparseable: the stream is abandoned. */
  onError(stream: SubscriptionParser, reason: string): void
}

function hexValue(b: number): number {
  if (b >= 48 && b <= 57) return b - 48
  if (b >= 97 && b <= 102) return b - 87
  if (b >= 65 && b <= 70) return b - 55
  return -1
}

export class SubscriptionParser {
  // Per-connection results, read by the load process.
  parts = 0
  foreign = 0
  lastSeq = -1
  gaps = 0
  backwards = 0
  live = false
  closed = false
  failed: string | undefined

  private c = C.Head
  private m = M.Preamble
  private carry: Buffer | undefined // C.Head / M.Preamble / M.Headers bytes waiting for the rest of their line(s)
  private chunkLeft = 0
  private chunkSize = 0
  private sawDigit = false
  private dataEnd = 0
  private bodyLeft = 0
  private bodyGot = 0
  private scratch: Buffer | undefined
  private seq = -1
  private sentAt = 0
  private open: Buffer = MAGIC // replaced by `--B\r\n` once the head is read
  private delimiter: Buffer = MAGIC // `\r\n--B\r\n`
  private close: Buffer = MAGIC // `\r\n--B--`

  constructor(private readonly sink: StreamSink) {}

  /** Feeds bytes [start, end) of `src`; `src` may be reused by the caller afterwards. */
  push(src: Buffer, start: number, end: number): void {
    let s = start
    let e = end
    while (s < e) {
      switch (this.c) {
        case C.Head: {
          let buf = src
          if (this.carry) {
            buf = Buffer.concat([this.carry, src.subarray(s, e)])
            this.carry = undefined
            s = 0
            e = buf.length
          }

          const i = buf.indexOf(CRLFCRLF, s)
          if (i < 0 || i + 4 > e) {
            this.keep(buf, s, e)
            return
          }

          const head = buf.toString('latin1', s, i)
          if (!this.readHead(head)) return
          src = buf
          s = i + 4
          break
        }

        case C.Size:
        case C.Ext: {
          // chunk-size [; extensions] CRLF, parsed a byte at a time: no carry needed.
          while (s < e) {
            const b = src[s++]!
            if (b === 10) {
              if (!this.sawDigit) return this.fail('empty chunk size line')
              if (this.chunkSize === 0) {
                this.c = C.Done
                return
              }

              this.chunkLeft = this.chunkSize
              this.c = C.Data
              break
            }

            if (this.c === C.Ext || b === 13) continue
            const d = hexValue(b)
            if (d >= 0) {
              this.chunkSize = this.chunkSize * 16 + d
              this.sawDigit = true
            } else if (b === 59 /* ; */ || b === 32 || b === 9) {
              this.c = C.Ext
            } else {
              return this.fail(`bad chunk size byte ${b}`)
            }
          }

          break
        }

        case C.Data: {
          const take = this.chunkLeft < e - s ? this.chunkLeft : e - s
          this.feed(src, s, s + take)
          if (this.failed) return
          s += take
          this.chunkLeft -= take
          if (this.chunkLeft === 0) {
            this.c = C.DataEnd
            this.dataEnd = 0
          }

          break
        }

        case C.DataEnd: {
          const b = src[s++]!
          if (b !== (this.dataEnd === 0 ? 13 : 10)) return this.fail('chunk data not followed by CRLF')
          if (++this.dataEnd === 2) {
            this.c = C.Size
            this.chunkSize = 0
            this.sawDigit = false
          }

          break
        }

        case C.Raw:
          this.feed(src, s, e)
          return

        case C.Done:
          return
      }
    }
  }

  private readHead(head: string): boolean {
    if (!/^HTTP\/1\.[01] 200 /.test(head)) {
      this.fail(`subscription refused: ${head.split('\r\n', 1)[0]}`)
      return false
    }

    const type = /^content-type:[ \t]*multipart\/[^;\r\n]*;[ \t]*boundary=("?)([^";\r\n]+)\1/im.exec(head)
    if (!type) {
      this.fail('no multipart boundary in the response head')
      return false
    }

    const boundary = type[2]!
    this.open = Buffer.from(`--${boundary}\r\n`, 'latin1')
    this.delimiter = Buffer.from(`\r\n--${boundary}\r\n`, 'latin1')
    this.close = Buffer.from(`\r\n--${boundary}--`, 'latin1')
    this.c = /^transfer-encoding:[ \t]*chunked/im.test(head) ? C.Size : C.Raw
    return true
  }

  private keep(buf: Buffer, s: number, e: number): void {
    if (e - s > MAX_CARRY) {
      this.fail('header block too long')
      return
    }

    this.carry = Buffer.from(buf.subarray(s, e)) // a copy: `buf` may be the caller's read buffer
  }

  private fail(reason: string): void {
    if (this.failed) return
    this.failed = reason
    this.c = C.Done
    this.m = M.Closed
    this.sink.onError(this, reason)
  }

  /** The multipart layer, over the de-chunked bytes [start, end) of `src`. */
  private feed(src: Buffer, start: number, end: number): void {
    let s = start
    let e = end
    while (s < e) {
      switch (this.m) {
        case M.Preamble:
        case M.Headers: {
          let buf = src
          if (this.carry) {
            buf = Buffer.concat([this.carry, src.subarray(s, e)])
            this.carry = undefined
            s = 0
            e = buf.length
          }

          if (this.m === M.Preamble) {
            const i = buf.indexOf(this.open, s)
            if (i < 0 || i + this.open.length > e) {
              this.keep(buf, s, e)
              return
            }

            this.m = M.Headers
            this.live = true
            this.sink.onLive(this)
            src = buf
            s = i + this.open.length
            break
          }

          if (buf[s] === 13) {
            // Headers never start with CR: this is the end, `\r\n--B--` (our server's shutdown), or a headerless part.
            const close = this.close
            const have = Math.min(e - s, close.length)
            if (buf.compare(close, 0, have, s, s + have) === 0) {
              if (have < close.length) {
                this.keep(buf, s, e)
                return
              }

              this.m = M.Closed
              this.closed = true
              this.sink.onClosed(this)
              return
            }

            if (e - s >= 2 && buf[s + 1] === 10) return this.fail('a part without headers')
          }

          const i = buf.indexOf(CRLFCRLF, s)
          if (i < 0 || i + 4 > e) {
            this.keep(buf, s, e)
            return
          }

          const length = this.contentLength(buf, s, i)
          if (length < 0) return this.fail('a part without Content-Length')
          src = buf
          s = i + 4
          this.bodyLeft = length
          this.bodyGot = 0
          this.seq = -1
          this.m = M.Body
          if (length === 0) this.endPart()
          break
        }

        case M.Body: {
          const take = this.bodyLeft < e - s ? this.bodyLeft : e - s
          if (this.bodyGot < PREFIX) {
            if (this.bodyGot === 0 && take >= PREFIX) {
              this.readPrefix(src, s)
            } else {
              const scratch = (this.scratch ??= Buffer.alloc(PREFIX))
              const n = Math.min(PREFIX - this.bodyGot, take)
              src.copy(scratch, this.bodyGot, s, s + n)
              if (this.bodyGot + n === PREFIX) this.readPrefix(scratch, 0)
            }
          }

          this.bodyGot += take
          this.bodyLeft -= take
          s += take
          if (this.bodyLeft === 0) this.endPart()
          break
        }

        case M.Delimiter: {
          // `\r\n--B\r\n`, compared a byte at a time; `--` after B is the close delimiter.
          const delimiter = this.delimiter
          const last = delimiter.length
          let at = this.bodyGot // reused as the position in the delimiter
          while (s < e && at < last) {
            const b = src[s]!
            if (b !== delimiter[at]) {
              if (at === last - 2 && b === 45) {
                this.m = M.Closed
                this.closed = true
                this.sink.onClosed(this)
                return
              }

              return this.fail('part not followed by the delimiter')
            }

            at++
            s++
          }

          this.bodyGot = at
          if (at === last) this.m = M.Headers
          break
        }

        case M.Closed:
          return
      }
    }
  }

  private contentLength(buf: Buffer, s: number, headEnd: number): number {
    let at = buf.indexOf(CONTENT_LENGTH, s)
    if (at < 0 || at > headEnd) {
      // Not in our server's spelling: look case-insensitively (rare, so a string is fine).
      const found = buf.toString('latin1', s, headEnd).toLowerCase().indexOf('content-length:')
      if (found < 0) return -1
      at = s + found
    }

    at += CONTENT_LENGTH.length
    while (buf[at] === 32 || buf[at] === 9) at++
    let value = 0
    let digits = 0
    for (let b = buf[at]!; b >= 48 && b <= 57; b = buf[++at]!) {
      value = value * 10 + (b - 48)
      digits++
    }

    return digits === 0 ? -1 : value
  }

  private readPrefix(buf: Buffer, at: number): void {
    // MAGIC, compared as two 32-bit words.
    if (buf.readUInt32LE(at) !== MAGIC_0 || buf.readUInt32LE(at + 4) !== MAGIC_1) return
    this.seq = buf.readUInt32LE(at + SEQ_OFFSET)
    this.sentAt = buf.readDoubleLE(at + TIME_OFFSET)
  }

  private endPart(): void {
    this.m = M.Delimiter
    this.bodyGot = 0
    if (this.seq < 0) {
      this.foreign++
      return
    }

    const seq = this.seq
    this.parts++
    if (seq > this.lastSeq + 1) this.gaps += seq - this.lastSeq - 1
    else if (seq <= this.lastSeq) this.backwards++
    if (seq > this.lastSeq) this.lastSeq = seq
    this.sink.onPart(this, seq, this.sentAt)
  }
}

const MAGIC_0 = MAGIC.readUInt32LE(0)
const MAGIC_1 = MAGIC.readUInt32LE(4)
