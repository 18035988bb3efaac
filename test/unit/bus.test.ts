// The bus core alone, without HTTP: who gets a message, in what order, and
// how a fan-out larger than a slice goes on over several turns.
import assert from 'node:assert/strict'
import {Bus, compareMessageIds, type Message, type Subscriber} from '../../src/lib/index.js'
import {FAN_OUT_TURN_MS} from '../../src/lib/bus/bus.js'

/** A subscriber that keeps what it is handed; `refuse` makes it decline (a filter, a slow subscriber dropping). */
class Collector implements Subscriber {
  readonly got: Message[] = []
  constructor(
    readonly channel: string,
    private readonly refuse: (message: Message) => boolean = () => false,
    /** Milliseconds each delivery takes (a subscriber that writes to its socket as it is handed a message). */
    private readonly costMs = 0,
  ) {}

  deliver(message: Message): boolean {
    if (this.refuse(message)) return false
    const until = performance.now() + this.costMs
    while (performance.now() < until);
    this.got.push(message)
    return true
  }

  bodies(): string[] {
    return this.got.map((message) => message.body.toString())
  }
}

const input = (channel: string, body: string) => ({channel, type: 'text/plain', essence: 'text/plain', body: Buffer.from(body)})

describe('unit: the bus', () => {
  it('hands a message to its channel and to every-channel subscribers, and counts only those that took it', async () => {
    const bus = new Bus()
    const foo = new Collector('foo')
    const all = new Collector('')
    const other = new Collector('bar')
    const declining = new Collector('foo', () => true)
    for (const subscriber of [foo, all, other, declining]) bus.subscribe(subscriber)
    const delivery = await bus.publish(input('foo', 'hi'))
    assert.equal(delivery.subscribers, 2)
    assert.deepEqual([foo.bodies(), all.bodies(), other.bodies(), declining.bodies()], [['hi'], ['hi'], [], []])
    // The every-channel subscriptions count as one more channel in the counters (the stats line), not in channelCount (--max-channels).
    assert.deepEqual(bus.counters(), {published: 1, publishedBytes: 2, delivered: 2, subscribers: 4, channels: 3})
    assert.equal(bus.channelCount, 2)
    bus.unsubscribe(foo)
    assert.equal((await bus.publish(input('foo', 'again'))).subscribers, 1)
    assert.deepEqual(foo.bodies(), ['hi'])
    assert.equal(bus.hasSubscribers('bar'), true)
    bus.unsubscribe(other)
    assert.equal(bus.hasSubscribers('bar'), false)
  })

  it('gives increasing ids; a form (publishAll) is accepted whole before any of it fans out, in order', async () => {
    const bus = new Bus()
    const seen: string[] = []
    // When the first part reaches a subscriber, every part already has its id.
    const watcher = new Collector('f')
    bus.subscribe(watcher)
    const deliveries = await bus.publishAll([input('f', 'a'), input('f', 'b'), input('f', 'c')])
    for (const {message} of deliveries) seen.push(message.id)
    assert.deepEqual(watcher.bodies(), ['a', 'b', 'c'])
    assert.ok(compareMessageIds(seen[0], seen[1]) < 0 && compareMessageIds(seen[1], seen[2]) < 0, seen.join(' '))
    assert.deepEqual(
      watcher.got.map((message) => message.id),
      seen,
    )
  })

  it('a fan-out of quick deliveries larger than a slice is made in the turn it began (its publisher is answered without waiting a turn)', async () => {
    // The slice is a look at the clock, not a turn: with a turn long enough for every delivery (a busy machine may pause anywhere), one turn.
    const bus = new Bus({fanOutSlice: 3, fanOutTurnMs: 10_000})
    const subscribers = Array.from({length: 10}, () => new Collector('big'))
    for (const subscriber of subscribers) bus.subscribe(subscriber)
    const delivery = bus.publish(input('big', 'one'))
    await Promise.resolve()
    assert.equal(subscribers.filter((s) => s.got.length === 1).length, 10)
    assert.equal((await delivery).subscribers, 10)
  })

  it('a fan-out that holds the event loop past its turn goes on in later turns, and what is published meanwhile waits its turn', async () => {
    // 3 deliveries take 0.6 ms, past FAN_OUT_TURN_MS: the fan-out yields after each slice of 3.
    const bus = new Bus({fanOutSlice: 3})
    assert.ok(3 * 0.2 > FAN_OUT_TURN_MS)
    const subscribers = Array.from({length: 10}, () => new Collector('big', undefined, 0.2))
    for (const subscriber of subscribers) bus.subscribe(subscriber)
    let done = false
    const first = bus.publish(input('big', 'one')).then((delivery) => {
      done = true
      return delivery
    })
    // One slice now, the rest later: the publish has not finished in this turn.
    assert.equal(subscribers.filter((s) => s.got.length === 1).length, 3)
    assert.equal(done, false)
    // A small fan-out to another channel, published while the large one is under way, waits for it.
    const small = new Collector('small')
    bus.subscribe(small)
    const second = bus.publish(input('small', 'two'))
    const third = bus.publish(input('big', 'three'))
    assert.equal(small.got.length, 0, 'the small one waits behind the sliced one')
    assert.equal((await first).subscribers, 10)
    assert.equal((await second).subscribers, 1)
    assert.equal((await third).subscribers, 10)
    for (const subscriber of subscribers) assert.deepEqual(subscriber.bodies(), ['one', 'three'])
  })
})
