/**
 * `--history-dir`: the history in append-only segment files, one folder to a
 * server (docs: "History on disk"). The log in memory stays what replays
 * read; this writes every message down as it is accepted and gives the kept
 * ones back at start-up.
 */
import {mkdir, unlink} from 'node:fs/promises'
import {join} from 'node:path'
import {compareMessageIds} from '../bus/message-id.js'
import type {Message} from '../bus/message.js'
import type {Logger} from '../server/ops/log.js'
import {MsgbusError} from '../util/errors.js'
import {DirLock} from './dir-lock.js'
import {historyFailure} from './failure.js'
import type {HistoryLimits} from './message-log.js'
import {encodeRecord} from './record.js'
import {recover} from './recover.js'
import {createSegment, openForAppend, type Segment} from './segment-file.js'
import {SegmentWriter} from './segment-writer.js'
import type {HistoryStore, HistorySync, Recovered, StoredMessage} from './store.js'

/**
 * A new segment begins once the current one holds this much: small enough
 * that the history's default 64 MiB spans a few of them, so old ones go
 * soon after their messages, large enough that rollovers are rare.
 */
export const SEGMENT_BYTES = 64 * 1024 * 1024

export interface SegmentStoreOptions {
  segmentBytes?: number
}

export class SegmentStore implements HistoryStore {
  private lock: DirLock | undefined
  private writer: SegmentWriter | undefined
  /** On disk, oldest first; the last is the one written to. Segment k's newest id is segment k+1's `after`. */
  private segments: Segment[] = []
  /** Deletions under way, one after another, for close() to wait on. */
  private deleting: Promise<void> = Promise.resolve()
  private readonly segmentBytes: number

  constructor(
    readonly dir: string,
    readonly sync: HistorySync,
    private readonly logger: Logger,
    options: SegmentStoreOptions = {},
  ) {
    this.segmentBytes = options.segmentBytes ?? SEGMENT_BYTES
  }

  get failure(): string | undefined {
    return this.writer?.failure
  }

  /** fdatasync calls made so far. */
  get syncs(): number {
    return this.writer?.syncs ?? 0
  }

  async open(limits: HistoryLimits, now: number): Promise<Recovered> {
    if (this.lock) throw new MsgbusError('ERR_MSGBUS_HISTORY_FAILED', `history dir ${this.dir}: the store is open already`)
    try {
      await mkdir(this.dir, {recursive: true, mode: 0o700})
    } catch (error) {
      throw historyFailure(this.dir, 'make the folder', error)
    }

    const lock = await DirLock.take(this.dir, (holder) => this.logger.warn('history', `${this.dir}: took over the lock of ${holder}`))
    try {
      const {recovered, segments, current, stale} = await recover(this.dir, limits, now, this.logger)
      const target = current
        ? {...current, handle: await openForAppend(this.dir, current.segment)}
        : await this.firstSegment(recovered.horizon)
      this.segments = current ? segments : [target.segment]
      this.writer = new SegmentWriter(this.dir, this.sync, this.logger, this.segmentBytes, target, (segment) => this.segments.push(segment))
      this.lock = lock
      this.deleting = this.delete(stale)
      return recovered
    } catch (error) {
      await lock.release().catch(() => {})
      throw historyFailure(this.dir, 'read the history', error)
    }
  }

  /** A new folder's segment, made at once so the horizon is on disk before any message is. */
  private async firstSegment(horizon: string) {
    const {segment, handle, size} = await createSegment(this.dir, horizon, this.sync)
    return {segment, handle, size, last: horizon}
  }

  append(message: StoredMessage): Promise<void> {
    if (!this.writer) return Promise.reject(new MsgbusError('ERR_MSGBUS_HISTORY_FAILED', `history dir ${this.dir}: the store is not open`))
    return this.writer.append(encodeRecord(message), message.id)
  }

  forget(horizon: string): void {
    const {segments} = this
    // The common case, after every drop: the oldest segment still holds a kept message.
    if (segments.length < 2 || compareMessageIds(segments[1].after, horizon) > 0) return
    let gone = 1
    while (gone + 1 < segments.length && compareMessageIds(segments[gone + 1].after, horizon) <= 0) gone++
    const stale = segments.splice(0, gone)
    this.deleting = this.deleting.then(() => this.delete(stale))
  }

  private async delete(stale: Segment[]): Promise<void> {
    for (const segment of stale) {
      try {
        await unlink(join(this.dir, segment.name))
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') this.logger.warn('history', historyFailure(this.dir, `delete ${segment.name}`, error).message)
      }
    }
  }

  async close(): Promise<void> {
    const {writer, lock} = this
    this.writer = undefined
    this.lock = undefined
    try {
      await writer?.close()
      await this.deleting
    } catch (error) {
      throw historyFailure(this.dir, 'close the history', error)
    } finally {
      await lock?.release()
    }
  }
}
