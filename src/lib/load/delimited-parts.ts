import {CR, DASH, LF} from '../protocol/bytes.js'
import {HeldBytes} from './held-bytes.js'
import {scanMarker} from './marker-scan.js'
import type {MessageSink} from './stream-reader.js'

/**
 * Reads a multipart stream without chunked transfer coding, as nginx's nchan
 * module sends `multipart/mixed` (bench --peer nchan): it opens with
 * `--boundary`, and every message comes as `\r\n<headers>\r\n\r\n<body>\r\n--boundary`,
 * each part closed by the delimiter that follows it, the line end after
 * the delimiter arriving only with the next message. A part is counted as
 * soon as its delimiter is in, so latency is the message's own, not the
 * next one's. One search and two byte loops per part, no objects: test-sub
 * must not cost more per message on the peer's stream than on ours.
 */
export class DelimitedPartStream {
  /** `\r\n--boundary`: how every part ends. */
  private readonly delimiter: Buffer
  /** The part so far, copied out of the shared read buffer, when it did not all arrive in one read. */
  private readonly held = new HeldBytes()
  private opened = false
  private closed = false
  private readonly fields = [0, 0, 0]

  constructor(
    boundary: string,
    private readonly sink: MessageSink,
  ) {
    this.delimiter = Buffer.from(`\r\n--${boundary}`, 'latin1')
  }

  /** Reads data[0, end); data may be a shared read buffer, reused once this returns. */
  write(data: Buffer, end: number): void {
    if (this.closed) return
    // Bounded at `end`: searches must not run into stale bytes of a shared buffer. One view per read, not per message.
    const view = this.held.join(data, end)

    let at = 0
    if (!this.opened) {
      // The opening delimiter has no line end before it (nothing precedes it); a preamble is skipped.
      const found = view.indexOf(this.delimiter.subarray(2))
      if (found < 0) return this.held.keep(view, Math.max(0, view.length - this.delimiter.length))
      this.opened = true
      at = found + this.delimiter.length - 2
    }

    // Invariant: `at` is just past a delimiter.
    while (at < view.length) {
      if (view[at] === DASH) {
        if (at + 1 === view.length) return this.held.keep(view, at)
        if (view[at + 1] === DASH) {
          this.closed = true
          return
        }
      }

      const next = view.indexOf(this.delimiter, at)
      if (next < 0) return this.held.keep(view, at)
      this.part(view, at, next)
      at = next + this.delimiter.length
    }
  }

  /** data[start, stop): the delimiter line's end, the part's headers, the blank line, the body. */
  private part(data: Buffer, start: number, stop: number): void {
    let i = start
    // Transport padding and the delimiter line's end.
    while (i < stop && (data[i] === 0x20 || data[i] === 0x09)) i++
    if (data[i] === CR) i++
    if (data[i] === LF) i++
    // The headers end at a blank line; none at all is a blank line at once.
    let body = -1
    if (data[i] === CR && data[i + 1] === LF) body = i + 2
    for (let k = i; body < 0 && k + 3 < stop; k++) {
      if (data[k] === CR && data[k + 1] === LF && data[k + 2] === CR && data[k + 3] === LF) body = k + 4
    }

    // No blank line: headers only, an empty body.
    if (body < 0 || body > stop) body = stop
    this.sink.received(stop - body)
    if (scanMarker(data, start, stop, this.fields)) this.sink.marker(this.fields[0], this.fields[1], this.fields[2])
  }
}
