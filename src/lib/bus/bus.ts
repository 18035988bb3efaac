import {EventEmitter} from 'node:events'
import {acceptedMessage, loggedMessage, type Message, type MessageInput, type Subscriber} from './message.js'
import {SlicedFanOut} from './fan-out.js'
import {SubscriberRegistry} from './registry.js'
import {MessageLog} from '../history/message-log.js'
import type {StoredMessage} from '../history/store.js'
import type {Gap} from '../protocol/gap.js'
import {EmbeddedLink, startHorizon} from './embedded-link.js'
import type {Appended, BusLink, LinkSink} from './link.js'
import {refusalOf} from './shared-message.js'

export {startHorizon}

export interface Delivery {
  message: StoredMessage
  /** How many subscribers it was handed to (with `--workers`, on every worker; with `--bus`, on this node). */
  subscribers: number
}

export interface BusCounters {
  published: number
  /** Bytes of the bodies of the messages published. */
  publishedBytes: number
  delivered: number
  subscribers: number
  channels: number
}

export interface BusEvents {
  /** After a message was taken from the log and fanned out to this process's subscribers. */
  published: [delivery: Delivery]
  subscribed: [subscriber: Subscriber]
  unsubscribed: [subscriber: Subscriber]
  /** A message of a shared log was passed over, and why (shared-message.ts). */
  refused: [reason: string]
}

/**
 * Deliveries between two looks at the clock, by default; a fan-out goes on
 * in the next turn of the event loop once FAN_OUT_TURN_MS have gone, so that
 * other connections get their turns (Node, with libuv 1.45 and later,
 * accepts at most one connection per turn: while fan-outs run, the number of
 * turns bounds how fast new subscribers get in). A delivery to an HTTP
 * subscriber only queues the frame for its socket (SocketWriter makes the
 * system calls later, sliced too), well under a microsecond, so thousands
 * fit in a turn; a subscriber that writes as it is handed a message (5-20
 * µs a socket write, quiet to busy 2-core machine) gets 50 a turn, as
 * before: with 1,000, a busy server turned ~15 times a second and new
 * connections waited 20-30 s in a full listen queue (bench/accept.ts).
 */
export const FAN_OUT_SLICE = 50

/** Milliseconds a fan-out may hold the event loop before the next turn (checked every FAN_OUT_SLICE deliveries). */
export const FAN_OUT_TURN_MS = 0.5

export interface BusOptions {
  /**
   * Deliveries between two looks at the clock (FAN_OUT_SLICE). A fan-out
   * that has held the event loop `fanOutTurnMs` goes on in the next turn, so
   * that one fan-out to tens of thousands never holds up everything else
   * (new connections, other publishes) for its whole length.
   */
  fanOutSlice?: number
  /** FAN_OUT_TURN_MS by default; 0: a turn for every slice (tests of the slicing). */
  fanOutTurnMs?: number
  /** The history every message is kept in, in this process; default one that keeps none. */
  log?: MessageLog
}

/**
 * The bus core, free of HTTP. Its link (link.ts) orders messages and gives
 * them ids: by default this process alone (EmbeddedLink); `open()` takes
 * another. What the link gives back, from this process's publishers and
 * every other's, `commit` keeps in the log and hands to subscribers: the one
 * place a message reaches them.
 */
export class Bus extends EventEmitter<BusEvents> {
  readonly log: MessageLog
  private link: BusLink
  /** The link is one others write to: what it gives is checked before it is kept (shared-message.ts). */
  private checked = false
  private readonly registry = new SubscriberRegistry()
  private readonly fanOutSlice: number
  private readonly fanOutTurnMs: number
  /** Fan-outs too large for one slice, oldest first; while any is left, later messages wait, so every subscriber gets messages in order. */
  private readonly sliced: SlicedFanOut[] = []
  /** What waits for the sliced fan-outs to finish (a loss told by the link, after the messages before it). */
  private afterSliced: Array<() => void> = []
  private published = 0
  private publishedBytes = 0
  private delivered = 0
  private readonly sink: LinkSink = {
    commit: (messages, done) => this.commit(messages, done),
    lost: (after) => this.whenFannedOut(() => this.lost(after)),
  }

