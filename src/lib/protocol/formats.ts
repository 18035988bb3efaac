import {MultipartEncoder} from './multipart-encoder.js'
import {NdjsonEncoder} from './ndjson-encoder.js'
import {RawEncoder} from './raw-encoder.js'
import {SseEncoder} from './sse-encoder.js'

/** One encoder per stream format, shared by every subscription of that format. */
export interface StreamEncoders {
  multipart: MultipartEncoder
  sse: SseEncoder
  ndjson: NdjsonEncoder
  raw: RawEncoder
}

export function createEncoders(boundary?: string): StreamEncoders {
  return {multipart: new MultipartEncoder(boundary), sse: new SseEncoder(), ndjson: new NdjsonEncoder(), raw: new RawEncoder()}
}
