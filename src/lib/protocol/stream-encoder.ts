import type {Message} from '../bus/message.js'
import {FrameCache} from './frame-cache.js'
import {disconnectJson, type Disconnect} from './disconnect.js'
import {gapJson, type Gap} from './gap.js'

/** Bytes of replayed frames an encoder keeps for the next subscriber that replays the same messages. */
const REPLAY_CACHE_BYTES = 4 * 1024 * 1024

const CRLF = '\r\n'
const EMPTY = Buffer.alloc(0)

/** One message framed for the wire: the chunked form and, inside it, the raw bytes. */
export interface Frame {
  /** HTTP/1.1: the bytes as one chunk, chunk-size line and trailing CRLF included. */
  chunked: Buffer
  /** HTTP/1.0: the same bytes without chunk framing (a view into `chunked`, not a copy). */
  raw: Buffer
}

/** The names a subscriber can ask for with `?format=`. */
export type StreamFormat = 'multipart' | 'sse' | 'ndjson' | 'raw'

/** Frames messages for one stream format; what every subscription of that format is written. */
export interface StreamEncoder {
  readonly format: StreamFormat
  readonly contentType: string
  /** What a stream begins with (may be empty), so a client sees at once that it is live. */
  readonly open: Frame
  /** How a stream ends on shutdown; on HTTP/1.1 it carries the last chunk. */
  readonly close: Frame
  frame(message: Message): Frame
  /** The same bytes, for a replay: kept a while for the other subscribers that replay it (frame-cache.ts). */
  replayFrame(message: Message): Frame
  /** The in-band gap event (gap.ts), or undefined for a format that has none (raw, `<img>`); rare, so never cached. */
  gap(gap: Gap): Frame | undefined
  /** The in-band disconnect event (disconnect.ts), framed as a gap event is; undefined where a gap event would be. */
  disconnect(notice: Disconnect): Frame | undefined
  /** What a stream says, after its opening, of the id its messages follow: only SSE says it, for EventSource's Last-Event-ID. */
  startsAfter(id: string): Frame | undefined
}

/** Allocates a frame of `length` payload bytes and hands the payload's offset to `fill`. */
export function allocFrame(length: number, fill: (buffer: Buffer, at: number) => number): Frame {
  // A zero-length chunk would end the chunked body: an empty payload has no frame at all.
  if (length === 0) return {chunked: EMPTY, raw: EMPTY}
  const sizeLine = length.toString(16) + CRLF
  const buffer = Buffer.allocUnsafe(sizeLine.length + length + 2)
  const start = buffer.write(sizeLine, 0, 'latin1')
  const end = fill(buffer, start)
  if (end - start !== length) throw new Error(`frame filled with ${end - start} bytes, expected ${length}`)
  buffer.write(CRLF, end, 'latin1')
  return {chunked: buffer, raw: buffer.subarray(start, end)}
}

/** A frame of UTF-8 text. */
export function textFrame(text: string): Frame {
  return allocFrame(Buffer.byteLength(text), (buffer, at) => at + buffer.write(text, at, 'utf8'))
}

/** The frame that ends a chunked stream: `last` (if any) as a chunk, then the zero-length last chunk. */
export function closingFrame(last: Frame = textFrame('')): Frame {
  return {chunked: Buffer.concat([last.chunked, Buffer.from(`0${CRLF}${CRLF}`)]), raw: last.raw}
}

/**
 * An encoder that frames each message once. It remembers the last message it
 * framed, so a fan-out loop that asks once per subscriber builds the bytes
 * once per message, and every subscriber is written the same Buffer.
 */
export abstract class CachingEncoder implements StreamEncoder {
  abstract readonly format: StreamFormat
  abstract readonly contentType: string
  abstract readonly open: Frame
  abstract readonly close: Frame
  private lastMessage: Message | undefined
  private lastFrame: Frame | undefined
  private readonly replays = new FrameCache(REPLAY_CACHE_BYTES)

  gap(gap: Gap): Frame | undefined {
    return this.event('gap', gapJson(gap))
  }

  disconnect(notice: Disconnect): Frame | undefined {
    return this.event('disconnect', disconnectJson(notice))
  }

  /** An event that is not a message, named `name`, its data the one JSON object `json`; undefined for a format with no room for one. */
  protected event(name: string, json: string): Frame | undefined {
    void name, json
    return undefined
  }

  startsAfter(id: string): Frame | undefined {
    void id
    return undefined
  }

  replayFrame(message: Message): Frame {
    return message === this.lastMessage ? this.lastFrame! : this.replays.get(message, (m) => this.build(m))
  }

  frame(message: Message): Frame {
    if (message === this.lastMessage) return this.lastFrame!
    const frame = this.build(message)
    this.lastMessage = message
    this.lastFrame = frame
    return frame
  }

  protected abstract build(message: Message): Frame
}
