import {randomBytes} from 'node:crypto'
import type {Message} from '../bus/message.js'
import {channelPath} from './channel.js'
import {allocFrame, CachingEncoder, closingFrame, textFrame, type Frame} from './stream-encoder.js'

const CRLF = '\r\n'

/** A boundary no body is likely to contain; parts carry Content-Length anyway. */
export function makeBoundary(): string {
  return `msgbus-${randomBytes(12).toString('hex')}`
}

/**
 * How the parts of a multipart stream are delimited (docs/protocol.md,
 * "Stream formats"). `rfc2046`: a line end between a body and the next
 * delimiter, which belongs to the delimiter. `2007`: the delimiter straight
 * after the body, as the 2007 msgbus sent it: its clients (libevmsg, Python
 * 2's urllib) take every byte before the delimiter, or read Content-Length
 * bytes and then expect the delimiter line at once.
 */
export type MultipartFraming = 'rfc2046' | '2007'

export const MULTIPART_FRAMINGS: readonly MultipartFraming[] = ['rfc2046', '2007']

/** Frames messages as parts of a multipart/x-mixed-replace stream, each part one chunk starting with its headers. */
export class MultipartEncoder extends CachingEncoder {
  readonly format = 'multipart'
  readonly contentType: string
  readonly open: Frame
  /** An empty part, then the close delimiter. */
  readonly close: Frame
  private readonly delimiter: string

  constructor(
    readonly boundary: string = makeBoundary(),
    readonly framing: MultipartFraming = 'rfc2046',
  ) {
    super()
    const lineEnd = framing === 'rfc2046' ? CRLF : ''
    this.contentType = `multipart/x-mixed-replace;boundary=${boundary}`
    this.delimiter = `${lineEnd}--${boundary}${CRLF}`
    this.open = textFrame(`--${boundary}${CRLF}`)
    this.close = closingFrame(textFrame(`${lineEnd}--${boundary}--${CRLF}`))
  }

  /** A part of its own, marked `Msgbus-Event: <name>`, with no Message-ID; written only to subscribers that asked (`?gaps=1`). */
  protected override event(name: string, json: string): Frame | undefined {
    const body = json
    const head = `Content-Type: application/json${CRLF}Content-Length: ${Buffer.byteLength(body)}${CRLF}Msgbus-Event: ${name}${CRLF}${CRLF}`
    return textFrame(head + body + this.delimiter)
  }

  protected build(message: Message): Frame {
    // The type is written back byte for byte as it arrived (latin1, as Node
    // hands header values over); the sender is UTF-8 text from Basic auth.
    // Header lines end in CRLF in both framings: libevent's line reader,
    // after a blank line of a bare LF, would swallow a body's leading CR.
    let head = `Content-Type: ${message.type}${CRLF}Content-Length: ${message.body.length}${CRLF}`
    head += `Content-Location: ${channelPath(message.channel)}${CRLF}Message-ID: ${message.id}${CRLF}`
    const from = message.sender === undefined ? undefined : Buffer.from(`From: ${message.sender}${CRLF}`, 'utf8')
    const headLength = Buffer.byteLength(head, 'latin1') + (from?.length ?? 0) + 2
    return allocFrame(headLength + message.body.length + this.delimiter.length, (buffer, at) => {
      at += buffer.write(head, at, 'latin1')
      if (from) at += from.copy(buffer, at)
      at += buffer.write(CRLF, at, 'latin1')
      at += message.body.copy(buffer, at)
      return at + buffer.write(this.delimiter, at, 'latin1')
    })
  }
}
