import type {Message} from '../bus/message.js'
import {MultipartEncoder} from './multipart-encoder.js'
import {allocFrame, textFrame, type Frame} from './stream-encoder.js'

const CRLF = '\r\n'

/**
 * multipart/x-mixed-replace for `<img>` (a request with Sec-Fetch-Dest:
 * image): Chromium shows a part only once the next part's headers have
 * arrived, so each picture would wait for the one after it. Here every body
 * is followed at once by its delimiter and the next part's (empty) header
 * block, so the picture shows on arrival. Browsers tell images by their
 * bytes; the parts carry no headers.
 */
export class ImageStreamEncoder extends MultipartEncoder {
  override readonly open = textFrame(`--${this.boundary}${CRLF}${CRLF}`)
  private readonly next = `${CRLF}--${this.boundary}${CRLF}${CRLF}`

  /** A picture stream has no place for an event (a gap, a disconnect): the Msgbus-Gap header alone tells of a gap. */
  protected override event(name: string, json: string): undefined {
    void name, json
    return undefined
  }

  protected override build(message: Message): Frame {
    return allocFrame(message.body.length + this.next.length, (buffer, at) => {
      at += message.body.copy(buffer, at)
      return at + buffer.write(this.next, at, 'latin1')
    })
  }
}
