// The replay (server/stream/replay.ts) alone, writing to a stream whose
// reader the test controls: it reads everything at once, or nothing until
// told. What a loopback socket's kernel buffers hide over the wire shows
// here: where the replay waits, what it holds, when it hands over to live
// delivery, and what it writes when the log drops messages under it.
import assert from 'node:assert/strict'
import type {Socket} from 'node:net'
import {Writable} from 'node:stream'
import type {Message} from '../../src/lib/bus/message.js'
import {MessageLog} from '../../src/lib/history/message-log.js'
import type {Gap} from '../../src/lib/protocol/gap.js'
import {replay, type ReplayTarget} from '../../src/lib/server/stream/replay.js'

const turn = () => new Promise((resolve) => setImmediate(resolve))

/** A writable end whose reader takes everything as it comes (`reading`), or nothing until `read()`. */
class Reader {
  readonly received: Buffer[] = []
  reading: boolean
  private held: Array<() => void> = []
  readonly stream: Writable

  constructor(reading: boolean) {
    this.reading = reading
    this.stream = new Writable({
      // A socket's own buffer: write() returns false past 16 KiB.
      highWaterMark: 16 * 1024,
      // A socket that has ended its side stays open until the peer ends too.
      autoDestroy: false,
      write: (chunk: Buffer, _encoding, callback) => {
        const take = () => {
          this.received.push(chunk)
          callback()
        }

        if (this.reading) take()
        else this.held.push(take)
      },
    })
  }

  /** From now on takes everything: what waits, and all that comes. */
  async read(): Promise<void> {
    this.reading = true
    while (this.held.length > 0) this.held.shift()!()
    await turn()
  }

  text(): string {
    return Buffer.concat(this.received).toString()
  }
}

function message(serial: number, channel = 'c', body = `m${serial}`): Message {
  return {id: `${1_000_000 + serial}-0`, time: 1_000_000 + serial, serial, channel, type: 'text/plain', essence: 'text/plain', body: Buffer.from(body)}
}

function filledLog(count: number, options: {history?: number; channel?: (serial: number) => string; size?: number} = {}): MessageLog {
  const log = new MessageLog({count: options.history ?? 100_000, bytes: 0, ageMs: 0}, '999999-0')
  for (let serial = 0; serial < count; serial++) {
    const body = options.size ? `m${serial} `.padEnd(options.size, '.') : `m${serial}`
    log.append(message(serial, options.channel?.(serial) ?? 'c', body))
  }

  return log
}

/** A subscription as replay.ts sees it: each message a line `<id> <body>`, a gap a line `gap <json>`. */
function targetOf(reader: Reader, wants: (message: Message) => boolean = () => true): ReplayTarget & {gaps: Gap[]} {
  const gaps: Gap[] = []
  return {
    socket: reader.stream as unknown as Socket,
    lastSerial: -1,
    lastId: undefined,
    received: 0,
    gaps,
    wants,
    bytesOf: (message) => Buffer.from(`${message.id} ${message.body}\n`),
    gapBytes(gap) {
      gaps.push(gap)
      return Buffer.from(`gap ${JSON.stringify(gap)}\n`)
    },
  }
}

/** Runs a replay; `done` resolves when it says it has caught up. */
function start(target: ReplayTarget, log: MessageLog, from: number, highWater: number): {done: Promise<void>; finished: () => boolean} {
  let finished = false
  const done = new Promise<void>((resolve) =>
    replay(target, log, from, highWater, () => {
      assert.ok(!finished, 'done is called once')
      finished = true
      resolve()
    }),
  )
  return {done, finished: () => finished}
}

const lines = (reader: Reader) => reader.text().split('\n').slice(0, -1)

