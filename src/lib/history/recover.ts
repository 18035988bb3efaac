/**
 * Start-up: what a history folder gives back, within the limits, and the
 * folder made fit to append to again. Segments are read newest first and the
 * reading stops once the limits are full, so start-up costs what is kept,
 * not what is on disk; the segments older than that go, unread.
 */
import {truncate, unlink} from 'node:fs/promises'
import {join} from 'node:path'
import {parseMessageId} from '../bus/message-id.js'
import type {Logger} from '../server/ops/log.js'
import {keptSize, type HistoryLimits} from './message-log.js'
import {listSegments, readSegment, type Segment} from './segment-file.js'
import type {Recovered, StoredMessage} from './store.js'

/** The segment appends go to: the newest, its torn tail cut. */
export interface CurrentSegment {
  segment: Segment
  /** Where its whole records end. */
  size: number
  /** The newest id in it, or its `after` while it holds none. */
  last: string
}

export interface Recovery {
  recovered: Recovered
  /** The segments left, oldest first; the last is `current`. */
  segments: Segment[]
  current: CurrentSegment | undefined
  /**
   * Older segments, unread, that hold nothing kept: to delete, after
   * start-up (freeing a GiB of files takes the file system a while).
   */
  stale: Segment[]
}

/** Whether `message`, older than every one kept so far, is kept too: the same limits the log in memory keeps to (message-log.ts). */
function within(limits: HistoryLimits, now: number): (message: StoredMessage, count: number, bytes: number) => boolean {
  const oldestMs = limits.ageMs > 0 ? now - limits.ageMs : -Infinity
  return (message, count, bytes) =>
    count < limits.count && (limits.bytes <= 0 || bytes + keptSize(message) <= limits.bytes) && parseMessageId(message.id)[0] >= oldestMs
}

/**
 * Reads `dir`'s segments newest first, keeping messages while they are
 * within the limits. The newest segment is the one appends go to: a torn or
 * corrupt tail there is cut back to the last whole record (a kill -9 or a
 * power loss mid-write), and one that never got its header is removed. In
 * an older segment a corrupt record ends what is read of it; the reading
 * goes on with the segment before. Segments that hold nothing kept are
 * deleted (by the caller), except the newest.
 */
export async function recover(dir: string, limits: HistoryLimits, now: number, logger: Logger): Promise<Recovery> {
  const segments = await listSegments(dir)
  const keeps = within(limits, now)
  /** Newest first. */
  const kept: StoredMessage[] = []
  let bytes = 0
  let horizon: string | undefined
  let current: CurrentSegment | undefined
  /** The oldest segment that holds a kept message. */
  let keepFrom = segments.length
  for (let i = segments.length - 1; i >= 0 && horizon === undefined; i--) {
    const segment = segments[i]
    const path = join(dir, segment.name)
    const contents = await readSegment(dir, segment)
    const cut = contents.size - contents.end
    const why = contents.stop === 'torn' ? 'a record cut short' : 'a record that does not check out'
    if (current === undefined) {
      if (!contents.headed) {
        // Made when the process stopped, before its header was whole: no message ever went into it.
        logger.warn('history', `${path}: removed, a segment without a whole header (${contents.size} bytes)`)
        await unlink(path)
        segments.splice(i, 1)
        keepFrom--
        continue
      }

      if (cut > 0) {
        await truncate(path, contents.end)
        logger.warn('history', `${path}: cut ${cut} bytes after its last whole record, at byte ${contents.end} (${why})`)
      }

      const newest = contents.records.at(-1)
      current = {segment, size: contents.end, last: newest?.kind === 'message' ? newest.message.id : segment.after}
    } else if (cut > 0) {
      logger.warn('history', `${path}: ${why} at byte ${contents.end}: the ${cut} bytes from there on are not read (messages may be missing there)`)
    }

    const fromThis = kept.length
    const bytesBefore = bytes
    for (let k = contents.records.length - 1; k >= 0; k--) {
      const record = contents.records[k]
      if (record.kind !== 'message') continue
      if (!keeps(record.message, kept.length, bytes)) {
        horizon = record.message.id
        break
      }

      kept.push(record.message)
      bytes += keptSize(record.message)
      keepFrom = i
    }

    // Bodies are views into the file's bytes, which they keep in memory: where less than half of
    // them is kept, the kept ones are copied, so the rest can go (copying all costs start-up time).
    if (horizon !== undefined && (bytes - bytesBefore) * 2 < contents.size) for (let k = fromThis; k < kept.length; k++) kept[k].body = Buffer.from(kept[k].body)
  }

  // Every segment older than the oldest kept message goes; the newest stays, to append to.
  const firstKept = Math.min(keepFrom, segments.length - 1)
  const stale = firstKept > 0 ? segments.splice(0, firstKept) : []
  horizon ??= segments[0]?.after ?? `${now}-0`
  return {recovered: {messages: kept.reverse(), horizon}, segments, current, stale}
}
