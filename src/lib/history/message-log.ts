import {compareMessageIds, parseMessageId} from '../bus/message-id.js'
import {loggedMessage, type Message} from '../bus/message.js'
import type {GapReason} from '../protocol/gap.js'
import type {Position} from '../protocol/position.js'

/** How much history is kept: the oldest messages go first once any limit is passed. */
export interface HistoryLimits {
  /** Most messages kept; 0 keeps none (history off). */
  count: number
  /** Most bytes kept, bodies and header strings together; 0: no limit but the count. */
  bytes: number
  /** Oldest message kept, in milliseconds; 0: no limit but the count. */
  ageMs: number
}

/** Where a replay begins, and whether messages asked for are gone. */
export interface Resolution {
  /** The serial of the first message to replay (the log's `end` when there is none). */
  start: number
  /** Every message kept after this id is replayed: what `Msgbus-Replay-From` says. */
  from: string
  /** Set when messages the client asked for are not kept (`expired`) or its id is not one this log issued (`unknown`). */
  gap?: Exclude<GapReason, 'dropped' | 'lost'>
  /** A replica's: the id asked for is newer than any it holds yet; live delivery skips messages up to it (the client had them elsewhere). */
  through?: string
}

/**
 * How far ahead of a replica's newest message an id may be and still be
 * taken for one it has yet to receive (another worker or node gave it to
 * the client first) rather than for one no process issued.
 */
export const REPLICA_LAG_MS = 10_000

/** Bytes a message holds in the log: its body and its header strings (an estimate of the object around them is in the docs). */
export function keptSize(message: Omit<Message, 'serial'>): number {
  return message.body.length + message.channel.length + message.type.length + (message.sender?.length ?? 0) + message.id.length
}

/**
 * The history: the newest messages, all channels together, in the order
 * they were accepted, bounded by count, bytes and age. Each message has a
 * serial one past the last; `first` and `end` bound the serials kept, so a
 * reader holds a serial, not a reference, and sees at once when the
 * messages under it were dropped. The horizon is the newest id known to be
 * gone: every message after it is still kept, and a resume from before it
 * has a gap.
 */
export class MessageLog {
  /** Kept messages from `head` on; the slots before it are dropped and compacted away now and then. */
  private messages: Message[] = []
  /**
   * Beside each kept message, what dropping it reads: its size, its id's
   * milliseconds and its id. The oldest message is long out of the CPU's
   * caches when it is dropped, and reading these from the message itself
   * cost each publish microseconds of cache misses (issue 17).
   */
  private sizes: number[] = []
  private stamps: number[] = []
  private ids: string[] = []
  private head = 0
  /** Serial of the oldest message kept (equal to `end` when none is). */
  first = 0
  /** Serial the next message appended gets. */
  end = 0
  bytes = 0
  /** Every message after this id is kept; a resume from an older one has a gap. */
  horizon: string
  /** The newest id appended (the horizon while none has been). */
  newest: string
  /** Called with the new horizon after messages were dropped: a store deletes what lies before it. */
  onForget: ((horizon: string) => void) | undefined
  /**
   * A replica of a log other processes share (`--workers`, `--bus`): it may
   * lag them, so an id newer than its newest, but not by much, is one still
   * on its way, not an unknown one.
   */
  replica = false

  constructor(
    readonly limits: HistoryLimits,
    /** The id before the first this log will hold: a new server's start time, or what a store recovered. */
    horizon: string,
  ) {
    this.horizon = horizon
    this.newest = horizon
  }

  get size(): number {
    return this.end - this.first
  }

  get enabled(): boolean {
    return this.limits.count > 0
  }

  /** The message with this serial; only for `first <= serial < end`. */
  at(serial: number): Message {
    return this.messages[this.head + serial - this.first]
  }

  /** Keeps the message (whose serial must be `end`), then drops the oldest ones past the limits. */
  append(message: Message): void {
    if (message.serial !== this.end) throw new Error(`message serial ${message.serial}, expected ${this.end}`)
    this.end++
    this.newest = message.id
    if (!this.enabled) {
      this.first = this.end
      this.forgotten(message.id)
      return
    }

    const size = keptSize(message)
    const stamp = parseMessageId(message.id)[0]
    this.messages.push(message)
    this.sizes.push(size)
    this.stamps.push(stamp)
    this.ids.push(message.id)
    this.bytes += size
    const {count, bytes} = this.limits
    let dropped: string | undefined
    while (this.size > count || (bytes > 0 && this.bytes > bytes)) dropped = this.dropOldest()
    if (this.limits.ageMs > 0) dropped = this.dropOlderThan(stamp - this.limits.ageMs) ?? dropped
    if (dropped !== undefined) this.forgotten(dropped)
  }

