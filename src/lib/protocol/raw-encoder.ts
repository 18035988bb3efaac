import type {Message} from '../bus/message.js'
import {rawNeedsNewline} from './raw-body.js'
import {allocFrame, CachingEncoder, closingFrame, textFrame, type Frame} from './stream-encoder.js'

const NEWLINE = 0x0a

/**
 * Frames bodies alone, a text body followed by a newline unless it ends in
 * one, any other byte for byte (raw-body.ts): `curl -sN
 * '.../msgbus/logs?format=raw'` reads like `tail -f`, and `curl -s
 * '...?format=raw&since=all&poll=1' > out.png` saves a picture. Ids, types
 * and senders are not on the wire; a reader that needs them asks for ndjson.
 */
export class RawEncoder extends CachingEncoder {
  readonly format = 'raw'
  readonly contentType = 'text/plain; charset=utf-8'
  readonly open = textFrame('')
  readonly close = closingFrame()

  protected build(message: Message): Frame {
    const body = message.body
    const newline = rawNeedsNewline(message.type, body) ? 1 : 0
    return allocFrame(body.length + newline, (buffer, at) => {
      at += body.copy(buffer, at)
      if (newline) buffer[at++] = NEWLINE
      return at
    })
  }
}