  constructor(options: BusOptions = {}) {
    super()
    this.fanOutSlice = Math.max(1, options.fanOutSlice ?? FAN_OUT_SLICE)
    this.fanOutTurnMs = options.fanOutTurnMs ?? FAN_OUT_TURN_MS
    this.log = options.log ?? new MessageLog({count: 0, bytes: 0, ageMs: 0}, startHorizon())
    const link = new EmbeddedLink(undefined, this.log.horizon)
    link.openNow(this.sink)
    this.link = link
  }

  /**
   * Orders messages through `link` from now on: what it keeps (within the
   * log's limits) is read into the log, and ids go on after the newest.
   * Only before the first publish. Rejects with the link's reason.
   */
  async open(link: BusLink): Promise<void> {
    if (this.log.end !== 0) throw new Error('open() is only for a bus that has had no message')
    const recovered = await link.open(this.log.limits, this.sink)
    this.link = link
    this.checked = link.shared === true
    let newest = recovered.horizon
    const messages = recovered.messages.filter((message) => {
      if (!this.admits(message, newest)) return false
      newest = message.id
      return true
    })
    this.log.restore(messages, recovered.horizon)
    // A replica's log may lag the others': an id newer than its newest may be one it has yet to receive.
    this.log.replica = !(link instanceof EmbeddedLink)
    this.log.onForget = link.forget && ((horizon) => link.forget?.(horizon))
  }

  /** The link's name (`history`, `cluster`, `redis`) and why it cannot work now, if it cannot: for readiness. */
  get linkName(): string {
    return this.link.name
  }

  get linkFailure(): string | undefined {
    return this.link.failure
  }

  subscribe(subscriber: Subscriber): void {
    this.registry.add(subscriber)
    this.emit('subscribed', subscriber)
  }

  unsubscribe(subscriber: Subscriber): void {
    if (this.registry.delete(subscriber)) this.emit('unsubscribed', subscriber)
  }

  get subscriberCount(): number {
    return this.registry.size
  }

  /** Channels that have subscribers, every-channel subscriptions not counted. */
  get channelCount(): number {
    return this.registry.channelCount
  }

  hasSubscribers(channel: string): boolean {
    return this.registry.channel(channel) !== undefined
  }

  subscribers(): Iterable<Subscriber> {
    return this.registry.all()
  }

  /**
   * Keeps messages the link gives (in its order) in the log, each with the
   * next serial, and fans them out in that order; `done` gets how many
   * subscribers each was handed to once all of them are.
   */
  private commit(stored: StoredMessage[], done?: (handed: number[]) => void): void {
    const handed = new Array<number>(stored.length)
    let left = stored.length
    for (let i = 0; i < stored.length; i++) {
      const one = stored[i] as StoredMessage
      if (this.checked && !this.admits(one, this.log.newest)) {
        handed[i] = 0
        if (--left === 0) done?.(handed)
        continue
      }

      const message = loggedMessage(one, this.log.end)
      this.log.append(message)
      this.fanOut(message, (count) => {
        handed[i] = count
        if (--left === 0) done?.(handed)
      })
    }

    if (stored.length === 0) done?.(handed)
  }

  /** False for a shared log's message that must not reach subscribers (said by a `refused` event). */
  private admits(message: StoredMessage, newest: string): boolean {
    if (!this.checked) return true
    const reason = refusalOf(message, newest)
    if (reason !== undefined) this.emit('refused', reason)
    return reason === undefined
  }

