// The cluster's parts in one process, without node:cluster: the primary's
// sequencer and two buses on worker links, joined by in-memory channels that
// deliver a batch on a later turn, as IPC does. One order, one id sequence,
// Msgbus-Subscribers summed, a dead worker's counts dropped, a worker that
// joins later starting from the kept window; and the limits' split.
import assert from 'node:assert/strict'
import {EventEmitter} from 'node:events'
import {deserialize, serialize} from 'node:v8'
import {Bus, type Message, type Subscriber} from '../../src/lib/index.js'
import {MessageLog} from '../../src/lib/history/message-log.js'
import {Sequencer} from '../../src/lib/cluster/sequencer.js'
import {WorkerLink, type PrimaryChannel} from '../../src/lib/cluster/worker-link.js'
import type {PrimarySays, WorkerSays} from '../../src/lib/cluster/ipc.js'
import {workerShare} from '../../src/lib/cluster/limits.js'
import {sumCounters} from '../../src/lib/cluster/counters-sum.js'
import {workerCount} from '../../src/lib/cluster/workers-option.js'

const input = (channel: string, body: string) => ({channel, type: 'text/plain', essence: 'text/plain', body: Buffer.from(body)})

class Collector implements Subscriber {
  readonly got: Message[] = []
  constructor(readonly channel: string) {}
  deliver(message: Message): boolean {
    this.got.push(message)
    return true
  }
}

/** A worker's end of the IPC channel: batches cross on a later turn, through v8's serializer (Buffers stay Buffers), as with `serialization: 'advanced'`. */
class FakeChannel extends EventEmitter implements PrimaryChannel {
  connected = true
  constructor(
    private readonly sequencer: Sequencer,
    readonly id: number,
  ) {
    super()
    sequencer.join(id, {send: (batch: PrimarySays[]) => setImmediate(() => this.connected && this.emit('message', clone(batch)))})
  }

  send(batch: WorkerSays[]): void {
    setImmediate(() => this.connected && this.sequencer.hear(this.id, clone(batch)))
  }

  die(): void {
    this.connected = false
    this.sequencer.leave(this.id)
  }
}

const clone = <T>(value: T): T => deserialize(serialize(value)) as T

async function worker(sequencer: Sequencer, id: number, limits = {count: 100, bytes: 0, ageMs: 0}): Promise<{bus: Bus; channel: FakeChannel}> {
  const channel = new FakeChannel(sequencer, id)
  const bus = new Bus({log: new MessageLog(limits, '0-0')})
  await bus.open(new WorkerLink(channel))
  return {bus, channel}
}

describe('unit: the cluster (sequencer and worker links)', () => {
  it('gives every worker every message in one order with one id sequence, and sums the subscribers', async () => {
    const sequencer = new Sequencer(new MessageLog({count: 100, bytes: 0, ageMs: 0}, '0-0'))
    await sequencer.open()
    const one = await worker(sequencer, 1)
    const two = await worker(sequencer, 2)
    const subscribers = [new Collector('a'), new Collector(''), new Collector('a')]
    one.bus.subscribe(subscribers[0])
    two.bus.subscribe(subscribers[1])
    two.bus.subscribe(subscribers[2])
    const published = await Promise.all([
      one.bus.publish(input('a', '1')),
      two.bus.publish(input('a', '2')),
      one.bus.publishAll([input('a', '3'), input('b', '4')]),
    ])
    assert.equal(published[0].subscribers, 3)
    assert.equal(published[1].subscribers, 3)
    assert.deepEqual(
      published[2].map((delivery) => delivery.subscribers),
      [3, 1],
    )
    const ids = subscribers[1].got.map((message) => message.id)
    assert.equal(ids.length, 4)
    assert.deepEqual([...ids].sort(), ids)
    assert.deepEqual(
      subscribers[0].got.map((message) => message.id),
      ids.filter((_, i) => subscribers[1].got[i].channel === 'a'),
    )
    assert.deepEqual(sequencer.log.size, 4)
  })

  it('answers a publish without the counts of a worker that died, and starts a later worker from the kept window', async () => {
    const sequencer = new Sequencer(new MessageLog({count: 3, bytes: 0, ageMs: 0}, '0-0'))
    await sequencer.open()
    const one = await worker(sequencer, 1)
    const two = await worker(sequencer, 2)
    one.bus.subscribe(new Collector('a'))
    two.bus.subscribe(new Collector('a'))
    for (let n = 0; n < 4; n++) await one.bus.publish(input('a', String(n)))
    // Dies with a publish in flight: the answer comes without its counts, not never.
    const pending = one.bus.publish(input('a', 'x'))
    two.channel.die()
    assert.equal((await pending).subscribers, 1)
    const three = await worker(sequencer, 3)
    assert.deepEqual(
      [...Array(three.bus.log.size).keys()].map((i) => three.bus.log.at(three.bus.log.first + i).body.toString()),
      ['2', '3', 'x'],
    )
    assert.equal(three.bus.log.horizon, sequencer.log.horizon)
    const late = new Collector('a')
    three.bus.subscribe(late)
    assert.equal((await three.bus.publish(input('a', 'y'))).subscribers, 2)
    assert.deepEqual(
      late.got.map((message) => message.body.toString()),
      ['y'],
    )
  })

  it('fails publishes once the primary is gone (ERR_MSGBUS_LINK_DOWN)', async () => {
    const sequencer = new Sequencer(new MessageLog({count: 3, bytes: 0, ageMs: 0}, '0-0'))
    await sequencer.open()
    const channel = new FakeChannel(sequencer, 1)
    const link = new WorkerLink(channel)
    const bus = new Bus({log: new MessageLog({count: 3, bytes: 0, ageMs: 0}, '0-0')})
    await bus.open(link)
    channel.connected = false
    link.disconnected()
    await assert.rejects(bus.publish(input('a', '1')), {code: 'ERR_MSGBUS_LINK_DOWN'})
    assert.equal(link.failure, 'the cluster primary is gone')
  })

  it('splits each limit that is set over the workers, at least 1 each', () => {
    assert.deepEqual(workerShare({maxConnectionsPerIp: 10, rateLimit: 0, maxLoginFailures: 3, maxSubscribers: 1001}, 4), {
      maxConnectionsPerIp: 2,
      rateLimit: 0,
      maxLoginFailures: 1,
      maxSubscribers: 250,
    })
  })

  it('adds the workers\' counters up, histogram bounds kept', () => {
    const one = {published: 1, answers: {'204': 2}, publishLatency: {buckets: [{le: 0.001, count: 1}], count: 1, sum: 0.5}}
    const two = {published: 2, answers: {'204': 1, '429': 1}, publishLatency: {buckets: [{le: 0.001, count: 3}], count: 3, sum: 1}}
    assert.deepEqual(sumCounters([one, two] as never), {published: 3, answers: {'204': 3, '429': 1}, publishLatency: {buckets: [{le: 0.001, count: 4}], count: 4, sum: 1.5}})
  })

  it('reads --workers: a count, or auto', () => {
    assert.equal(workerCount(undefined), 1)
    assert.equal(workerCount('3'), 3)
    assert.ok(workerCount('auto') >= 1)
    assert.throws(() => workerCount('0'), {code: 'ERR_MSGBUS_OPTION_INVALID'})
    assert.throws(() => workerCount('two'), {code: 'ERR_MSGBUS_OPTION_INVALID'})
  })
})
