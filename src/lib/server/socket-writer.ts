import type {Socket} from 'node:net'

export type SlowPolicy = 'disconnect' | 'drop'

/** What the writer needs to know of a subscriber's connection. */
export interface WriteTarget {
  readonly socket: Socket
  /** For the log: who is at the other end, and of which channel. */
  readonly peer: string
  readonly channel: string
  /** The write generation this target was last written in. */
  generation: number
  corked: boolean
  /** Messages skipped since this target became slow; 0 while it keeps up. */
  dropped: number
}

export interface SlowEvents {
  /** A slow target was disconnected (policy disconnect). */
  onSlowDisconnect(target: WriteTarget, pending: number): void
  /** A target began or stopped dropping messages (policy drop). */
  onDropStart(target: WriteTarget, pending: number): void
  onDropEnd(target: WriteTarget, dropped: number): void
}

/**
 * Writes framed messages to subscriber sockets. The first write to a socket
 * in a turn of the event loop goes straight to the kernel; any further ones in
 * the same turn are corked and leave together in one writev when the turn
 * ends. A socket whose unsent output is over the limit is slow and is handled
 * by the policy, never waited for.
 */
export class SocketWriter {
  private generation = 1
  private readonly corked: WriteTarget[] = []
  private flushScheduled = false
  droppedTotal = 0
  slowDisconnects = 0

  constructor(
    private readonly maxPending: number,
    private readonly policy: SlowPolicy,
    private readonly events: SlowEvents,
  ) {}

  /** Returns true when the bytes were handed to the socket. */
  write(target: WriteTarget, bytes: Buffer): boolean {
    const socket = target.socket
    if (socket.destroyed) return false
    const pending = socket.writableLength
    if (pending > this.maxPending) return this.slow(target, pending)
    if (target.dropped > 0) {
      this.events.onDropEnd(target, target.dropped)
      target.dropped = 0
    }

    if (target.generation === this.generation) {
      if (!target.corked) {
        socket.cork()
        target.corked = true
        this.corked.push(target)
      }
    } else {
      target.generation = this.generation
      if (!this.flushScheduled) {
        this.flushScheduled = true
        setImmediate(this.flush)
      }
    }

    socket.write(bytes)
    return true
  }

  private slow(target: WriteTarget, pending: number): boolean {
    if (this.policy === 'disconnect') {
      this.slowDisconnects++
      this.events.onSlowDisconnect(target, pending)
      target.socket.destroy()
      return false
    }

    if (target.dropped++ === 0) this.events.onDropStart(target, pending)
    this.droppedTotal++
    return false
  }

  private readonly flush = (): void => {
    this.flushScheduled = false
    this.generation++
    for (const target of this.corked) {
      target.corked = false
      target.socket.uncork()
    }

    this.corked.length = 0
  }
}