  /**
   * Hands a message kept in the log to every subscriber of its channel and
   * of every channel, then calls `done` with how many took it. A fan-out
   * that fits in a slice, with none waiting before it, is made at once and
   * calls `done` before returning; a larger one goes on over the next turns
   * of the event loop.
   */
  fanOut(message: Message, done: (handed: number) => void): void {
    const channel = this.registry.channel(message.channel)
    const every = this.registry.everyChannel
    const total = (channel?.size ?? 0) + every.size
    if (this.sliced.length === 0 && total <= this.fanOutSlice) {
      let handed = 0
      if (channel) for (const subscriber of channel) if (subscriber.deliver(message)) handed++
      for (const subscriber of every) if (subscriber.deliver(message)) handed++
      this.finish(message, handed, done)
      return
    }

    this.sliced.push(new SlicedFanOut(message, [...(channel ?? []), ...every], done))
    if (this.sliced.length === 1) this.continueFanOut()
  }

  private readonly continueFanOut = (): void => {
    const deadline = performance.now() + this.fanOutTurnMs
    let budget = this.fanOutSlice
    while (this.sliced.length > 0) {
      const job = this.sliced[0]
      budget = job.step(budget)
      if (budget === 0) {
        if (performance.now() >= deadline) {
          setImmediate(this.continueFanOut)
          return
        }

        budget = this.fanOutSlice
      }

      if (!job.finished) continue

      this.sliced.shift()
      this.finish(job.message, job.handed, job.done)
    }

    const after = this.afterSliced
    this.afterSliced = []
    for (const run of after) run()
  }

  private whenFannedOut(run: () => void): void {
    if (this.sliced.length === 0) run()
    else this.afterSliced.push(run)
  }

  private finish(message: Message, handed: number, done: (handed: number) => void): void {
    this.published++
    this.publishedBytes += message.body.length
    this.delivered += handed
    // The event's object is made only for a listener: the server has none, and it cost every publish one.
    if (this.listenerCount('published') > 0) this.emit('published', {message, subscribers: handed})
    done(handed)
  }

  /**
   * The link lost messages after `after`: every subscriber hears of the hole
   * (a gap event, where its format has one), and the log lets go of all it
   * kept, so that a client resuming from before the hole hears of it too.
   */
  private lost(after: string): void {
    this.log.forgetAll()
    const gap: Omit<Gap, 'after'> = {reason: 'lost', from: after}
    for (const subscriber of this.registry.all()) subscriber.lost?.(gap)
  }

  /**
   * Publishes one message through the link; resolves once every subscriber
   * (that the link counts) has it and, with a history store, once it is
   * durable. Rejects with the link's MsgbusError: ERR_MSGBUS_HISTORY_FAILED
   * when the store could not write it (subscribers have it all the same),
   * ERR_MSGBUS_LINK_DOWN when it was not published.
   */
  publish(input: MessageInput): Promise<Delivery> {
    // Not async, nor through publishAll: each layer of promises cost every publish its own turn of the microtask queue.
    return this.appending([input]).then((appended) => deliveryOf(input, appended[0] as Appended))
  }

  /** Publishes several messages together (a form): nothing comes between them in the log, and they fan out in order. */
  publishAll(inputs: MessageInput[]): Promise<Delivery[]> {
    return this.appending(inputs).then((appended) => appended.map((one, i) => deliveryOf(inputs[i] as MessageInput, one)))
  }

  /** The link's append, a throw included as a rejection (as an async function would have it). */
  private appending(inputs: MessageInput[]): Promise<Appended[]> {
    try {
      return this.link.append(inputs)
    } catch (error) {
      return Promise.reject(error)
    }
  }

  /** Lets go of the link: a store writes out what it holds and closes; a connection closes. */
  async close(): Promise<void> {
    this.log.onForget = undefined
    await this.link.close()
  }

  counters(): BusCounters {
    return {
      published: this.published,
      publishedBytes: this.publishedBytes,
      delivered: this.delivered,
      subscribers: this.registry.size,
      channels: this.registry.channelCount + (this.registry.everyChannel.size > 0 ? 1 : 0),
    }
  }
}

function deliveryOf(input: MessageInput, {id, time, subscribers}: Appended): Delivery {
  return {message: acceptedMessage(input, id, time), subscribers}
}
