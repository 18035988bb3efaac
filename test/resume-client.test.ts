// The library's subscribe() resuming: after the server drops its connection
// (the stream's socket destroyed from the server's side, in this process),
// from `since`, one-shot with `poll`, and across a gap in the history; against
// a real server over real sockets, and stand-in servers for the cases it
// cannot show (no ids, a server that repeats itself).
import assert from 'node:assert/strict'
import {once} from 'node:events'
import {createServer, type Server, type Socket} from 'node:net'
import {ClientError, isRetryable, subscribe, type GapInfo, type ReceivedMessage, type Subscription, type SubscriptionEvents} from '../src/lib/client/index.js'
import type {Position} from '../src/lib/protocol/index.js'
import {Changes} from '../tools/wait.js'
import {assertIncreasing, dropStreams, portOf, publish, publishEach, sleep, startBus, stopAll, streamsBesides, textMessage, until} from './support/harness.js'
import {randomSource} from './support/random.js'
import {closeSilentProxies, silentProxy} from './support/silent-proxy.js'

type ConnectInfo = SubscriptionEvents['connect'][0]

/** Reads a subscription in the background: its messages, and its gaps where they came among them. */
class Reader {
  readonly messages: ReceivedMessage[] = []
  /** Bodies and gaps (`gap <reason> <after> <from>`), in the order they came. */
  readonly timeline: string[] = []
  readonly gaps: GapInfo[] = []
  readonly connects: ConnectInfo[] = []
  disconnects = 0
  ended = false
  failure: unknown
  private readonly changes = new Changes()

  constructor(readonly subscription: Subscription) {
    subscription.on('connect', (info) => this.note(() => this.connects.push(info)))
    subscription.on('disconnect', () => this.note(() => this.disconnects++))
    subscription.on('gap', (gap) =>
      this.note(() => {
        this.gaps.push(gap)
        this.timeline.push(`gap ${gap.reason} ${gap.after} ${gap.from}`)
      }),
    )
    void this.read()
  }

  private note(change: () => void): void {
    change()
    this.changes.notify()
  }

  private async read(): Promise<void> {
    try {
      for await (const message of this.subscription) {
        this.note(() => {
          this.messages.push(message)
          this.timeline.push(message.body.toString())
        })
      }
    } catch (error) {
      this.failure = error
    }

    this.note(() => (this.ended = true))
  }

  bodies(): string[] {
    return this.messages.map((message) => message.body.toString())
  }

  ids(): string[] {
    return this.messages.map((message) => message.id!)
  }

  async until(test: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
    await until(test, () => `${what}; got ${JSON.stringify(this.timeline.slice(-20))}`, {
      timeoutMs,
      changes: this.changes,
      stop: () => (this.ended && !test() && `the subscription ended${this.failure ? ` (${String(this.failure)})` : ''}`) || undefined,
    })
  }

  untilMessages(count: number): Promise<void> {
    return this.until(() => this.messages.length >= count, `${count} messages`)
  }
}

const controllers = new Set<AbortController>()
const fakes = new Set<Server>()

/** subscribe(), ended after the test. */
function subscribed(target: string, options: Parameters<typeof subscribe>[1] = {}): Reader {
  const controller = new AbortController()
  controllers.add(controller)
  return new Reader(subscribe(target, {minDelayMs: 10, maxDelayMs: 50, ...options, signal: controller.signal}))
}

/** Bodies `<prefix>0` to `<prefix><count - 1>`. */
function numbered(prefix: string, count: number, from = 0): string[] {
  return Array.from({length: count}, (_, n) => `${prefix}${from + n}`)
}

/**
 * A stand-in server that records each request head and answers connection
 * i with `streams[i]`'s parts (`[headers, body]`) in a multipart stream, then
 * closes it; past the last, it answers with nothing more than a stream that stays open.
 */
async function fakeBus(streams: Array<Array<[string, string]>>): Promise<{url: string; heads: string[]}> {
  const heads: string[] = []
  const server = createServer((socket) => {
    socket.on('error', () => {})
    let head = ''
    socket.on('data', (chunk: Buffer) => {
      if (head.includes('\r\n\r\n')) return
      head += chunk.toString('latin1')
      if (!head.includes('\r\n\r\n')) return
      const parts = streams[heads.length]
      heads.push(head)
      socket.write('HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace;boundary=B\r\nConnection: close\r\n\r\n--B\r\n')
      if (!parts) return
      socket.end(parts.map(([headers, body]) => `${headers}\r\n\r\n${body}\r\n--B`).join('\r\n') + '--\r\n')
    })
  })
  fakes.add(server)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {url: `http://127.0.0.1:${(server.address() as {port: number}).port}`, heads}
}

