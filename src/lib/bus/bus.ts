import {EventEmitter} from 'node:events'
import {MsgbusError, reasonOf} from '../util/errors.js'
import {MessageIdGenerator} from './message-id.js'
import type {Message, MessageInput, Subscriber} from './message.js'
import {SlicedFanOut} from './fan-out.js'
import {SubscriberRegistry} from './registry.js'
import {MessageLog} from '../history/message-log.js'
import type {HistoryStore, Recovered} from '../history/store.js'

export interface Delivery {
  message: Message
  /** How many subscribers it was handed to. */
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
  /** After a message was accepted and fanned out. */
  published: [delivery: Delivery]
  subscribed: [subscriber: Subscriber]
  unsubscribed: [subscriber: Subscriber]
}

/**
 * Deliveries in one go, by default: past it, a fan-out goes on in the next
 * turn of the event loop. Small, because Node (libuv 1.45 and later) accepts
 * at most one connection per turn: while fan-outs run, the number of turns,
 * not the CPU, bounds how fast new subscribers get in. 50 deliveries hold
 * the loop 0.25-1 ms (5-20 µs each, quiet to busy 2-core machine) and a turn
 * costs about 4 µs; with 1,000, a busy server turned ~15 times a second and
 * new connections waited 20-30 s in a full listen queue (bench/accept.ts).
 */
export const FAN_OUT_SLICE = 50

export interface BusOptions {
  /**
   * Most deliveries made in one turn of the event loop. A message for more
   * subscribers than this is handed over in slices, so that one fan-out to
   * tens of thousands never holds up everything else (new connections,
   * other publishes) for its whole length.
   */
  fanOutSlice?: number
  /** The history every accepted message goes to; default one that keeps none. */
  log?: MessageLog
}

/** The id a new history begins after: its start time, so that no id issued before it (by an earlier run) is taken for one of its own. */
export function startHorizon(now: number = Date.now()): string {
  return `${now}-0`
}

/**
 * The bus core, free of HTTP: `accept` is the one place a message is given
 * its id, `fanOut` the one place it reaches subscribers. History, metrics
 * and a broker link for scale-out hook in between the two.
 */
export class Bus extends EventEmitter<BusEvents> {
  private ids: MessageIdGenerator
  readonly log: MessageLog
  private store: HistoryStore | undefined
  private readonly registry = new SubscriberRegistry()
  private readonly fanOutSlice: number
  /** Fan-outs too large for one slice, oldest first; while any is left, later messages wait, so every subscriber gets messages in order. */
  private readonly sliced: SlicedFanOut[] = []
  private published = 0
  private publishedBytes = 0
  private delivered = 0

  constructor(options: BusOptions = {}) {
    super()
    this.fanOutSlice = Math.max(1, options.fanOutSlice ?? FAN_OUT_SLICE)
    this.log = options.log ?? new MessageLog({count: 0, bytes: 0, ageMs: 0}, startHorizon())
    this.ids = new MessageIdGenerator(Date.now, this.log.newest)
  }

  /**
   * Takes what a store recovered into the log and keeps writing to the
   * store from now on; ids go on after the newest recovered. Only before
   * the first publish.
   */
  attachStore(store: HistoryStore, recovered: Recovered): void {
    this.log.restore(recovered.messages, recovered.horizon)
    this.ids = new MessageIdGenerator(Date.now, this.log.newest)
    this.store = store
    this.log.onForget = (horizon) => store.forget(horizon)
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

  /** Gives the message its id, time and serial and appends it to the log, before any subscriber has it. */
  private accept(input: MessageInput): Message {
    const message: Message = {...input, id: this.ids.next(), time: Date.now(), serial: this.log.end}
    this.log.append(message)
    return message
  }

  /**
   * Hands an accepted message to every subscriber of its channel and of
   * every channel, then calls `done` with how many took it. A fan-out that
   * fits in a slice, with none waiting before it, is made at once and calls
   * `done` before returning; a larger one goes on over the next turns of
   * the event loop.
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
    let budget = this.fanOutSlice
    while (this.sliced.length > 0) {
      const job = this.sliced[0]
      budget = job.step(budget)
      if (!job.finished) {
        setImmediate(this.continueFanOut)
        return
      }

      this.sliced.shift()
      this.finish(job.message, job.handed, job.done)
    }
  }

  private finish(message: Message, handed: number, done: (handed: number) => void): void {
    this.published++
    this.publishedBytes += message.body.length
    this.delivered += handed
    const delivery = {message, subscribers: handed}
    this.emit('published', delivery)
    done(handed)
  }

  /**
   * Accepts a message and fans it out; resolves once every subscriber has
   * it and, with a store, once it is durable. Rejects (ERR_MSGBUS_HISTORY_FAILED)
   * when the store cannot write it: subscribers have it all the same.
   */
  publish(input: MessageInput): Promise<Delivery> {
    const message = this.accept(input)
    const written = this.store?.append(message)
    const delivered = new Promise<Delivery>((resolve) => this.fanOut(message, (subscribers) => resolve({message, subscribers})))
    return written ? this.whenWritten(delivered, [written], (delivery) => delivery.subscribers) : delivered
  }

  /** Publishes several messages together (a form): all are accepted before any fans out, and they fan out in order. */
  publishAll(inputs: MessageInput[]): Promise<Delivery[]> {
    const messages = inputs.map((input) => this.accept(input))
    const store = this.store
    const written = store ? messages.map((message) => store.append(message)) : undefined
    const delivered = new Promise<Delivery[]>((resolve) => {
      const deliveries: Delivery[] = []
      for (const message of messages) {
        this.fanOut(message, (subscribers) => {
          deliveries.push({message, subscribers})
          if (deliveries.length === messages.length) resolve(deliveries)
        })
      }
    })
    return written ? this.whenWritten(delivered, written, (deliveries) => deliveries.reduce((sum, d) => sum + d.subscribers, 0)) : delivered
  }

  /** What was delivered, once the store has written it too; a write that failed fails the publish, saying who has the message. */
  private async whenWritten<T>(delivered: Promise<T>, written: Array<Promise<void>>, handed: (result: T) => number): Promise<T> {
    const [result, outcomes] = await Promise.all([delivered, Promise.allSettled(written)])
    const failed = outcomes.find((outcome) => outcome.status === 'rejected')
    if (failed) {
      // A store's own error says which folder and why; reasonOf() would give only its code.
      const why = failed.reason instanceof MsgbusError ? failed.reason.message : reasonOf(failed.reason)
      throw new MsgbusError('ERR_MSGBUS_HISTORY_FAILED', `delivered to ${handed(result)} subscribers, but not written to the history: ${why}`, {
        cause: failed.reason,
      })
    }

    return result
  }

  /** Why the history store's last write failed, while none has succeeded since; undefined when it writes, or when there is none. */
  get storeFailure(): string | undefined {
    return this.store?.failure
  }

  /** Writes out what the store still holds and closes it. */
  async closeStore(): Promise<void> {
    const store = this.store
    this.store = undefined
    this.log.onForget = undefined
    await store?.close()
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
