/**
 * A cluster worker's link to its primary (`--workers`): the primary orders
 * every worker's messages (sequencer.ts); this link sends it this worker's
 * publishes, and gives the bus what the primary commits, in its order, with
 * this worker's subscriber counts sent back. The history this worker's log
 * starts with is the primary's kept window, so a client resumes on any
 * worker from any id the cluster issued.
 */
import type {Appended, BusLink, LinkSink} from '../bus/link.js'
import type {MessageInput} from '../bus/message.js'
import type {HistoryLimits} from '../history/message-log.js'
import type {Recovered} from '../history/store.js'
import {MsgbusError} from '../util/errors.js'
import {Batcher, type PrimarySays, type WorkerSays} from './ipc.js'

/** The IPC end a worker has: `process` in a cluster worker. */
export interface PrimaryChannel {
  send(batch: WorkerSays[]): void
  on(event: 'message', listener: (batch: PrimarySays[]) => void): void
  readonly connected: boolean
}

interface Waiting {
  resolve: (appended: Appended[]) => void
  reject: (error: Error) => void
}

export class WorkerLink implements BusLink {
  readonly name = 'cluster'
  private readonly out: Batcher<WorkerSays>
  private sink: LinkSink | undefined
  private opened: ((recovered: Recovered) => void) | undefined
  private readonly waiting = new Map<number, Waiting>()
  private seq = 0
  private closed = false
  /**
   * Commits that came right after the window, held until the bus has read
   * the window into its log (its open() goes on a microtask after ours
   * resolves): a commit must not reach the log before the messages older
   * than it.
   */
  private held: Array<Extract<PrimarySays, {t: 'commit'}>> | undefined

  constructor(private readonly primary: PrimaryChannel) {
    this.out = new Batcher({
      send: (batch) => {
        // Gone with the primary: the worker is stopping (worker.ts), publishes fail below.
        if (primary.connected) primary.send(batch)
      },
    })
    primary.on('message', (batch) => {
      if (Array.isArray(batch)) for (const said of batch) this.hear(said)
    })
  }

  /** Reached by the primary's death: every publish still waiting fails, and so do new ones. */
  disconnected(): void {
    this.closed = true
    for (const waiting of this.waiting.values()) waiting.reject(down())
    this.waiting.clear()
  }

  open(_limits: HistoryLimits, sink: LinkSink): Promise<Recovered> {
    // The primary's log has the limits the workers were given: its window is this log's.
    this.sink = sink
    return new Promise((resolve) => {
      this.opened = resolve
      this.out.push({t: 'open'})
    })
  }

  append(inputs: MessageInput[]): Promise<Appended[]> {
    if (this.closed || !this.primary.connected) return Promise.reject(down())
    const seq = ++this.seq
    return new Promise((resolve, reject) => {
      this.waiting.set(seq, {resolve, reject})
      this.out.push({t: 'append', seq, inputs})
    })
  }

  get failure(): string | undefined {
    return this.closed || !this.primary.connected ? 'the cluster primary is gone' : undefined
  }

  async close(): Promise<void> {
    this.out.flush()
    this.sink = undefined
  }

  private hear(said: PrimarySays): void {
    switch (said.t) {
      case 'commit': {
        if (this.held) {
          this.held.push(said)
          return
        }

        const n = said.n
        if (!this.sink) {
          this.out.push({t: 'handed', n, handed: said.messages.map(() => 0)})
          return
        }

        this.sink.commit(said.messages, (handed) => this.out.push({t: 'handed', n, handed}))
        return
      }

      case 'appended':
      case 'refused': {
        const waiting = this.waiting.get(said.seq)
        this.waiting.delete(said.seq)
        if (said.t === 'appended') waiting?.resolve(said.appended)
        else waiting?.reject(new MsgbusError(said.code, said.message))
        return
      }

      case 'opened': {
        this.opened?.({messages: said.messages, horizon: said.horizon})
        this.opened = undefined
        this.held = []
        setImmediate(() => {
          const held = this.held ?? []
          this.held = undefined
          for (const commit of held) this.hear(commit)
        })
      }
    }
  }
}

function down(): MsgbusError {
  return new MsgbusError('ERR_MSGBUS_LINK_DOWN', 'the cluster primary is gone')
}
