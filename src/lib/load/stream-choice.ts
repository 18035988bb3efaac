import {ChunkedDecoder} from '../protocol/chunked-decoder.js'
import {boundaryOf, type Part} from '../protocol/multipart-parser.js'
import {DelimitedPartStream} from './delimited-parts.js'
import type {ResponseHead} from './response-reader.js'
import {SseStream} from './sse-stream.js'
import {SubscriptionStream, type MessageSink} from './stream-reader.js'

/** What reads one subscription's stream, after the response head: data[0, end), data possibly a shared read buffer. */
export interface StreamReader {
  write(data: Buffer, end: number): void
}

/**
 * The reader for a subscription's answer, by its type and transfer coding;
 * undefined when it is no stream test-sub reads. msgbus's multipart (chunked)
 * goes to SubscriptionStream and its fast path; multipart without chunked
 * coding that declares `multipart/mixed` (nchan's: msgbus never sends that
 * type) to DelimitedPartStream, unless parts are to be printed, which the
 * general path of SubscriptionStream does; `text/event-stream` (msgbus's or
 * nchan's) to SseStream.
 */
export function streamReaderFor(head: ResponseHead, sink: MessageSink, onPart?: (part: Part) => void): StreamReader | undefined {
  const type = head.headers['content-type'] ?? ''
  const chunked = head.headers['transfer-encoding'] === 'chunked'
  if (/^text\/event-stream\s*(;|$)/i.test(type)) return dechunked(new SseStream(sink, onPart), chunked)
  const boundary = boundaryOf(type)
  if (!boundary) return undefined
  if (!chunked && !onPart && /^multipart\/mixed\s*;/i.test(type)) return new DelimitedPartStream(boundary, sink)
  return new SubscriptionStream(boundary, chunked, sink, onPart)
}

function dechunked(reader: StreamReader, chunked: boolean): StreamReader {
  if (!chunked) return reader
  const decoder = new ChunkedDecoder((payload) => reader.write(payload, payload.length))
  return {write: (data, end) => decoder.write(data.subarray(0, end))}
}
