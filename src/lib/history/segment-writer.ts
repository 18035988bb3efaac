/**
 * Appends records to the newest segment, in order, with group commit: the
 * records appended in one turn of the event loop go out in one write, and
 * under `always` one fdatasync covers them all; while a write (and its sync)
 * is under way, the next batch gathers. So a busy server pays one sync for
 * many publishes, and an idle one answers each as soon as its sync is done.
 */
import type {FileHandle} from 'node:fs/promises'
import type {Logger} from '../server/ops/log.js'
import {historyFailure} from './failure.js'
import {createSegment, writeAll, type Segment} from './segment-file.js'
import type {HistorySync} from './store.js'

/** How often `interval` syncs. */
const SYNC_INTERVAL_MS = 1000

interface Pending {
  record: Buffer
  id: string
  resolve: () => void
  reject: (error: Error) => void
}

export interface WriterTarget {
  segment: Segment
  handle: FileHandle
  /** Where its whole records end: where the next goes. */
  size: number
  /** The newest id in it, or its `after` while it holds none. */
  last: string
}

export class SegmentWriter {
  private queue: Pending[] = []
  private scheduled = false
  private pumping = false
  /** The pump under way, for close() to wait on. */
  private idle: Promise<void> = Promise.resolve()
  /** Written since the last fdatasync (`interval`). */
  private dirty = false
  private syncDue = false
  /** A failed write left bytes that could not be cut back: the next write goes to a clean file. */
  private broken = false
  private closed = false
  private readonly timer: NodeJS.Timeout | undefined
  /** The last failure's message, until a write succeeds again (health.ts). */
  failure: string | undefined
  /** fdatasync calls made, for the benchmark and tests. */
  syncs = 0

  constructor(
    private readonly dir: string,
    private readonly sync: HistorySync,
    private readonly logger: Logger,
    private readonly segmentBytes: number,
    private target: WriterTarget,
    /** Hears of every segment made on rollover. */
    private readonly onSegment: (segment: Segment) => void,
  ) {
    if (sync === 'interval') {
      this.timer = setInterval(() => {
        if (!this.dirty) return
        this.syncDue = true
        this.kick()
      }, SYNC_INTERVAL_MS)
      // A store never keeps the process alive by itself.
      this.timer.unref()
    }
  }

  /** Settles once the record is written and, under `always`, synced. */
  append(record: Buffer, id: string): Promise<void> {
    if (this.closed) return Promise.reject(historyFailure(this.dir, 'write', new Error('the history store is closed')))
    return new Promise((resolve, reject) => {
      this.queue.push({record, id, resolve, reject})
      if (this.scheduled) return
      this.scheduled = true
      // After the I/O callbacks of this turn: the publishes that arrived together are written together.
      setImmediate(() => {
        this.scheduled = false
        this.kick()
      })
    })
  }

  private kick(): void {
    if (this.pumping) return
    this.pumping = true
    this.idle = this.pump()
  }

  /**
   * One write (and sync) at a time, so records reach the file in the order
   * they were appended. A sync that is due goes first: under a load that
   * never lets the queue empty, it would wait for ever.
   */
  private async pump(): Promise<void> {
    for (;;) {
      if (this.syncDue) {
        this.syncDue = false
        await this.syncNow()
      } else if (this.queue.length > 0) {
        const batch = this.queue
        this.queue = []
        await this.writeBatch(batch)
      } else {
        this.pumping = false
        return
      }
    }
  }

  private async writeBatch(batch: Pending[]): Promise<void> {
    try {
      await this.prepare()
    } catch (error) {
      return this.fail(batch, error)
    }

    const bytes = batch.length === 1 ? batch[0].record : Buffer.concat(batch.map((pending) => pending.record))
    try {
      await writeAll(this.target.handle, bytes)
    } catch (error) {
      // A write cut short would leave a torn record mid-file, which a reader takes for the end of it.
      await this.cutBack()
      return this.fail(batch, error)
    }

    this.target.size += bytes.length
    this.target.last = batch[batch.length - 1].id
    if (this.sync === 'always') {
      try {
        await this.datasync()
      } catch (error) {
        // After a failed fdatasync the file's state is unknown: the next batch goes to a new one.
        this.broken = true
        return this.fail(batch, error)
      }
    } else if (this.sync === 'interval') {
      this.dirty = true
    }

    this.failure = undefined
    for (const pending of batch) pending.resolve()
  }

  private fail(batch: Pending[], error: unknown): void {
    const failure = historyFailure(this.dir, `write ${batch.length === 1 ? 'a message' : `${batch.length} messages`}`, error)
    this.failure = failure.message
    this.logger.warn('history', failure.message)
    for (const pending of batch) pending.reject(failure)
  }

  /** Rolls over to a new segment when the current one is full or broken. */
  private async prepare(): Promise<void> {
    const {target} = this
    const holdsMessages = target.last !== target.segment.after
    if (this.broken && !holdsMessages) {
      // Nothing in it to keep, and a new segment would have its name: cut it back to its header instead.
      await target.handle.truncate(target.size)
      this.broken = false
    } else if (this.broken || (holdsMessages && target.size >= this.segmentBytes)) {
      await this.rollOver()
    }
  }

  private async cutBack(): Promise<void> {
    try {
      await this.target.handle.truncate(this.target.size)
    } catch {
      this.broken = true
    }
  }

  /**
   * Begins a new segment after the newest id written; the old one is synced
   * (if written since its last sync, under `interval`) and closed only once
   * the new one is there, so a failure to make it leaves the old one to
   * write to.
   */
  private async rollOver(): Promise<void> {
    const old = this.target
    const made = await createSegment(this.dir, old.last, this.sync)
    this.target = {segment: made.segment, handle: made.handle, size: made.size, last: made.segment.after}
    this.broken = false
    this.onSegment(made.segment)
    try {
      if (this.dirty) {
        this.syncs++
        await old.handle.datasync()
      }

      this.dirty = false
      await old.handle.close()
    } catch (error) {
      this.logger.warn('history', historyFailure(this.dir, `close ${old.segment.name}`, error).message)
    }
  }

  private async datasync(): Promise<void> {
    this.syncs++
    await this.target.handle.datasync()
  }

  /** `interval`'s sync: a failure is logged, as the publishes it covers were answered already. */
  private async syncNow(): Promise<void> {
    this.dirty = false
    try {
      await this.datasync()
    } catch (error) {
      this.broken = true
      this.failure = historyFailure(this.dir, `sync ${this.target.segment.name}`, error).message
      this.logger.warn('history', this.failure)
    }
  }

  /** Writes what is queued, syncs it (unless `never`) and closes the file. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    clearInterval(this.timer)
    this.kick()
    while (this.pumping) await this.idle
    if (this.sync !== 'never' && this.dirty) await this.syncNow()
    await this.target.handle.close()
  }
}