describe('unit: the replay', () => {
  it('a reader that keeps up gets every message after the start, in order, and done once with lastSerial at the end', async () => {
    const log = filledLog(5000)
    const reader = new Reader(true)
    const target = targetOf(reader)
    await start(target, log, 10, 1024 * 1024).done
    await turn()
    const got = lines(reader)
    assert.equal(got.length, 4990)
    assert.equal(got[0], '1000010-0 m10')
    assert.equal(got.at(-1), '1004999-0 m4999')
    assert.equal(target.lastSerial, 4999)
    assert.equal(target.lastId, '1004999-0')
    assert.equal(target.received, 4990)
  })

  it('a reader that does not read: the replay stops past the high-water mark, holding a slice more at most, and goes on when it reads', async () => {
    const log = filledLog(5000, {size: 1024})
    const reader = new Reader(false)
    const target = targetOf(reader)
    const highWater = 64 * 1024
    const replaying = start(target, log, 0, highWater)
    for (let i = 0; i < 20; i++) await turn()
    const held = reader.stream.writableLength
    const written = target.received
    assert.ok(held >= highWater, `${held} bytes held`)
    assert.ok(held <= highWater + 256 * 1024 + 2048, `${held} bytes held: a slice of 256 KiB past the mark at most`)
    for (let i = 0; i < 20; i++) await turn()
    assert.equal(target.received, written, 'it waits')
    assert.ok(!replaying.finished())
    await reader.read()
    await replaying.done
    assert.equal(lines(reader).length, 5000)
  })

  it('--max-pending 0, slices that write little (a filter passes few): it ends instead of waiting for a drain that never comes', async () => {
    // One wanted message in 100: a slice of 2,000 looks at writes 20 short lines, far under the socket's 16 KiB.
    const log = filledLog(10_000, {channel: (serial) => (serial % 100 === 0 ? 'wanted' : 'other')})
    for (const reading of [true, false]) {
      const reader = new Reader(reading)
      const target = targetOf(reader, (m) => m.channel === 'wanted')
      const replaying = start(target, log, 0, 0)
      for (let i = 0; i < 50 && !replaying.finished(); i++) await turn()
      // A reader that does not read holds less than the socket's own buffer: the replay ends all the same.
      assert.ok(replaying.finished(), `reading ${reading}: the replay ended`)
      await reader.read()
      assert.equal(lines(reader).length, 100)
    }
  })

  it('a small high-water mark and a reader that does not read: it writes on up to the socket buffer, then waits', async () => {
    const log = filledLog(5000, {size: 512})
    const reader = new Reader(false)
    const target = targetOf(reader)
    const replaying = start(target, log, 0, 1024)
    for (let i = 0; i < 20; i++) await turn()
    assert.ok(!replaying.finished())
    const held = reader.stream.writableLength
    assert.ok(held <= 16 * 1024 + 256 * 1024 + 1024, `${held} bytes held`)
    await reader.read()
    await replaying.done
    assert.equal(lines(reader).length, 5000)
  })

  it('caught up while past the high-water mark: live delivery takes over only once the reader has taken the bytes', async () => {
    const log = filledLog(200, {size: 1024})
    const reader = new Reader(false)
    const target = targetOf(reader)
    // All of it in the first slice (200 KiB), over the mark.
    const replaying = start(target, log, 0, 64 * 1024)
    for (let i = 0; i < 10; i++) await turn()
    assert.equal(target.received, 200, 'all written')
    assert.ok(!replaying.finished(), 'but not handed over while 200 KiB wait')
    // What is published meanwhile is in the log: the replay writes it too, then hands over.
    log.append(message(200))
    await reader.read()
    await replaying.done
    assert.equal(target.lastSerial, 200)
    assert.equal(lines(reader).at(-1), '1000200-0 m200')
  })

  it('the log drops messages under a waiting replay: a gap (expired, after the last written, from the horizon), then the rest', async () => {
    const log = filledLog(1000, {history: 1000, size: 1024})
    const reader = new Reader(false)
    const target = targetOf(reader)
    const replaying = start(target, log, 0, 64 * 1024)
    for (let i = 0; i < 10; i++) await turn()
    const written = target.received
    assert.ok(written > 0 && written < 1000, `${written} written, then it waits`)
    const lastWritten = target.lastId
    for (let serial = 1000; serial < 1500; serial++) log.append(message(serial))
    await reader.read()
    await replaying.done
    assert.deepEqual(target.gaps, [{reason: 'expired', after: lastWritten, from: log.horizon}])
    assert.equal(log.horizon, '1000499-0')
    const got = lines(reader)
    assert.equal(got[written], `gap ${JSON.stringify(target.gaps[0])}`)
    assert.deepEqual(got.slice(0, written).map((line) => line.split(' ')[0]), Array.from({length: written}, (_, i) => `${1_000_000 + i}-0`))
    assert.deepEqual(got.slice(written + 1).map((line) => line.split(' ')[0]), Array.from({length: 1000}, (_, i) => `${1_000_500 + i}-0`))
  })

  it('a stream ended meanwhile (the server stops) is not written to again', async () => {
    const log = filledLog(20_000)
    const reader = new Reader(true)
    const target = targetOf(reader)
    const errors: Error[] = []
    reader.stream.on('error', (error) => errors.push(error))
    const replaying = start(target, log, 0, 1024 * 1024)
    // The first slice is written at once; the next waits for a turn of the event loop.
    assert.ok(target.received > 0 && target.received < 20_000)
    reader.stream.end('closed\n')
    for (let i = 0; i < 10; i++) await turn()
    assert.deepEqual(errors, [])
    assert.ok(!replaying.finished())
    assert.equal(lines(reader).at(-1), 'closed')
  })
})
