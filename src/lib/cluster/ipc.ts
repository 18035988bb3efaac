/**
 * What a cluster's primary and its workers say to each other over the IPC
 * channel Node's cluster opens (`serialization: 'advanced'`: structured
 * clone, so message bodies pass as Buffers, not as JSON arrays of bytes).
 * Everything one side has to say in a turn of the event loop goes in one
 * `send()`: at 500 publishes a second to two workers, one IPC message a turn
 * each way instead of one per publish, commit and count.
 */
import type {StoredMessage} from '../history/store.js'
import type {MessageInput} from '../bus/message.js'
import type {Appended} from '../bus/link.js'
import type {ServerCounters} from '../server/ops/counters.js'
import type {MsgbusErrorCode} from '../util/errors.js'

/** A worker to its primary. */
export type WorkerSays =
  /** Send me the kept window, then every message committed after it. */
  | {t: 'open'}
  /** Append these (a form's together); answer `appended` with the same `seq`. */
  | {t: 'append'; seq: number; inputs: MessageInput[]}
  /** Commit `n` reached this many of my subscribers, message by message. */
  | {t: 'handed'; n: number; handed: number[]}
  /** My server has started: its listeners are bound. */
  | {t: 'ready'}
  /** What my server has done so far (for `--stats` and `--metrics` on the primary). */
  | {t: 'counters'; counters: ServerCounters}

/** A primary to a worker. */
export type PrimarySays =
  | {t: 'opened'; messages: StoredMessage[]; horizon: string}
  | {t: 'commit'; n: number; messages: StoredMessage[]}
  | {t: 'appended'; seq: number; appended: Appended[]}
  | {t: 'refused'; seq: number; code: MsgbusErrorCode; message: string}

/** Where a batch goes: `process` in a worker, a `Worker` in the primary. */
export interface Channel<T> {
  send(batch: T[]): void
}

/**
 * Collects what is said in one turn and sends it as one batch, from
 * setImmediate: after every publish and commit this turn handles, before
 * the next turn's I/O.
 */
export class Batcher<T> {
  private queue: T[] = []
  private scheduled = false

  constructor(private readonly channel: Channel<T>) {}

  push(item: T): void {
    this.queue.push(item)
    if (this.scheduled) return
    this.scheduled = true
    setImmediate(this.flush)
  }

  /** Sends what is queued now (before a worker exits, say). */
  readonly flush = (): void => {
    this.scheduled = false
    if (this.queue.length === 0) return
    const batch = this.queue
    this.queue = []
    this.channel.send(batch)
  }
}
