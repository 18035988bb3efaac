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
  /** A parse error held back until the messages before it have been read. */
  private failure: Error | undefined

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
    if (this.failure) {
      callback() // the stream is broken: the rest of the input is dropped
      return
    }

    try {
      this.parser.write(chunk)
      callback()
    } catch (error) {
      // Messages parsed before the error (perhaps in this very write) are
      // still delivered: failing at once would destroy the stream and drop them.
      if (this.readableLength === 0) {
        callback(error as Error)
      } else {
        this.failure = error as Error
        callback()
      }
    }
  }

  override _flush(callback: TransformCallback): void {
    // With an error held back, the stream must not end cleanly: read() destroys it with the error instead.
    if (!this.failure) callback()
  }

  override read(size?: number): ReceivedMessage | null {
    const message = super.read(size) as ReceivedMessage | null
    if (this.failure && this.readableLength === 0 && !this.destroyed) {
      const failure = this.failure
      process.nextTick(() => this.destroy(failure))
    }

    return message
  }

  override [Symbol.asyncIterator](): AsyncIterableIterator<ReceivedMessage> {
    return super[Symbol.asyncIterator]() as AsyncIterableIterator<ReceivedMessage>
  }
}
