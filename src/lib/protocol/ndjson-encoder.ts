import type {Message} from '../bus/message.js'
import {toJsonMessage} from './json-message.js'
import {CachingEncoder, closingFrame, textFrame, type Frame} from './stream-encoder.js'

/** Frames messages as newline-delimited JSON, one `msgbus dump --json` object a line: for fetch() readers and `curl | jq`. */
export class NdjsonEncoder extends CachingEncoder {
  readonly format = 'ndjson'
  readonly contentType = 'application/x-ndjson'
  readonly open = textFrame('')
  readonly close = closingFrame()

  /** A line with the key `event` (`"event":"gap"`), which no message line has. */
  protected override event(name: string, json: string): Frame {
    void name
    return textFrame(`${json}\n`)
  }

  protected build(message: Message): Frame {
    return textFrame(`${JSON.stringify(toJsonMessage(message))}\n`)
  }
}
