import {randomBytes} from 'node:crypto'
import type {Message} from '../bus/message.js'
import {channelPath} from './channel.js'

const CRLF = '\r\n'

/** One message framed for the wire: the chunked form and, inside it, the raw part. */
export interface Frame {
  /** HTTP/1.1: the part as one chunk, chunk-size line and trailing CRLF included. */
  chunked: Buffer
  /** HTTP/1.0: the same bytes without chunk framing (for messages, a view into `chunked`, not a copy). */
  raw: Buffer
}

/** A boundary no body is likely to contain; parts carry Content-Length anyway. */
export function makeBoundary(): string {
  return `msgbus-${randomBytes(12).toString('hex')}`
}

function chunk(payload: Buffer): Buffer {
  return Buffer.concat([Buffer.from(payload.length.toString(16) + CRLF, 'latin1'), payload, Buffer.from(CRLF)])
}

/**
 * Frames messages as parts of a multipart/x-mixed-replace stream. Each part
 * is framed once and the same Buffer goes to every subscriber; the encoder
 * remembers the last message it framed, so a fan-out loop that asks once per
 * subscriber frames once per message.
 */
export class MultipartEncoder {
  readonly contentType: string
  /** What a stream begins with, so a client sees at once that it is live. */
  readonly open: Frame
  /** An empty part, then the close delimiter (and, chunked, the last chunk): how a stream ends on shutdown. */
  readonly close: Frame
  private lastMessage: Message | undefined
  private lastFrame: Frame | undefined
  private readonly delimiter: string

  constructor(readonly boundary: string = makeBoundary()) {
    this.contentType = `multipart/x-mixed-replace;boundary=${boundary}`
    this.delimiter = `${CRLF}--${boundary}${CRLF}`
    const opening = Buffer.from(`--${boundary}${CRLF}`, 'latin1')
    this.open = {chunked: chunk(opening), raw: opening}
    const closing = Buffer.from(`${CRLF}--${boundary}--${CRLF}`, 'latin1')
    this.close = {chunked: Buffer.concat([chunk(closing), Buffer.from(`0${CRLF}${CRLF}`)]), raw: closing}
  }

  frame(message: Message): Frame {
    if (message === this.lastMessage) return this.lastFrame!
    const frame = this.build(message)
    this.lastMessage = message
    this.lastFrame = frame
    return frame
  }

  private build(message: Message): Frame {
    // The type is written back byte for byte as it arrived (latin1, as Node
    // hands header values over); the sender is UTF-8 text from Basic auth.
    let head = `Content-Type: ${message.type}${CRLF}Content-Length: ${message.body.length}${CRLF}`
    head += `Content-Location: ${channelPath(message.channel)}${CRLF}Message-ID: ${message.id}${CRLF}`
    const from = message.sender === undefined ? undefined : Buffer.from(`From: ${message.sender}${CRLF}`, 'utf8')
    const headLength = Buffer.byteLength(head, 'latin1') + (from?.length ?? 0) + 2
    const partLength = headLength + message.body.length + this.delimiter.length
    const sizeLine = partLength.toString(16) + CRLF

    const buffer = Buffer.allocUnsafe(sizeLine.length + partLength + 2)
    let at = buffer.write(sizeLine, 0, 'latin1')
    const rawStart = at
    at += buffer.write(head, at, 'latin1')
    if (from) at += from.copy(buffer, at)
    at += buffer.write(CRLF, at, 'latin1')
    at += message.body.copy(buffer, at)
    at += buffer.write(this.delimiter, at, 'latin1')
    const rawEnd = at
    buffer.write(CRLF, at, 'latin1')
    return {chunked: buffer, raw: buffer.subarray(rawStart, rawEnd)}
  }
}
