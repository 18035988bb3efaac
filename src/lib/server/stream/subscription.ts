import type {Socket} from 'node:net'
import type {Message, Subscriber} from '../../bus/message.js'
import type {MessageFilter} from '../../protocol/filter.js'
import type {Frame, StreamEncoder} from '../../protocol/stream-encoder.js'
import {NOT_BEHIND, type SocketWriter, type WriteTarget} from './socket-writer.js'

/** A subscriber at the end of one HTTP connection, streaming in the format it asked for. */
export class HttpSubscription implements Subscriber, WriteTarget {
  generation = 0
  corked = false
  dropped = 0
  behindSince = NOT_BEHIND
  received = 0
  private ended = false

  constructor(
    readonly socket: Socket,
    readonly channel: string,
    /** HTTP/1.1 gets chunked framing; HTTP/1.0 gets the raw bytes and a close at the end. */
    private readonly chunked: boolean,
    private readonly accepts: MessageFilter | undefined,
    readonly encoder: StreamEncoder,
    private readonly writer: SocketWriter,
    readonly peer: string,
  ) {}

  deliver(message: Message): boolean {
    if (this.accepts !== undefined && !this.accepts(message)) return false
    if (!this.send(this.encoder.frame(message))) return false
    this.received++
    return true
  }

  /** Writes bytes that are not a message (a heartbeat), through the same slow-subscriber checks. */
  send(frame: Frame): boolean {
    return this.writer.write(this, this.chunked ? frame.chunked : frame.raw)
  }

  /** Starts the stream: the response head and the format's opening, in one write. */
  start(head: string): void {
    const open = this.chunked ? this.encoder.open.chunked : this.encoder.open.raw
    this.socket.write(Buffer.concat([Buffer.from(head, 'latin1'), open]))
  }

  /** Ends the stream properly: the format's closing and, on HTTP/1.1, the last chunk. */
  end(): void {
    if (this.ended || this.socket.destroyed) return
    this.ended = true
    if (this.corked) this.socket.uncork()
    this.socket.end(this.chunked ? this.encoder.close.chunked : this.encoder.close.raw)
  }
}
