import type {Message} from '../bus/message.js'
import type {HistoryLimits} from './message-log.js'

/**
 * When a store's record counts as written (`--history-sync`): `always`, once
 * fdatasync says it is on disk (one sync for every record of a moment);
 * `interval`, once it is written to the file (the write, not a sync: so a
 * full disk still fails the publish), with a sync every second; `never`,
 * once written, the syncing left to the operating system.
 */
export type HistorySync = 'always' | 'interval' | 'never'

/** A message as a store keeps it: its serial is given anew when it is read back. */
export type StoredMessage = Omit<Message, 'serial'>

/** What a store holds when the server starts. */
export interface Recovered {
  /** The messages the limits keep, oldest first. */
  messages: StoredMessage[]
  /** Every message after this id is among `messages`; older ones are gone (for a new folder: its creation, `<ms>-0`). */
  horizon: string
}

/**
 * Where the history outlives the process (`--history-dir`). The log in
 * memory stays what replays read; a store writes every message down as it
 * is accepted and gives them back at start-up.
 */
export interface HistoryStore {
  /** Reads what the store holds, within the limits. A torn tail is cut back to the last whole record. */
  open(limits: HistoryLimits, now: number): Promise<Recovered>
  /**
   * Writes the message's record. The promise settles once the record is as
   * durable as the sync policy promises (`always`: on disk, after
   * fdatasync); it rejects when the record cannot be written.
   */
  append(message: StoredMessage): Promise<void>
  /** Messages up to this id are no longer kept: what holds only those may go. */
  forget(horizon: string): void
  /**
   * Why the last write (or sync) failed, while none has succeeded since:
   * readiness reports it (`/readyz`). Undefined while the store writes.
   */
  readonly failure?: string
  /** Writes and syncs what is pending, then closes. */
  close(): Promise<void>
}
