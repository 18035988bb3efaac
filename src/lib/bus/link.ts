/**
 * The boundary between a bus and the log that orders its messages. One
 * process alone orders its own (embedded-link.ts: ids from its clock, the
 * history in memory or in `--history-dir`); workers of one machine share
 * their primary's (`--workers`); nodes share a Redis stream (`--bus
 * redis://`). Whatever the link, every process keeps the kept window in its
 * own MessageLog, which replays read, and fans out to its own subscribers:
 * a link only appends, gives back what was appended (by anyone) in one
 * order, and says when it lost some.
 */
import type {HistoryLimits} from '../history/message-log.js'
import type {Recovered, StoredMessage} from '../history/store.js'
import type {MessageInput} from './message.js'

/** What a link calls on the bus it serves. */
export interface LinkSink {
  /**
   * Messages the shared log holds, given in its order, each once, ids
   * increasing: the bus keeps them in its log and hands them to its
   * subscribers; then calls `done`, if given, with how many subscribers of
   * this process each one was handed to. The objects become the bus's
   * (it sets their serial): a link hands over fresh ones.
   */
  commit(messages: StoredMessage[], done?: (handed: number[]) => void): void
  /**
   * The shared log lost messages (a Redis restarted without persistence, a
   * failover to a replica that had not got them): after `after`, the last
   * this process had, the next one given will follow a hole. The bus tells
   * its subscribers (a gap event, reason `lost`) and keeps no history from
   * before it, so a client resuming from there hears of the hole too.
   */
  lost(after: string): void
}

/** A published message as its publisher hears of it. */
export interface Appended {
  id: string
  /** When the log took it, unix ms. */
  time: number
  /** How many subscribers it was handed to: on every worker with `--workers`; of this node with `--bus` (documented as such). */
  subscribers: number
}

export interface BusLink {
  /** What readiness and logs call it: `history` (embedded), `cluster`, `redis`. */
  readonly name: string
  /**
   * True for a log others can write to (a Redis or JetStream stream): the
   * bus checks each message it gives as a publish is checked (shared-message.ts).
   * A link whose messages only this server's own processes made leaves it out.
   */
  readonly shared?: boolean
  /**
   * Reads the kept window (the messages within `limits`, oldest first, and
   * the horizon: every message after it is among them), and from then on
   * gives `sink` every message appended after the window, by any process,
   * in order. Rejects with a MsgbusError saying why it cannot.
   */
  open(limits: HistoryLimits, sink: LinkSink): Promise<Recovered>
  /**
   * Appends messages, a form's together with nothing between them. Resolves
   * once the log holds them and they have reached the subscribers it counts
   * (they come to this process's sink as to every other's). Rejects with a
   * MsgbusError: ERR_MSGBUS_HISTORY_FAILED when they reached subscribers but
   * could not be kept, ERR_MSGBUS_LINK_DOWN when they were not published.
   */
  append(inputs: MessageInput[]): Promise<Appended[]>
  /** Messages up to this id are no longer kept by this process's log (its limits): a link that keeps them only for it may let go. */
  forget?(horizon: string): void
  /** Why the link cannot do its work now (readiness, `/readyz`), or undefined when it can. */
  readonly failure: string | undefined
  /** Lets go: writes out what is pending, closes connections. */
  close(): Promise<void>
}