  /** Drops messages past `--history-age`; the server calls it now and then, so a quiet bus lets go of old ones too. */
  trim(now: number = Date.now()): void {
    if (this.limits.ageMs <= 0 || this.size === 0) return
    const dropped = this.dropOlderThan(now - this.limits.ageMs)
    if (dropped !== undefined) this.forgotten(dropped)
  }

  /** Fills a new log with what a store recovered, oldest first; their serials are given here. */
  restore(messages: Array<Omit<Message, 'serial'>>, horizon: string): Message[] {
    if (this.end !== 0) throw new Error('restore() is only for an empty log')
    this.horizon = horizon
    this.newest = horizon
    const restored: Message[] = []
    for (const stored of messages) {
      const message = loggedMessage(stored, this.end)
      this.append(message)
      restored.push(message)
    }

    return restored
  }

  /**
   * Where a subscription that asks for `position` begins. An id newer than
   * any issued is `unknown` (another server's, or one from before a clock
   * step back); one older than the horizon, or a time at or before it, is
   * `expired`: the replay then begins at the oldest message kept.
   */
  resolve(position: Position): Resolution {
    if (position.kind === 'all') return {start: this.first, from: this.horizon}
    if (position.kind === 'id') {
      if (compareMessageIds(position.id, this.newest) > 0) {
        if (this.replica && parseMessageId(position.id)[0] <= Date.now() + REPLICA_LAG_MS) return {start: this.end, from: position.id, through: position.id}
        return {start: this.end, from: this.newest, gap: 'unknown'}
      }

      if (compareMessageIds(position.id, this.horizon) < 0) return {start: this.first, from: this.horizon, gap: 'expired'}
      return {start: this.firstAfter((id) => compareMessageIds(id, position.id) > 0), from: position.id}
    }

    const [horizonMs] = parseMessageId(this.horizon)
    if (position.time <= horizonMs) return {start: this.first, from: this.horizon, gap: 'expired'}
    const start = this.firstAfter((id) => parseMessageId(id)[0] >= position.time)
    return {start, from: start > this.first ? this.at(start - 1).id : this.horizon}
  }

  /** The first serial whose id passes `test` (which, once true, stays true for every later id); `end` if none. */
  private firstAfter(test: (id: string) => boolean): number {
    let low = this.first
    let high = this.end
    while (low < high) {
      const middle = (low + high) >>> 1
      if (test(this.at(middle).id)) high = middle
      else low = middle + 1
    }

    return low
  }

  /** Lets go of every message kept: those before a hole the shared log made (the bus's link lost messages). */
  forgetAll(): void {
    if (this.size === 0) {
      this.forgotten(this.newest)
      return
    }

    let dropped: string | undefined
    while (this.size > 0) dropped = this.dropOldest()
    this.forgotten(dropped as string)
  }

  /** Drops the messages older than `ms`; the id of the newest of them, if any. */
  private dropOlderThan(ms: number): string | undefined {
    let dropped: string | undefined
    while (this.size > 0 && (this.stamps[this.head] as number) < ms) dropped = this.dropOldest()
    return dropped
  }

  /** Drops the oldest message (without reading it: see `sizes`); its id. */
  private dropOldest(): string {
    const {head} = this
    const id = this.ids[head] as string
    this.messages[head] = undefined as unknown as Message
    this.bytes -= this.sizes[head] as number
    this.head++
    this.first++
    // Compacts once the dropped slots are as many as the kept ones: amortised O(1) a message.
    if (this.head >= 1024 && this.head * 2 >= this.messages.length) {
      this.messages = this.messages.slice(this.head)
      this.sizes = this.sizes.slice(this.head)
      this.stamps = this.stamps.slice(this.head)
      this.ids = this.ids.slice(this.head)
      this.head = 0
    }

    return id
  }

  private forgotten(id: string): void {
    this.horizon = id
    this.onForget?.(id)
  }
}
