/**
 * Removes HTTP/1.1 chunked transfer coding from a byte stream as it arrives
 * (RFC 9112 §7.1): payload slices out, zero-copy, and `ended` once the last
 * chunk came. For clients that read a response straight off a socket.
 */
import {codedError} from '../util/errors.js'

/** Bytes that are not chunked transfer coding. */
export class ChunkedError extends codedError('ERR_MSGBUS_CHUNKED_INVALID') {}

const enum State {
  Size,
  Data,
  DataEnd,
  Done,
}

function hexValue(byte: number): number {
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30
  const lower = byte | 0x20
  return lower >= 0x61 && lower <= 0x66 ? lower - 0x61 + 10 : -1
}

/** A chunk-size line is hex digits and optional extensions; this is far more than any real one needs. */
const MAX_SIZE_LINE = 1024

export class ChunkedDecoder {
  private state = State.Size
  private remaining = 0
  // The chunk-size line read so far.
  private size = 0
  private digits = 0
  private lineLength = 0
  private afterDigits = false
  private inExtension = false
  private sawCR = false

  constructor(private readonly onData: (payload: Buffer) => void) {}

  get ended(): boolean {
    return this.state === State.Done
  }

  write(chunk: Buffer): void {
    let at = 0
    while (at < chunk.length && this.state !== State.Done) {
      switch (this.state) {
        case State.Size: {
          // Byte by byte, no strings: `<hex>[ \t]*[;ext]\r?\n`.
          const byte = chunk[at++]
          if (++this.lineLength > MAX_SIZE_LINE) throw new ChunkedError('chunk-size line too long')
          if (byte === 0x0a) {
            if (this.digits === 0) throw new ChunkedError('malformed chunk-size line')
            this.remaining = this.size
            this.size = 0
            this.digits = 0
            this.lineLength = 0
            this.sawCR = false
            this.inExtension = false
            this.afterDigits = false
            // The last chunk; trailers, if any, are not read: the response is over.
            this.state = this.remaining === 0 ? State.Done : State.Data
          } else if (this.sawCR) {
            throw new ChunkedError('malformed chunk-size line')
          } else if (byte === 0x0d) {
            this.sawCR = true
          } else if (this.inExtension) {
            // Chunk extensions are allowed and ignored.
          } else if (byte === 0x3b) {
            this.inExtension = true
          } else if (byte === 0x20 || byte === 0x09) {
            if (this.digits === 0) throw new ChunkedError('malformed chunk-size line')
            this.afterDigits = true
          } else {
            const value = hexValue(byte)
            if (value < 0 || this.afterDigits) throw new ChunkedError('malformed chunk-size line')
            if (++this.digits > 12) throw new ChunkedError('chunk size too large')
            this.size = this.size * 16 + value
          }

          break
        }

        case State.Data: {
          const take = Math.min(this.remaining, chunk.length - at)
          this.onData(chunk.subarray(at, at + take))
          this.remaining -= take
          at += take
          if (this.remaining === 0) this.state = State.DataEnd
          break
        }

        case State.DataEnd: {
          // The CRLF after the chunk's data.
          const byte = chunk[at++]
          if (byte === 0x0a) this.state = State.Size
          else if (byte !== 0x0d) throw new ChunkedError('chunk data not followed by CRLF')
          break
        }
      }
    }
  }
}
