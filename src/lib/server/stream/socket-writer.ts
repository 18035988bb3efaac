import type {Socket} from 'node:net'
import {endAndLinger, LINGER_MS} from '../http/linger.js'
import {plainSocketFd} from '../../util/native-module.js'
import {NativeBatch, type NativeSender} from './native-send.js'

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
  /** Its socket's file descriptor for the native sender, read at its first flush (-1: none, a TLS socket); owned by the writer. */
  fd?: number
  /** Bytes handed to it that wait for the next flush, oldest first (see SocketWriter); owned by the writer. */
  outbox: Buffer[]
  /** Their length, all together. */
  outboxBytes: number
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
 * Targets given to their sockets in one turn of the event loop: other
 * connections' turns come between (a new subscriber's accept, the next
 * publish). Small, because what a publisher sends while a flush goes round
 * is queued behind the targets not reached yet and coalesces with what they
 * hold: with 16 a turn instead of 50, 100 subscribers and one publish in
 * flight took 2× the deliveries a second for half the CPU each (bench
 * scenario 3), while 1,000 subscribers at 100 msg/s, where nothing
 * coalesces, paid about 0.1 µs a delivery for the extra turns. (With 1,000 a
 * turn, a busy server turned ~15 times a second and new connections waited
 * 20-30 s in a full listen queue: bench/accept.ts.)
 */
export const FLUSH_SLICE = 16

/** Unflushed bytes, all targets together, past which a publish's answer waits (whenFlushed): what a fast publisher can have queued ahead of the sockets. */
export const FLUSH_BACKLOG = 4 * 1024 * 1024

/** Bytes of one target's outbox joined into one buffer (one copy, one plain write); a larger outbox goes out by writev. */
const JOIN_BYTES = 64 * 1024

/**
 * Writes framed messages to subscriber sockets. A write only puts the bytes
 * in the target's outbox: they are given to the socket at the next flush, a
 * turn of the event loop later, all the outbox in one system call. So the
 * bus hands a message to thousands of subscribers for the cost of a few
 * array pushes, the publisher is answered at once (its message is "queued
 * there", docs/protocol.md), and the system calls, which cost most, come
 * after, FLUSH_SLICE targets a turn. Under load that coalesces: the messages
 * published while a flush goes round wait in the outboxes of the targets it
 * has not reached yet and go out with their predecessors, so a saturated bus
 * makes fewer system calls per delivery, not more; an idle one flushes each
 * message a turn after it came. Publishers cannot outrun the flush: past
 * FLUSH_BACKLOG unflushed bytes their answers wait (whenFlushed).
 *
 * A socket whose unsent output (its own buffer and its outbox) is over
 * maxPending when a message comes is behind; one that stays behind for
 * slowTimeoutMs, or whose unsent output passes the hard bound, is slow and
 * is handled by the policy, never waited for (`disconnect`: what it was
 * handed goes out, then a notice of why, then the end, and it is destroyed
 * after a linger). As nothing is added to a socket's output between two
 * writes, a check at each write sees every return under the limit.
 *
 * With the native sender (native-send.ts), a flush slice's plain sockets
 * that have nothing queued in Node are sent their bytes in one call, instead
 * of a socket.write each: what a socket does not take goes to its stream
 * after, as it would have. At 1,000 subscribers × 100 msg/s that took the
 * server's CPU a delivery from 9.1 to 7.5 µs with a send(2) each, and to
 * 4.8-5.7 µs with the slice's sends in one io_uring_enter (send-many.c;
 * one minimal reader, 3 runs each; what is left is the kernel's TCP path).
 */
export class SocketWriter {
  /** Targets with an outbox to flush, in the order they got their first bytes. */
  private waiting: WriteTarget[] = []
  /** The round being flushed, and how far it got. */
  private round: WriteTarget[] = []
  private roundAt = 0
  private flushScheduled = false
  /** Bytes in every outbox. */
  private backlog = 0
  /** Publishes' answers held until the backlog is under FLUSH_BACKLOG. */
  private readonly held: Array<() => void> = []
  /** The time, read once a turn and only when some target is behind; NaN once the turn is over. */
  private clock = Number.NaN
  droppedTotal = 0
  slowDisconnects = 0
  /** Bytes given to subscriber sockets, here and by the stream's own writes (its head, a replay, its end): for the metrics. */
  bytesOut = 0
  /** rule.maxPending, read on every write. */
  private readonly maxPending: number
  private readonly batch: NativeBatch | undefined

