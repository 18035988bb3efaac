import {Transform, type TransformCallback} from 'node:stream'
import {MultipartParser, type MultipartLimits} from '../protocol/multipart-parser.js'
import {partToMessage, type ReceivedMessage} from './message.js'

export interface MultipartStreamOptions extends MultipartLimits {
  /** The channel of parts that do not say (no Content-Location), e.g. from the 2007 msgbus. */
  channel?: string
}

/**
 * Bytes in, messages out: a Transform over MultipartParser, and so an async
 * iterator too (`for await (const message of stream)`).
 */
export class MultipartStream extends Transform {
  private readonly parser: MultipartParser
  private readonly channel: string

  constructor(boundary: string, options: MultipartStreamOptions = {}) {
    super({readableObjectMode: true})
    this.channel = options.channel ?? ''
    this.parser = new MultipartParser(boundary, (part) => this.push(partToMessage(part, this.channel)), options)
  }

  /** True once the close delimiter was seen: the server ended the stream on purpose. */
  get sawClose(): boolean {
    return this.parser.closed
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.parser.write(chunk)
      callback()
    } catch (error) {
      callback(error as Error)
    }
  }

  override [Symbol.asyncIterator](): AsyncIterableIterator<ReceivedMessage> {
    return super[Symbol.asyncIterator]() as AsyncIterableIterator<ReceivedMessage>
  }
}
