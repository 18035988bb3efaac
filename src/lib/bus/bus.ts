import {EventEmitter} from 'node:events'
import {MessageIdGenerator} from './message-id.js'
import type {Message, MessageInput, Subscriber} from './message.js'
import {SubscriberRegistry} from './registry.js'

export interface Delivery {
  message: Message
  /** How many subscribers it was handed to. */
  subscribers: number
}

export interface BusCounters {
  published: number
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
 * The bus core, free of HTTP: `accept` is the one place a message is given
 * its id, `fanOut` the one place it reaches subscribers. History, metrics
 * and a broker link for scale-out hook in between the two.
 */
export class Bus extends EventEmitter<BusEvents> {
  private readonly ids = new MessageIdGenerator()
  private readonly registry = new SubscriberRegistry()
  private published = 0
  private delivered = 0

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

  /** Gives the message its id and time. */
  accept(input: MessageInput): Message {
    return {...input, id: this.ids.next(), time: Date.now()}
  }

  /** Hands an accepted message to every subscriber of its channel and of every channel. */
  fanOut(message: Message): number {
    let handed = 0
    const subscribers = this.registry.channel(message.channel)
    if (subscribers) {
      for (const subscriber of subscribers) if (subscriber.deliver(message)) handed++
    }

    for (const subscriber of this.registry.everyChannel) if (subscriber.deliver(message)) handed++
    this.published++
    this.delivered += handed
    return handed
  }

  publish(input: MessageInput): Delivery {
    const message = this.accept(input)
    const delivery = {message, subscribers: this.fanOut(message)}
    this.emit('published', delivery)
    return delivery
  }

  /** Publishes several messages together (a form): all are accepted before any fans out. */
  publishAll(inputs: MessageInput[]): Delivery[] {
    const messages = inputs.map((input) => this.accept(input))
    return messages.map((message) => {
      const delivery = {message, subscribers: this.fanOut(message)}
      this.emit('published', delivery)
      return delivery
    })
  }

  counters(): BusCounters {
    return {
      published: this.published,
      delivered: this.delivered,
      subscribers: this.registry.size,
      channels: this.registry.channelCount + (this.registry.everyChannel.size > 0 ? 1 : 0),
    }
  }
}
