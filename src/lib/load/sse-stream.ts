import {CR, LF} from '../protocol/bytes.js'
import {HeldBytes} from './held-bytes.js'
import {scanMarker} from './marker-scan.js'
import type {Part} from '../protocol/multipart-parser.js'
import {readNumbers, viewOf} from './msgbus-part.js'
import {matches, type MessageSink} from './stream-reader.js'

const COLON = 0x3a
const DATA = Buffer.from('data:')
const EVENT = Buffer.from('event:')
const ID = Buffer.from('id:')
const GAP = Buffer.from('gap')
const MESSAGE = Buffer.from('message')
const LENGTH = Buffer.from('"length":')

/**
 * Reads a Server-Sent Events stream (after any transfer coding is removed):
 * msgbus's (`?format=sse`: `id: <ms>-<seq>`, `event: message`, `data: <JSON>`,
 * the marker in the JSON's type, or in its body with test-pub --marker body)
 * and nchan's (`Accept: text/event-stream`: `id: <time>:<n>`, `data: <body>`,
 * so the marker must be in the body). An event is counted when the blank line
 * that ends it arrives; comments and events without data are not messages,
 * an event named `gap` is a gap, any other name but `message` is passed
 * over. Bytes counted: a JSON event's `"length"` (the body's), else the data.
 */
export class SseStream {
  private readonly held = new HeldBytes()
  private readonly fields = [0, 0, 0]
  private readonly idFields = [0, 0]

  constructor(
    private readonly sink: MessageSink,
    /** Gets every message (test-sub --print): its first data line as the body. */
    private readonly onPart?: (part: Part) => void,
  ) {}

  /** Reads data[0, end); data may be a shared read buffer, reused once this returns. */
  write(data: Buffer, end: number): void {
    data = this.held.join(data, end)
    let at = 0
    // An event ends at a blank line: LF LF, or LF CR LF.
    for (let i = 0; i < data.length; i++) {
      if (data[i] !== LF) continue
      let stop = -1
      if (data[i + 1] === LF) stop = i + 2
      else if (data[i + 1] === CR && data[i + 2] === LF) stop = i + 3
      if (stop < 0) continue
      this.event(data, at, i + 1)
      at = stop
      i = stop - 1
    }

    this.held.keep(data, at)
  }

  /** The lines data[start, stop), each ending in LF. */
  private event(data: Buffer, start: number, stop: number): void {
    let dataFrom = -1
    let firstDataEnd = -1
    let dataBytes = 0
    let lines = 0
    let named = false
    let gap = false
    let id = -1
    for (let line = start; line < stop; ) {
      let eol = line
      while (data[eol] !== LF) eol++
      const next = eol + 1
      if (eol > line && data[eol - 1] === CR) eol--
      if (data[line] !== COLON) {
        if (matches(data, line, DATA)) {
          const from = line + DATA.length + (data[line + DATA.length] === 0x20 ? 1 : 0)
          if (dataFrom < 0) {
            dataFrom = from
            firstDataEnd = eol
          }
          // Lines of data are joined with LF.
          dataBytes += eol - from + (lines++ > 0 ? 1 : 0)
        } else if (matches(data, line, EVENT)) {
          const from = line + EVENT.length + (data[line + EVENT.length] === 0x20 ? 1 : 0)
          named = !(eol - from === MESSAGE.length && matches(data, from, MESSAGE))
          gap = eol - from === GAP.length && matches(data, from, GAP)
        } else if (matches(data, line, ID)) {
          id = line + ID.length + (data[line + ID.length] === 0x20 ? 1 : 0)
        }
      }

      line = next
    }

    if (dataFrom < 0) return
    if (gap) return this.sink.gap()
    if (named) return
    this.sink.received(data[dataFrom] === 0x7b ? this.jsonLength(data, dataFrom, stop, dataBytes) : dataBytes)
    this.onPart?.({headers: {'content-type': 'text/event-stream'}, body: Buffer.from(data.subarray(dataFrom, firstDataEnd))})
    if (scanMarker(data, dataFrom, stop, this.fields)) this.sink.marker(this.fields[0], this.fields[1], this.fields[2])
    // msgbus's ids, `<ms>-<seq>`, which a resume asks for; another server's are kept by no one.
    if (id >= 0) {
      const end = readNumbers(viewOf(data), id, stop, 0x2d, this.idFields)
      if (end >= 0 && (data[end] === LF || data[end] === CR)) this.sink.id(this.idFields[0], this.idFields[1])
    }
  }

  /** The `"length":N` of msgbus's JSON (dump --json's), the body's bytes; the data's own length without one. */
  private jsonLength(data: Buffer, from: number, stop: number, fallback: number): number {
    const last = stop - LENGTH.length
    for (let i = from; i < last; i++) {
      if (data[i] === 0x22 && matches(data, i, LENGTH)) {
        let value = 0
        let k = i + LENGTH.length
        const digits = k
        for (; data[k] >= 0x30 && data[k] <= 0x39; k++) value = value * 10 + data[k] - 0x30
        return k > digits ? value : fallback
      }
    }

    return fallback
  }
}
