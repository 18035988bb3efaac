import type {Socket} from 'node:net'
import type {Message} from '../../bus/message.js'
import type {MessageLog} from '../../history/message-log.js'
import type {Gap} from '../../protocol/gap.js'

/** What a replay writes to: a subscription's connection, its filters and its format. */
export interface ReplayTarget {
  readonly socket: Socket
  /** The serial of the last message this subscriber has had, or skipped as not for it: live delivery skips up to it. */
  lastSerial: number
  /** The id of the last message written to it. */
  lastId: string | undefined
  received: number
  wants(message: Message): boolean
  /** `shared`: other replays run now, and are likely to want the same frame (frame-cache.ts). */
  bytesOf(message: Message, shared: boolean): Buffer
  /** The gap event's bytes in this stream's format, if it carries one. */
  gapBytes(gap: Gap): Buffer | undefined
  /** Told of the bytes the replay wrote, for the server's counters. */
  sent?(bytes: number): void
}

/** Messages looked at in one turn of the event loop: others' turns come between, however long the backlog. */
const SLICE_MESSAGES = 2000
/** Bytes gathered before they go to the socket in one writev. */
const SLICE_BYTES = 256 * 1024

/**
 * Replays running now in this process, and when the last one began. One
 * alone frames as live delivery does; one that begins beside others, or
 * within a second of another (a herd reconnecting, whose short replays may
 * each be over in one turn), shares the frames it builds with them: that
 * costs a lone replay a quarter of its speed and saves a herd most of its
 * CPU.
 */
let running = 0
let lastBegun = -Infinity
const HERD_MS = 1000

/**
 * Writes a subscriber's backlog from the log, oldest first, and calls
 * `done` once it has caught up with the log's end (or `until`): from then on, live
 * delivery takes over, with nothing between the two (the subscriber is on
 * the bus all along; what comes while the replay runs is in the log, and
 * live delivery skips what the replay wrote). Paced by the socket: past
 * `highWater` unsent bytes it waits for 'drain', so a slow reader holds a
 * position in the log, never a copy of it. Should the log drop messages
 * under that position first, the subscriber is told by a gap event.
 */
export function replay(target: ReplayTarget, log: MessageLog, start: number, highWater: number, done: () => void, until?: number): void {
  let cursor = start
  const now = performance.now()
  const shared = running > 0 || now - lastBegun < HERD_MS
  lastBegun = now
  running++
  let finished = false
  const finish = (): void => {
    if (finished) return
    finished = true
    running--
  }

  target.socket.once('close', finish)
  // A poll stops at the end the log had when it began, so publishes faster than the reader cannot keep it going.
  const end = () => until ?? log.end
  const step = (): void => {
    const {socket} = target
    // Gone, or ended (the server stops): nothing more may be written.
    if (socket.destroyed || socket.writableEnded) return
    const pieces: Buffer[] = []
    let bytes = 0
    let looked = 0
    while (cursor < end() && looked < SLICE_MESSAGES && bytes < SLICE_BYTES) {
      if (cursor < log.first) {
        const gap = target.gapBytes({reason: 'expired', after: target.lastId ?? null, from: log.horizon})
        if (gap) {
          pieces.push(gap)
          bytes += gap.length
        }

        cursor = log.first
        continue
      }

      const message = log.at(cursor++)
      looked++
      target.lastSerial = message.serial
      if (!target.wants(message)) continue
      const frame = target.bytesOf(message, shared)
      if (frame.length === 0) continue
      pieces.push(frame)
      bytes += frame.length
      target.lastId = message.id
      target.received++
    }

    if (pieces.length > 0) {
      socket.cork()
      for (const piece of pieces) socket.write(piece)
      socket.uncork()
      target.sent?.(bytes)
    }

    // Waits for the reader past `highWater`, even once caught up, so that live
    // delivery never begins with the replay's bytes counting the subscriber as
    // behind (with --slow-timeout 0 it would be slow at its second message).
    // 'drain' comes only after a write that found the socket's own buffer full
    // (16 KiB): under a smaller `highWater` (--max-pending 0) the replay writes
    // on until it is, instead of waiting for a 'drain' that never comes.
    if (socket.writableLength >= highWater && socket.writableNeedDrain) {
      socket.once('drain', step)
    } else if (cursor >= end()) {
      target.lastSerial = end() - 1
      finish()
      target.socket.off('close', finish)
      done()
    } else {
      setImmediate(step)
    }
  }

  step()
}