describe('subscribe(): resume, since, poll and gaps', function () {
  this.timeout(30_000)

  afterEach(async () => {
    for (const controller of controllers) controller.abort()
    controllers.clear()
    for (const server of fakes) server.close()
    fakes.clear()
    closeSilentProxies()
    await stopAll()
  })

  it('resumes after the server drops its stream, while a publisher keeps publishing: every message once, in order @slow', async () => {
    const random = randomSource('resume-client: drops')
    const server = await startBus()
    const reader = subscribed('foo', {url: server.url()})
    await reader.until(() => reader.connects.length === 1, 'the first connection')
    const total = 300
    const dropAt = new Set(Array.from({length: 6}, () => 10 + random.int(total - 20)))
    const dropped: Socket[] = []
    for (let n = 0; n < total; n++) {
      if (dropAt.has(n)) {
        // Drop a stream that is there: the one dropped before may not be back yet.
        await until(() => streamsBesides(server, dropped) > 0, 'a stream to drop')
        dropped.push(...dropStreams(server).dropped)
      }

      assert.equal((await publish(server, 'foo', String(n))).status, 204)
      if (random.int(4) === 0) await sleep(random.int(5))
    }

    await reader.untilMessages(total)
    assert.deepEqual(reader.bodies(), numbered('', total))
    assertIncreasing(reader.ids())
    assert.equal(reader.disconnects, dropAt.size, 'one disconnect a drop')
    assert.equal(reader.subscription.lastId, reader.ids().at(-1))
    assert.equal(reader.subscription.received, total)
    assert.deepEqual(reader.gaps, [])
  })

  it('since: an id (the messages after it), a duration, all, a Position; then live', async () => {
    const server = await startBus()
    // The server started less than an hour ago and kept nothing from before: an hour back is a gap (expired).
    const cases: Array<[string, (ids: string[]) => string | Position, number, string?]> = [
      ['id', (ids) => ids[1], 2],
      ['duration', () => '1h', 0, 'expired'],
      ['all', () => 'all', 0],
      ['position', (ids) => ({kind: 'id', id: ids[3]}), 4],
    ]
    for (const [name, since, first, gap] of cases) {
      const channel = `since-${name}`
      const ids = await publishEach(server, channel, numbered('m', 5))
      const position = since(ids)
      const reader = subscribed(channel, {url: server.url(), since: position})
      await reader.untilMessages(5 - first)
      await publishEach(server, channel, ['live'])
      await reader.untilMessages(6 - first)
      assert.deepEqual(reader.bodies(), [...numbered('m', 5).slice(first), 'live'], name)
      const replayFrom = first === 0 ? undefined : ids[first - 1]
      if (replayFrom) assert.equal(reader.connects[0].replayFrom, replayFrom, name)
      assert.equal(reader.connects[0].gap, gap, name)
      assert.deepEqual(reader.gaps.map(({reason, after}) => [reason, after]), gap ? [[gap, null]] : [], name)
    }
  })

  it('poll: the backlog (all of it, or since a position), then the iteration ends; no reconnect', async () => {
    const server = await startBus()
    const ids = await publishEach(server, 'p', ['a', 'b', 'c'])
    for (const [since, expected] of [[undefined, ['a', 'b', 'c']], [ids[1], ['c']], ['all', ['a', 'b', 'c']]] as const) {
      const subscription = subscribe('p', {url: server.url(), poll: true, since})
      let reconnects = 0
      const disconnects: unknown[] = []
      subscription.on('reconnect', () => reconnects++)
      subscription.on('disconnect', ({error}) => disconnects.push(error))
      const bodies: string[] = []
      for await (const message of subscription) bodies.push(message.body.toString())
      assert.deepEqual(bodies, expected)
      assert.deepEqual(disconnects, [undefined], 'one clean end')
      assert.equal(reconnects, 0)
      assert.equal(subscription.lastId, ids[2])
    }
  })

  it('a gap (history too small while away): one gap event with its reason and ids, then the messages after it', async () => {
    const server = await startBus({history: 5})
    const startedAfter = server.bus.log.newest
    const reader = subscribed('foo', {url: server.url(), minDelayMs: 100})
    await reader.until(() => reader.connects.length === 1, 'the first connection')
    const before = await publishEach(server, 'foo', numbered('m', 3))
    await reader.untilMessages(3)
    // m3 to m12 while it is away: the history keeps m8 to m12.
    const away = await dropStreams(server, numbered('m', 10, 3).map((body) => textMessage('foo', body))).ids
    await reader.untilMessages(8)
    assert.deepEqual(reader.timeline, [...numbered('m', 3), `gap expired ${before[2]} ${away[4]}`, ...numbered('m', 5, 8)])
    assert.equal(reader.gaps.length, 1)
    assert.deepEqual(reader.gaps[0], {url: reader.subscription.target.display, reason: 'expired', after: before[2], from: away[4]})
    // A live stream begins after the newest id there was; the resume, after the horizon.
    assert.deepEqual(reader.connects.map(({replayFrom, gap}) => [replayFrom, gap]), [[startedAfter, undefined], [away[4], 'expired']])
    // Live on after the gap, and no second report of it.
    await publishEach(server, 'foo', ['after'])
    await reader.untilMessages(9)
    assert.equal(reader.gaps.length, 1)
    assert.equal(reader.timeline.at(-1), 'after')
  })

  it('since an id the server never issued: a gap (unknown), then live messages', async () => {
    const server = await startBus()
    const [newest] = await publishEach(server, 'u', ['old'])
    const reader = subscribed('u', {url: server.url(), since: '99999999999999-0'})
    await reader.until(() => reader.gaps.length === 1, 'the gap')
    await publishEach(server, 'u', ['new'])
    await reader.untilMessages(1)
    assert.deepEqual(reader.timeline, [`gap unknown 99999999999999-0 ${newest}`, 'new'])
  })

  it('a bad since throws ERR_MSGBUS_POSITION_INVALID at once, before any request', async () => {
    const {url, heads} = await fakeBus([])
    for (const since of ['yesterday', '10 minutes', '1x', '']) {
      assert.throws(() => subscribe('foo', {url, since}), (error: Error & {code?: string}) => {
        assert.equal(error.code, 'ERR_MSGBUS_POSITION_INVALID', since)
        assert.match(error.message, /^not a position: /)
        return true
      })
    }

    // A good one does connect: the stand-in counts requests.
    const reader = subscribed('foo', {url, since: '10m'})
    await reader.until(() => reader.connects.length === 1, 'the connection')
    assert.equal(heads.length, 1)
    assert.match(heads[0], /^GET \/msgbus\/foo\?gaps=1&since=\d{13} HTTP\/1\.1\r\n/)
  })

  it('a server without ids (the 2007 msgbus): every reconnect asks for gap parts and sends no Last-Event-ID', async () => {
    const plain = (body: string): [string, string] => ['Content-Type: text/plain', body]
    const {url, heads} = await fakeBus([[plain('a'), plain('b')], [plain('c')]])
    const reader = subscribed('foo', {url})
    await reader.untilMessages(3)
    await reader.until(() => heads.length >= 3, 'the third connection')
    assert.deepEqual(reader.bodies(), ['a', 'b', 'c'])
    assert.equal(reader.subscription.lastId, undefined)
    for (const head of heads) {
      assert.match(head, /^GET \/msgbus\/foo\?gaps=1 HTTP\/1\.1\r\n/)
      assert.doesNotMatch(head, /last-event-id/i)
    }
  })

  it('resumes with Last-Event-ID; a message not newer than the last one yielded is skipped (a server that repeats itself)', async () => {
    const part = (id: string, body: string): [string, string] => [`Content-Type: text/plain\r\nMessage-ID: ${id}`, body]
    const gap = JSON.stringify({event: 'gap', reason: 'dropped', after: '5-2', from: '5-4', skipped: 2})
    const {url, heads} = await fakeBus([
      [part('5-0', 'a'), part('5-1', 'b')],
      [part('5-0', 'a'), part('5-1', 'b'), part('5-2', 'c'), ['Content-Type: application/json\r\nMsgbus-Event: gap', gap], part('5-5', 'f')],
    ])
    const reader = subscribed('foo', {url})
    await reader.untilMessages(4)
    assert.deepEqual(reader.timeline, ['a', 'b', 'c', 'gap dropped 5-2 5-4', 'f'])
    assert.equal(reader.gaps[0].skipped, 2)
    assert.doesNotMatch(heads[0], /last-event-id/i)
    assert.match(heads[1], /\r\nlast-event-id: 5-1\r\n/i)
    await reader.until(() => heads.length >= 3, 'the third connection')
    assert.match(heads[2], /\r\nlast-event-id: 5-5\r\n/i)
  })

  it('a stream lost before its first message resumes from where it began: nothing published meanwhile is missed', async () => {
    const server = await startBus()
    await publishEach(server, 'foo', ['before'])
    const reader = subscribed('foo', {url: server.url(), minDelayMs: 100})
    await reader.until(() => reader.connects.length === 1, 'the first connection')
    const {ids} = dropStreams(server, numbered('m', 3).map((body) => textMessage('foo', body)))
    await reader.untilMessages(3)
    assert.deepEqual(reader.bodies(), numbered('m', 3))
    assert.deepEqual(reader.gaps, [])
    assert.equal(reader.subscription.lastId, (await ids)[2])
  })

  it('resume: false reconnects to live messages only', async () => {
    const server = await startBus()
    const reader = subscribed('foo', {url: server.url(), resume: false, minDelayMs: 100})
    await reader.until(() => reader.connects.length === 1, 'the first connection')
    await publishEach(server, 'foo', ['a'])
    await reader.untilMessages(1)
    const {dropped, ids} = dropStreams(server, [textMessage('foo', 'missed')])
    await reader.until(() => reader.connects.length === 2 && streamsBesides(server, dropped) === 1, 'the second connection')
    await publishEach(server, 'foo', ['b'])
    await reader.untilMessages(2)
    assert.deepEqual(reader.bodies(), ['a', 'b'])
    // Live from the newest message, the one it missed: it asked for nothing before.
    assert.equal(reader.connects[1].replayFrom, (await ids)[0])
    assert.equal(reader.connects[1].gap, undefined)
  })

  it('a connect whose response head never comes is given up after headersTimeoutMs and made again, resuming: nothing is lost', async () => {
    const server = await startBus()
    // The reconnect after the drop (the second connection) reaches no one.
    const proxy = await silentProxy(portOf(server), (index) => index === 1)
    const reader = subscribed('foo', {url: proxy.url, headersTimeoutMs: 1000})
    const errors: string[] = []
    reader.subscription.on('disconnect', ({error}) => error && errors.push(error.message))
    await reader.until(() => reader.connects.length === 1, 'the first connection')
    await publishEach(server, 'foo', numbered('a', 3))
    await reader.untilMessages(3)
    // Published while the subscriber is cut off, then waits on the silent connection: only a resume brings these.
    await dropStreams(server, numbered('b', 3).map((body) => textMessage('foo', body))).ids
    await reader.until(() => reader.connects.length === 2, 'the connection after the silent one')
    await publishEach(server, 'foo', numbered('c', 3))
    await reader.untilMessages(9)
    assert.deepEqual(reader.bodies(), [...numbered('a', 3), ...numbered('b', 3), ...numbered('c', 3)])
    assertIncreasing(reader.ids())
    assert.equal(proxy.connections(), 3)
    assert.ok(errors.includes(`${reader.subscription.target.display}: no response head within 1 s`), JSON.stringify(errors))
    assert.deepEqual(reader.gaps, [])
    assert.equal(reader.subscription.losses.events, 0)
  })

  it('a connect whose response head never comes, without reconnecting: a one-line error naming the URL and the timeout', async () => {
    const proxy = await silentProxy(0, () => true)
    const subscription = subscribe('foo', {url: proxy.url, reconnect: false, headersTimeoutMs: 1000})
    const failure = await (async () => {
      try {
        for await (const message of subscription) assert.fail(`a message: ${message.body.toString()}`)
      } catch (error) {
        return error
      }
    })()
    assert.ok(failure instanceof ClientError, String(failure))
    assert.equal(failure.message, `${proxy.url}/msgbus/foo: no response head within 1 s`)
    assert.equal(failure.code, 'ERR_MSGBUS_REQUEST_FAILED')
    assert.ok(isRetryable(failure), 'a failure that can heal, like any failed connect')
    assert.equal(proxy.connections(), 1)
  })

  it('the stream after its head has no timeout: one quiet for longer than headersTimeoutMs stays open', async () => {
    const server = await startBus()
    const reader = subscribed('quiet', {url: server.url(), headersTimeoutMs: 300})
    await reader.until(() => reader.connects.length === 1, 'the connection')
    await sleep(1200)
    await publishEach(server, 'quiet', ['late'])
    await reader.untilMessages(1)
    assert.deepEqual(reader.bodies(), ['late'])
    assert.equal(reader.disconnects, 0)
    assert.equal(reader.connects.length, 1)
  })
})
