import type {Subscriber} from './message.js'

/**
 * Channel name to subscribers: add, remove and lookup in O(1). Subscribers
 * to '' (every channel) are kept apart so a publish visits them without a
 * second lookup.
 */
export class SubscriberRegistry {
  private readonly byChannel = new Map<string, Set<Subscriber>>()
  readonly everyChannel = new Set<Subscriber>()
  private count = 0

  get size(): number {
    return this.count
  }

  get channelCount(): number {
    return this.byChannel.size
  }

  add(subscriber: Subscriber): void {
    let set: Set<Subscriber> | undefined
    if (subscriber.channel === '') {
      set = this.everyChannel
    } else {
      set = this.byChannel.get(subscriber.channel)
      if (!set) this.byChannel.set(subscriber.channel, (set = new Set()))
    }

    if (!set.has(subscriber)) {
      set.add(subscriber)
      this.count++
    }
  }

  delete(subscriber: Subscriber): boolean {
    const set = subscriber.channel === '' ? this.everyChannel : this.byChannel.get(subscriber.channel)
    if (!set?.delete(subscriber)) return false
    this.count--
    if (set.size === 0 && set !== this.everyChannel) this.byChannel.delete(subscriber.channel)
    return true
  }

  channel(channel: string): Set<Subscriber> | undefined {
    return this.byChannel.get(channel)
  }

  *all(): Iterable<Subscriber> {
    yield* this.everyChannel
    for (const set of this.byChannel.values()) yield* set
  }
}
