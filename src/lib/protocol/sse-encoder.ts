import type {Message} from '../bus/message.js'
import {toJsonMessage} from './json-message.js'
import {CachingEncoder, closingFrame, textFrame, type Frame} from './stream-encoder.js'

/** How long a browser waits before reconnecting a dropped EventSource, in ms. */
export const SSE_RETRY_MS = 2000

/**
 * Frames messages as Server-Sent Events: the id is the message id (so a
 * browser reconnects with Last-Event-ID), the data one line of the JSON that
 * `msgbus dump --json` prints. JSON never holds a raw CR or LF, so one
 * `data:` line always suffices.
 */
export class SseEncoder extends CachingEncoder {
  readonly format = 'sse'
  readonly contentType = 'text/event-stream; charset=utf-8'
  readonly open = textFrame(`retry: ${SSE_RETRY_MS}\n: msgbus stream\n\n`)
  readonly close = closingFrame()
  /** A comment line: keeps proxies from timing out an idle stream, and EventSource ignores it. */
  readonly heartbeat = textFrame(': heartbeat\n\n')

  /**
   * An id with no data: EventSource dispatches no event for it but takes
   * it as its last event id, so one that reconnects before any message
   * has come resumes from the stream's start, not from whenever it is back.
   */
  override startsAfter(id: string): Frame {
    return textFrame(`id: ${id}\n\n`)
  }

  /** An event of its own name (`gap`, `disconnect`), without an id, so EventSource's Last-Event-ID stays the last message's. */
  protected override event(name: string, json: string): Frame {
    return textFrame(`event: ${name}\ndata: ${json}\n\n`)
  }

  protected build(message: Message): Frame {
    return textFrame(`id: ${message.id}\nevent: message\ndata: ${JSON.stringify(toJsonMessage(message))}\n\n`)
  }
}
