import type {Socket} from 'node:net'
import {endAndLinger, LINGER_MS} from '../http/linger.js'

export type SlowPolicy = 'disconnect' | 'drop'

const EMPTY = Buffer.alloc(0)

/** WriteTarget.behindSince of a target that keeps up. */
export const NOT_BEHIND = -1

/** Messages of the largest size that make the hard bound when request bodies have no cap. */
const UNCAPPED_BURST_MESSAGES = 32

/**
 * Unsent bytes past which a subscriber is slow at once, however recently it
 * fell behind: as much as every request body the server may hold can bring at
 * once (`maxBodyMemory`), so no burst the server can take in cuts a reader
 * that keeps reading, while the memory a stalled one pins stays bounded.
 */
export function hardBound(limits: {maxPending: number; maxBodyMemory: number; maxMessageSize: number}): number {
  const burst = limits.maxBodyMemory > 0 ? limits.maxBodyMemory : UNCAPPED_BURST_MESSAGES * limits.maxMessageSize
  return Math.max(limits.maxPending, burst)
}

/** When a subscriber is behind, and when it is slow. */
export interface SlowRule {
  /** Unsent bytes past which a subscriber is behind when a message for it arrives. */
  maxPending: number
  /** Milliseconds it may stay behind before it is slow. */
  slowTimeoutMs: number
  /** Unsent bytes past which it is slow at once (see hardBound). */
  hardBound: number
  policy: SlowPolicy
  /** How long a cut subscriber may still read what was written to it, its disconnect notice last, before it is destroyed. Default LINGER_MS. */
  cutLingerMs?: number
}

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
  /** When (performance.now()) a message first found it behind, NOT_BEHIND since one found it under the limit. */
  behindSince: number
  /** Back under the limit after dropping: bytes that say so (a gap event), written before the next message. */
  caughtUp?(dropped: number): Buffer | undefined
  /** Cut as slow: the last bytes it is written (a disconnect event), if its format has room for them. */
  slowNotice?(unsent: number, behindMs: number): Buffer | undefined
}

export interface SlowEvents {
  /** A slow target was disconnected (policy disconnect); it had been behind for `behindMs`. */
  onSlowDisconnect(target: WriteTarget, pending: number, behindMs: number): void
  /** A target began or stopped dropping messages (policy drop). */
  onDropStart(target: WriteTarget, pending: number, behindMs: number): void
  onDropEnd(target: WriteTarget, dropped: number): void
}

/**
 * Writes framed messages to subscriber sockets. The first write to a socket
 * in a turn of the event loop goes straight to the kernel; any further ones in
 * the same turn are corked and leave together in one writev when the turn
 * ends. A socket whose unsent output is over maxPending when a message comes
 * is behind; one that stays behind for slowTimeoutMs, or whose unsent output
 * passes the hard bound, is slow and is handled by the policy, never waited
 * for (`disconnect`: ended with a notice of why, then destroyed after a
 * linger). As nothing is added to a socket's output between two writes, a check
 * at each write sees every return under the limit.
 */
export class SocketWriter {
  private generation = 1
  private readonly corked: WriteTarget[] = []
  private flushScheduled = false
  /** The time, read once in a generation (a turn of the event loop) and only when some target is behind. */
  private clock = 0
  private clockGeneration = 0
  droppedTotal = 0
  slowDisconnects = 0
  /** Bytes written to subscriber sockets, here and by the stream's own writes (its head, a replay, its end): for the metrics. */
  bytesOut = 0
  /** rule.maxPending, read on every write. */
  private readonly maxPending: number

  constructor(
    private readonly rule: SlowRule,
    private readonly events: SlowEvents,
  ) {
    this.maxPending = rule.maxPending
  }

  /**
   * Returns true when the bytes were handed to the socket. `message` false:
   * bytes that are not a message (a heartbeat), which a slow subscriber under
   * the drop policy goes without, uncounted: no message is lost, so no gap
   * is told of.
   */
  write(target: WriteTarget, bytes: Buffer, message = true): boolean {
    const socket = target.socket
    // Ended (a poll, or the server stopping): a write now would fail the connection and lose what it still holds.
    if (socket.destroyed || socket.writableEnded) return false
    const pending = socket.writableLength
    let gap: Buffer | undefined
    if (pending > this.maxPending) {
      if (this.isSlow(target, pending)) return this.slow(target, pending, message)
    } else if (target.behindSince !== NOT_BEHIND) {
      target.behindSince = NOT_BEHIND
      if (target.dropped > 0) {
        this.events.onDropEnd(target, target.dropped)
        gap = target.caughtUp?.(target.dropped)
        target.dropped = 0
      }
    }

    if (target.generation === this.generation) {
      if (!target.corked) {
        socket.cork()
        target.corked = true
        this.corked.push(target)
      }
    } else {
      target.generation = this.generation
      this.scheduleFlush()
    }

    if (gap) {
      socket.write(gap)
      this.bytesOut += gap.length
    }

    socket.write(bytes)
    this.bytesOut += bytes.length
    return true
  }

  /** For a target that is behind now: is it slow? Starts its time behind if it just fell behind. */
  private isSlow(target: WriteTarget, pending: number): boolean {
    // Dropping goes on until it is back under maxPending.
    if (target.dropped > 0 || pending > this.rule.hardBound) return true
    const now = this.now()
    if (target.behindSince === NOT_BEHIND) {
      target.behindSince = now
      return false
    }

    return now - target.behindSince >= this.rule.slowTimeoutMs
  }

  private slow(target: WriteTarget, pending: number, message: boolean): boolean {
    const behindMs = target.behindSince === NOT_BEHIND ? 0 : this.now() - target.behindSince
    if (this.rule.policy === 'disconnect') {
      this.slowDisconnects++
      this.events.onSlowDisconnect(target, pending, behindMs)
      // Ended, not destroyed, so the notice of why reaches a reader that reads
      // on; it queues behind all it has not read, so the linger bounds how
      // long one that never reads holds the connection and its unsent bytes.
      // No closing bytes: the stream is cut short, not ended.
      const notice = target.slowNotice?.(pending, behindMs) ?? EMPTY
      this.bytesOut += notice.length
      endAndLinger(target.socket, notice, this.rule.cutLingerMs ?? LINGER_MS)
      return false
    }

    if (!message) return false

    if (target.dropped++ === 0) {
      if (target.behindSince === NOT_BEHIND) target.behindSince = this.now()
      this.events.onDropStart(target, pending, behindMs)
    }

    this.droppedTotal++
    return false
  }

  private now(): number {
    if (this.clockGeneration !== this.generation) {
      this.clockGeneration = this.generation
      this.clock = performance.now()
      // Moves the generation on after this turn even when nothing is written in it, so the clock is read afresh in the next.
      this.scheduleFlush()
    }

    return this.clock
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return
    this.flushScheduled = true
    setImmediate(this.flush)
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
