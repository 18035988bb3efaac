import type {Socket} from 'node:net'
import type {Message, Subscriber} from '../../bus/message.js'
import {compareMessageIds} from '../../bus/message-id.js'
import type {MessageFilter} from '../../protocol/filter.js'
import type {DisconnectReason} from '../../protocol/disconnect.js'
import type {Gap} from '../../protocol/gap.js'
import type {Frame, StreamEncoder} from '../../protocol/stream-encoder.js'
import type {ReplayTarget} from './replay.js'
import {NOT_BEHIND, type SocketWriter, type WriteTarget} from './socket-writer.js'

/** A subscriber at the end of one HTTP connection, streaming in the format it asked for. */
export class HttpSubscription implements Subscriber, WriteTarget, ReplayTarget {
  outbox: Buffer[] = []
  outboxBytes = 0
  dropped = 0
  behindSince = NOT_BEHIND
  received = 0
  /** While true, the replay writes (replay.ts) and live delivery only counts. */
  replaying = false
  lastSerial = -1
  lastId: string | undefined
  /** Resumed on a replica from an id it has yet to receive: messages up to it are skipped (the client has them). */
  through: string | undefined
  /** The id of the last message skipped while dropping (`--slow-policy drop`). */
  private skippedId: string | undefined
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
    /** Gap events in-band: always on SSE and NDJSON, on multipart when asked for (`?gaps=1`). */
    private readonly gapEvents: boolean,
  ) {}

  deliver(message: Message): boolean {
    // The replay wrote it already (a fan-out sliced over several turns reaches some subscribers late).
    if (message.serial <= this.lastSerial) return false
    if (this.through !== undefined && this.skipsThrough(message)) return false
    if (this.accepts !== undefined && !this.accepts(message)) return false
    if (this.replaying) return true
    const frame = this.encoder.frame(message)
    if (!this.writer.write(this, this.chunked ? frame.chunked : frame.raw)) {
      if (this.dropped > 0) this.skippedId = message.id
      return false
    }

    this.lastId = message.id
    this.received++
    return true
  }

  /** True for a message up to `through`; past it, `through` is done with. */
  private skipsThrough(message: Message): boolean {
    if (compareMessageIds(message.id, this.through as string) <= 0) {
      this.lastSerial = message.serial
      return true
    }

    this.through = undefined
    return false
  }

  /** The link lost messages: a gap event, unless a replay runs (it finds the log emptied, and says so itself). */
  lost(gap: Omit<Gap, 'after'>): void {
    if (this.replaying) return
    const bytes = this.gapBytes({...gap, after: this.lastId ?? null})
    if (bytes) this.writer.write(this, bytes, false)
  }

  /** Bytes written to the socket other than through the writer: counted with the writer's. */
  sent(bytes: number): void {
    this.writer.bytesOut += bytes
  }

  /** For the replay, which reads every channel's messages from the one log. */
  wants(message: Message): boolean {
    if (this.channel !== '' && message.channel !== this.channel) return false
    return this.accepts === undefined || this.accepts(message)
  }

  bytesOf(message: Message, shared: boolean): Buffer {
    const frame = shared ? this.encoder.replayFrame(message) : this.encoder.frame(message)
    return this.chunked ? frame.chunked : frame.raw
  }

  gapBytes(gap: Gap): Buffer | undefined {
    const frame = this.gapEvents ? this.encoder.gap(gap) : undefined
    return frame && (this.chunked ? frame.chunked : frame.raw)
  }

  /**
   * The disconnect event (disconnect.ts) in this stream's format, where it
   * has one (as for gaps: SSE, NDJSON, multipart with `?gaps=1`): why the
   * server cuts it, and the id of the last message written before.
   */
  disconnectBytes(reason: DisconnectReason, detail: {unsent?: number; behindMs?: number} = {}): Buffer | undefined {
    const frame = this.gapEvents ? this.encoder.disconnect({reason, after: this.lastId ?? null, ...detail}) : undefined
    return frame && (this.chunked ? frame.chunked : frame.raw)
  }

  slowNotice(unsent: number, behindMs: number): Buffer | undefined {
    return this.disconnectBytes('slow', {unsent, behindMs})
  }

  /** Back under --max-pending after dropping `dropped` messages: the gap event to write before the next one. */
  caughtUp(dropped: number): Buffer | undefined {
    return this.gapBytes({reason: 'dropped', after: this.lastId ?? null, from: this.skippedId ?? this.lastId ?? '', skipped: dropped})
  }

  /**
   * Writes bytes that are not a message (a heartbeat), through the same
   * slow-subscriber checks; skipped, never counted as dropped, while
   * dropping. Not during a replay, whose writes keep the stream from being
   * idle, and which waits for a slow reader instead of cutting it.
   */
  send(frame: Frame): boolean {
    if (this.replaying) return false
    return this.writer.write(this, this.chunked ? frame.chunked : frame.raw, false)
  }

  /**
   * Starts the stream, in one write: the response head, the format's
   * opening, where it starts from (for formats that carry it, so a client
   * that reconnects before any message still resumes from there), and a gap
   * event if one is due.
   */
  start(head: string, from: string, gap?: Gap): void {
    const pick = (frame: Frame | undefined) => frame && (this.chunked ? frame.chunked : frame.raw)
    const pieces = [Buffer.from(head, 'latin1'), pick(this.encoder.open), pick(this.encoder.startsAfter(from)), gap && this.gapBytes(gap)]
    const bytes = Buffer.concat(pieces.filter((piece): piece is Buffer => piece !== undefined && piece.length > 0))
    this.socket.write(bytes)
    this.sent(bytes.length)
  }

  /**
   * Ends the stream properly: the format's closing and, on HTTP/1.1, the
   * last chunk; `shutdown`: after a disconnect event saying so, so a client
   * knows the end is the server's and resumes rather than stops.
   */
  end(reason?: 'shutdown'): void {
    if (this.ended || this.socket.destroyed) return
    this.ended = true
    this.writer.flushTarget(this)
    const close = this.chunked ? this.encoder.close.chunked : this.encoder.close.raw
    const notice = reason && this.disconnectBytes(reason)
    const bytes = notice ? Buffer.concat([notice, close]) : close
    this.socket.end(bytes)
    this.sent(bytes.length)
  }
}
