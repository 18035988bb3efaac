/**
 * The primary's half of the cluster's one order: every worker's publishes
 * are appended through one EmbeddedLink (ids from the primary's clock, the
 * history in `--history-dir` if given), kept in the primary's MessageLog
 * (the window a worker started later reads), and handed to every worker in
 * that order. A publish is answered once every worker has counted the
 * subscribers it reached: `Msgbus-Subscribers` is the sum over workers.
 */
import {EmbeddedLink} from '../bus/embedded-link.js'
import {loggedMessage, type Message, type MessageInput} from '../bus/message.js'
import type {LinkSink} from '../bus/link.js'
import {MessageLog} from '../history/message-log.js'
import type {HistoryStore, StoredMessage} from '../history/store.js'
import {MsgbusError} from '../util/errors.js'
import {Batcher, type Channel, type PrimarySays, type WorkerSays} from './ipc.js'

/** A commit some workers have yet to count. */
interface Pending {
  waiting: Set<number>
  handed: number[]
  done: ((handed: number[]) => void) | undefined
}

interface Member {
  out: Batcher<PrimarySays>
  /** Has asked for the window, so gets every commit after it. */
  open: boolean
}

export class Sequencer {
  readonly log: MessageLog
  private readonly link: EmbeddedLink
  private readonly members = new Map<number, Member>()
  private readonly pending = new Map<number, Pending>()
  private commits = 0
  /** Messages and body bytes committed: each worker counts every message too, so the cluster's figures are these, not the workers' sum. */
  published = 0
  publishedBytes = 0
  private readonly sink: LinkSink = {
    commit: (messages, done) => this.commit(messages, done),
    // The embedded link never loses messages.
    lost: () => {},
  }

  constructor(log: MessageLog, store?: HistoryStore) {
    this.log = log
    this.link = new EmbeddedLink(store, log.horizon)
  }

  /** Reads the store (if any) into the log; ids go on after its newest. */
  async open(): Promise<void> {
    const recovered = await this.link.open(this.log.limits, this.sink)
    this.log.restore(recovered.messages, recovered.horizon)
    this.log.onForget = (horizon) => this.link.forget(horizon)
  }

  /** Why the history cannot be written, if it cannot (readiness). */
  get failure(): string | undefined {
    return this.link.failure
  }

  /** A worker forked: what it says goes to `hear`; it says nothing it needs an answer to before. */
  join(id: number, channel: Channel<PrimarySays>): void {
    this.members.set(id, {out: new Batcher(channel), open: false})
  }

  /** A worker gone: its counts still to come are dropped, so no publish waits for them. */
  leave(id: number): void {
    this.members.delete(id)
    for (const [n, pending] of this.pending) if (pending.waiting.delete(id)) this.settle(n, pending)
  }

  hear(id: number, batch: WorkerSays[]): void {
    const member = this.members.get(id)
    if (!member) return
    for (const said of batch) {
      if (said.t === 'append') this.append(member, said.seq, said.inputs)
      else if (said.t === 'handed') this.handed(id, said.n, said.handed)
      else if (said.t === 'open') this.openFor(member)
    }
  }

  private openFor(member: Member): void {
    const {log} = this
    const messages: StoredMessage[] = []
    for (let serial = log.first; serial < log.end; serial++) messages.push(withoutSerial(log.at(serial)))
    // Queued before any commit that follows: the window, then everything after it, in order.
    member.out.push({t: 'opened', messages, horizon: log.horizon})
    member.open = true
  }

  private append(member: Member, seq: number, inputs: MessageInput[]): void {
    this.link.append(inputs).then(
      (appended) => member.out.push({t: 'appended', seq, appended}),
      (error: unknown) => {
        const failure = error instanceof MsgbusError ? error : new MsgbusError('ERR_MSGBUS_LINK_DOWN', String(error))
        member.out.push({t: 'refused', seq, code: failure.code, message: failure.message})
      },
    )
  }

  /** The link's commit: kept here, then handed to every open worker, whose counts add up to `done`'s. */
  private commit(messages: StoredMessage[], done?: (handed: number[]) => void): void {
    for (const message of messages) {
      this.log.append(loggedMessage(message, this.log.end))
      this.published++
      this.publishedBytes += message.body.length
    }

    const n = ++this.commits
    const pending: Pending = {waiting: new Set(), handed: messages.map(() => 0), done}
    for (const [id, member] of this.members) {
      if (!member.open) continue
      pending.waiting.add(id)
      member.out.push({t: 'commit', n, messages})
    }

    this.pending.set(n, pending)
    this.settle(n, pending)
  }

  private handed(id: number, n: number, handed: number[]): void {
    const pending = this.pending.get(n)
    if (!pending?.waiting.delete(id)) return
    for (let i = 0; i < handed.length; i++) pending.handed[i] += handed[i]
    this.settle(n, pending)
  }

  private settle(n: number, pending: Pending): void {
    if (pending.waiting.size > 0) return
    this.pending.delete(n)
    pending.done?.(pending.handed)
  }

  /** Workers that have their window and get every commit. */
  get openCount(): number {
    let open = 0
    for (const member of this.members.values()) if (member.open) open++
    return open
  }

  async close(): Promise<void> {
    this.log.onForget = undefined
    await this.link.close()
  }
}

/** The message as a worker gets it: its serial is the worker's log's to give. */
function withoutSerial(message: Message): StoredMessage {
  const {serial: _serial, ...stored} = message
  return stored
}
