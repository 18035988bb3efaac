import type {Message} from '../bus/message.js'
import {allocFrame, CachingEncoder, closingFrame, textFrame, type Frame} from './stream-encoder.js'

const NEWLINE = 0x0a

/**
 * Frames bodies alone, each followed by a newline unless it ends in one:
 * `curl -sN '.../msgbus/logs?format=raw'` reads like `tail -f`. Ids, types
 * and senders are not on the wire; a reader that needs them asks for ndjson.
 */
export class RawEncoder extends CachingEncoder {
  readonly format = 'raw'
  readonly contentType = 'text/plain; charset=utf-8'
  readonly open = textFrame('')
  readonly close = closingFrame()

  protected build(message: Message): Frame {
    const body = message.body
    const newline = body.length === 0 || body[body.length - 1] !== NEWLINE ? 1 : 0
    return allocFrame(body.length + newline, (buffer, at) => {
      at += body.copy(buffer, at)
      if (newline) buffer[at++] = NEWLINE
      return at
    })
  }
}