  constructor(
    private readonly rule: SlowRule,
    private readonly events: SlowEvents,
    native?: NativeSender,
  ) {
    this.maxPending = rule.maxPending
    this.batch = native && new NativeBatch(native)
  }

  /**
   * Returns true when the bytes were handed to the target. `message` false:
   * bytes that are not a message (a heartbeat), which a slow subscriber under
   * the drop policy goes without, uncounted: no message is lost, so no gap
   * is told of.
   */
  write(target: WriteTarget, bytes: Buffer, message = true): boolean {
    const socket = target.socket
    // Ended (a poll, or the server stopping): a write now would fail the connection and lose what it still holds.
    if (socket.destroyed || socket.writableEnded) return false
    const pending = socket.writableLength + target.outboxBytes
    if (pending > this.maxPending) {
      if (this.isSlow(target, pending)) return this.slow(target, pending, message)
    } else if (target.behindSince !== NOT_BEHIND) {
      target.behindSince = NOT_BEHIND
      if (target.dropped > 0) {
        this.events.onDropEnd(target, target.dropped)
        const gap = target.caughtUp?.(target.dropped)
        target.dropped = 0
        if (gap) this.enqueue(target, gap)
      }
    }

    this.enqueue(target, bytes)
    return true
  }

  /**
   * Resolves once the bytes waiting to be flushed are under FLUSH_BACKLOG;
   * undefined when they are now (no promise, no turn lost).
   */
  whenFlushed(): Promise<void> | undefined {
    if (this.backlog <= FLUSH_BACKLOG) return undefined
    return new Promise((resolve) => this.held.push(resolve))
  }

  /** Gives what the target's outbox holds to its socket now: before bytes written to the socket directly (its end). */
  flushTarget(target: WriteTarget): void {
    if (target.outbox.length === 0) return
    this.send(target)
    this.batch?.send()
  }

  private enqueue(target: WriteTarget, bytes: Buffer): void {
    if (target.outbox.length === 0) {
      this.waiting.push(target)
      this.scheduleFlush()
    }

    target.outbox.push(bytes)
    target.outboxBytes += bytes.length
    this.backlog += bytes.length
  }

  /** One system call for all the outbox (a write of one buffer, or one writev). */
  private send(target: WriteTarget): void {
    const {socket, outbox} = target
    const bytes = target.outboxBytes
    this.backlog -= bytes
    target.outboxBytes = 0
    if (socket.destroyed || socket.writableEnded) {
      outbox.length = 0
      return
    }

    if (bytes <= JOIN_BYTES) {
      const joined = outbox.length === 1 ? (outbox[0] as Buffer) : Buffer.concat(outbox, bytes)
      // Past Node's stream only when nothing of it waits there, so the bytes keep their order.
      const fd = this.batch !== undefined && socket.writableLength === 0 ? (target.fd ??= plainSocketFd(socket)) : -1
      if (fd >= 0) (this.batch as NativeBatch).add(fd, socket, joined)
      else socket.write(joined)
    } else {
      socket.cork()
      for (const piece of outbox) socket.write(piece)
      socket.uncork()
    }

    outbox.length = 0
    this.bytesOut += bytes
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
      // on, after all it was handed; it queues behind all it has not read, so
      // the linger bounds how long one that never reads holds the connection
      // and its unsent bytes. No closing bytes: the stream is cut short, not ended.
      this.flushTarget(target)
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
    if (Number.isNaN(this.clock)) {
      this.clock = performance.now()
      // Forgets it after this turn even when nothing is flushed in it, so the next turn reads it afresh.
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
    this.clock = Number.NaN
    if (this.roundAt === this.round.length) {
      // A new round: every target that got bytes since the last one began, once each.
      this.round.length = 0
      ;[this.round, this.waiting] = [this.waiting, this.round]
      this.roundAt = 0
    }

    const end = Math.min(this.round.length, this.roundAt + FLUSH_SLICE)
    while (this.roundAt < end) {
      const target = this.round[this.roundAt++] as WriteTarget
      // Empty when flushed out of turn (flushTarget): it is in the next round if it got bytes since.
      if (target.outbox.length > 0) this.send(target)
    }
    this.batch?.send()
    if (this.roundAt < this.round.length || this.waiting.length > 0) this.scheduleFlush()
    if (this.held.length > 0 && this.backlog <= FLUSH_BACKLOG) for (const release of this.held.splice(0)) release()
  }
}
