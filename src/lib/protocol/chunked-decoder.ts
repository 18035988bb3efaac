/**
 * Removes HTTP/1.1 chunked transfer coding from a byte stream as it arrives
 * (RFC 9112 §7.1): payload slices out, zero-copy, and `ended` once the last
 * chunk came. For clients that read a response straight off a socket.
 */
export class ChunkedError extends Error {}

const enum State {
  Size,
  Data,
  DataEnd,
  Done,
}

/** A chunk-size line is hex digits and optional extensions; this is far more than any real one needs. */
const MAX_SIZE_LINE = 1024

export class ChunkedDecoder {
  private state = State.Size
  private remaining = 0
  private line = ''

  constructor(private readonly onData: (payload: Buffer) => void) {}

  get ended(): boolean {
    return this.state === State.Done
  }

  write(chunk: Buffer): void {
    let at = 0
    while (at < chunk.length && this.state !== State.Done) {
      switch (this.state) {
        case State.Size: {
          const lf = chunk.indexOf(0x0a, at)
          const end = lf < 0 ? chunk.length : lf
          this.line += chunk.toString('latin1', at, end)
          if (this.line.length > MAX_SIZE_LINE) throw new ChunkedError('chunk-size line too long')
          if (lf < 0) return
          at = lf + 1
          const match = /^([0-9a-fA-F]+)[ \t]*(?:;[^\r]*)?\r?$/.exec(this.line)
          this.line = ''
          if (!match) throw new ChunkedError('malformed chunk-size line')
          this.remaining = Number.parseInt(match[1], 16)
          // The last chunk; trailers, if any, are not read: the response is over.
          this.state = this.remaining === 0 ? State.Done : State.Data
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
