import {ImageStreamEncoder} from './image-stream-encoder.js'
import {makeBoundary, MultipartEncoder} from './multipart-encoder.js'
import {NdjsonEncoder} from './ndjson-encoder.js'
import {RawEncoder} from './raw-encoder.js'
import {SseEncoder} from './sse-encoder.js'

/** One encoder per stream format, shared by every subscription of that format. */
export interface StreamEncoders {
  multipart: MultipartEncoder
  /** multipart for the 2007 clients: the delimiter straight after each body. */
  multipart2007: MultipartEncoder
  /** multipart for `<img>`: the same stream, framed so Chromium shows each picture on arrival. */
  image: ImageStreamEncoder
  sse: SseEncoder
  ndjson: NdjsonEncoder
  raw: RawEncoder
}

export function createEncoders(boundary: string = makeBoundary()): StreamEncoders {
  return {
    multipart: new MultipartEncoder(boundary),
    multipart2007: new MultipartEncoder(boundary, '2007'),
    image: new ImageStreamEncoder(boundary),
    sse: new SseEncoder(),
    ndjson: new NdjsonEncoder(),
    raw: new RawEncoder(),
  }
}
