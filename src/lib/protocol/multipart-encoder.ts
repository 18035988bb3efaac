import {randomBytes} from 'node:crypto'
import type {Message} from '../bus/message.js'
import {channelPath} from './channel.js'
import {allocFrame, CachingEncoder, closingFrame, textFrame, type Frame} from './stream-encoder.js'

const CRLF = '\r\n'

/** A boundary no body is likely to contain; parts carry Content-Length anyway. */
export function makeBoundary(): string {
  return `msgbus-${randomBytes(12).toString('hex')}`
}

/** Frames messages as parts of a multipart/x-mixed-replace stream: the default format, and the 2007 one. */
export class MultipartEncoder extends CachingEncoder {
  readonly format = 'multipart'
  readonly contentType: string
  readonly open: Frame
  /** An empty part, then the close delimiter. */
  readonly close: Frame
  private readonly delimiter: string

  constructor(readonly boundary: string = makeBoundary()) {
    super()
    this.contentType = `multipart/x-mixed-replace;boundary=${boundary}`
    this.delimiter = `${CRLF}--${boundary}${CRLF}`
    this.open = textFrame(`--${boundary}${CRLF}`)
    this.close = closingFrame(textFrame(`${CRLF}--${boundary}--${CRLF}`))
  }

  protected build(message: Message): Frame {
    // The type is written back byte for byte as it arrived (latin1, as Node
    // hands header values over); the sender is UTF-8 text from Basic auth.
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
