import {MsgbusError, reasonOf} from '../util/errors.js'
import type {HistoryLimits} from '../history/message-log.js'
import type {HistoryStore, Recovered, StoredMessage} from '../history/store.js'
import {MessageIdGenerator} from './message-id.js'
import {acceptedMessage, type MessageInput} from './message.js'
import type {Appended, BusLink, LinkSink} from './link.js'

/** The id a new history begins after: its start time, so that no id issued before it (by an earlier run) is taken for one of its own. */
export function startHorizon(now: number = Date.now()): string {
  return `${now}-0`
}

/**
 * A process that orders its own messages: ids from its clock, the history
 * in its memory only or, with a store (`--history-dir`), on disk too. The
 * one link that needs no other process; a cluster's primary orders its
 * workers' messages through one.
 */
export class EmbeddedLink implements BusLink {
  readonly name = 'history'
  private ids = new MessageIdGenerator(Date.now, undefined)
  private sink: LinkSink | undefined

  constructor(
    /** Where the history outlives the process, if anywhere. */
    private readonly store?: HistoryStore,
    /** The horizon of a history that begins now, with no store. */
    private readonly horizon: string = startHorizon(),
  ) {}

  /** With no store, nothing to read: usable at once, without waiting (`new Bus()`). */
  openNow(sink: LinkSink): Recovered {
    if (this.store) throw new Error('a store is opened with open()')
    this.sink = sink
    this.ids = new MessageIdGenerator(Date.now, this.horizon)
    return {messages: [], horizon: this.horizon}
  }

  async open(limits: HistoryLimits, sink: LinkSink): Promise<Recovered> {
    if (!this.store) return this.openNow(sink)
    const recovered = await this.store.open(limits, Date.now())
    const newest = recovered.messages.at(-1)?.id ?? recovered.horizon
    this.ids = new MessageIdGenerator(Date.now, newest)
    this.sink = sink
    return recovered
  }

  /** Messages up to this id are no longer kept (the log let go of them): the store may delete what holds only those. */
  forget(horizon: string): void {
    this.store?.forget(horizon)
  }

  /**
   * Gives the messages their ids and hands them to the bus at once, in this
   * turn; resolves once every subscriber has them and, with a store, once
   * they are as durable as `--history-sync` says. A write that fails fails
   * the publish, saying who has the message.
   */
  append(inputs: MessageInput[]): Promise<Appended[]> {
    const sink = this.sink
    if (!sink) return Promise.reject(new MsgbusError('ERR_MSGBUS_SERVER_STATE', 'the bus is not open'))
    const time = Date.now()
    const messages: StoredMessage[] = inputs.map((input) => acceptedMessage(input, this.ids.next(), time))
    const store = this.store
    const written = store ? messages.map((message) => store.append(message)) : undefined
    const delivered = new Promise<Appended[]>((resolve) =>
      sink.commit(messages, (handed) => resolve(messages.map((message, i) => ({id: message.id, time, subscribers: handed[i]})))),
    )
    return written ? whenWritten(delivered, written) : delivered
  }

  get failure(): string | undefined {
    return this.store?.failure
  }

  async close(): Promise<void> {
    this.sink = undefined
    await this.store?.close()
  }
}

/** What was delivered, once the store has written it too; a write that failed fails the publish, saying who has the message. */
async function whenWritten(delivered: Promise<Appended[]>, written: Array<Promise<void>>): Promise<Appended[]> {
  const [appended, outcomes] = await Promise.all([delivered, Promise.allSettled(written)])
  const failed = outcomes.find((outcome) => outcome.status === 'rejected')
  if (failed) {
    const handed = appended.reduce((sum, message) => sum + message.subscribers, 0)
    // A store's own error says which folder and why; reasonOf() would give only its code.
    const why = failed.reason instanceof MsgbusError ? failed.reason.message : reasonOf(failed.reason)
    throw new MsgbusError('ERR_MSGBUS_HISTORY_FAILED', `delivered to ${handed} subscribers, but not written to the history: ${why}`, {cause: failed.reason})
  }

  return appended
}
