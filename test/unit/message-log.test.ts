// The message log (history/message-log.ts) alone: where a resume begins for
// every kind of position and at every boundary, the three limits, the
// compaction of dropped slots, and the bytes it counts.
import assert from 'node:assert/strict'
import type {Message} from '../../src/lib/bus/message.js'
import {keptSize, MessageLog, type HistoryLimits} from '../../src/lib/history/message-log.js'
import {randomSource} from '../support/random.js'

function message(serial: number, id: string, body = 'x', channel = 'c'): Message {
  return {id, serial, time: Number(id.split('-')[0]), channel, type: 'text/plain', essence: 'text/plain', body: Buffer.from(body)}
}

/** A log whose messages have ids `<1001 + serial>-0`, after the horizon `1000-0`. */
function logWith(count: number, limits: Partial<HistoryLimits> = {}): MessageLog {
  const log = new MessageLog({count: 1000, bytes: 0, ageMs: 0, ...limits}, '1000-0')
  for (let serial = 0; serial < count; serial++) log.append(message(serial, `${1001 + serial}-0`))
  return log
}

/** The private array behind the log, to see that dropped slots are let go. */
const slots = (log: MessageLog) => (log as unknown as {messages: Message[]}).messages

describe('unit: the message log', () => {
  describe('resolve: where a resume begins', () => {
    // Ten appended, seven kept: serials 3-9, ids 1004-0 to 1010-0; the horizon is 1003-0.
    const log = logWith(10, {count: 7})

    it('the log as set up', () => {
      assert.deepEqual([log.first, log.end, log.size, log.horizon, log.newest], [3, 10, 7, '1003-0', '1010-0'])
      assert.equal(log.at(3).id, '1004-0')
      assert.equal(log.at(9).id, '1010-0')
    })

    const cases: Array<[string, Parameters<MessageLog['resolve']>[0], ReturnType<MessageLog['resolve']>]> = [
      ['all: every kept message, from the horizon', {kind: 'all'}, {start: 3, from: '1003-0'}],
      ['an id older than the horizon: expired, from the horizon', {kind: 'id', id: '1002-0'}, {start: 3, from: '1003-0', gap: 'expired'}],
      ['an id in the horizon millisecond but before it: expired', {kind: 'id', id: '999-7'}, {start: 3, from: '1003-0', gap: 'expired'}],
      ['the horizon itself: everything after it is kept, no gap', {kind: 'id', id: '1003-0'}, {start: 3, from: '1003-0'}],
      ['an id between the horizon and the oldest kept', {kind: 'id', id: '1003-5'}, {start: 3, from: '1003-5'}],
      ['the oldest kept', {kind: 'id', id: '1004-0'}, {start: 4, from: '1004-0'}],
      ['a kept id', {kind: 'id', id: '1006-0'}, {start: 6, from: '1006-0'}],
      ['an id between two kept ones', {kind: 'id', id: '1006-3'}, {start: 6, from: '1006-3'}],
      ['the newest: nothing to replay, no gap', {kind: 'id', id: '1010-0'}, {start: 10, from: '1010-0'}],
      ['an id after the newest, in its millisecond: unknown', {kind: 'id', id: '1010-1'}, {start: 10, from: '1010-0', gap: 'unknown'}],
      ['an id from the future: unknown', {kind: 'id', id: '99999999999-0'}, {start: 10, from: '1010-0', gap: 'unknown'}],
      ['a time before the horizon: expired', {kind: 'time', time: 1002}, {start: 3, from: '1003-0', gap: 'expired'}],
      ["a time at the horizon's millisecond: expired (messages of it may be gone)", {kind: 'time', time: 1003}, {start: 3, from: '1003-0', gap: 'expired'}],
      ["a time at the oldest kept's millisecond: all kept, from the horizon", {kind: 'time', time: 1004}, {start: 3, from: '1003-0'}],
      ['a time between: from the message before it', {kind: 'time', time: 1007}, {start: 6, from: '1006-0'}],
      ["a time at the newest's millisecond", {kind: 'time', time: 1010}, {start: 9, from: '1009-0'}],
      ['a time after the newest: nothing, from the newest', {kind: 'time', time: 1011}, {start: 10, from: '1010-0'}],
    ]
    for (const [name, position, expected] of cases) {
      it(name, () => assert.deepEqual(log.resolve(position), expected))
    }

    it('several messages in one millisecond: a time means all of them, an id those after it', () => {
      const same = new MessageLog({count: 100, bytes: 0, ageMs: 0}, '1000-0')
      const ids = ['1001-0', '2000-0', '2000-1', '2000-2', '2001-0']
      ids.forEach((id, serial) => same.append(message(serial, id)))
      assert.deepEqual(same.resolve({kind: 'time', time: 2000}), {start: 1, from: '1001-0'})
      assert.deepEqual(same.resolve({kind: 'time', time: 2001}), {start: 4, from: '2000-2'})
      assert.deepEqual(same.resolve({kind: 'id', id: '2000-1'}), {start: 3, from: '2000-1'})
      // Ids compare as numbers, not text: 2000-10 is after 2000-2.
      same.append(message(5, '2001-10'))
      assert.deepEqual(same.resolve({kind: 'id', id: '2001-9'}), {start: 5, from: '2001-9'})
      assert.deepEqual(same.resolve({kind: 'id', id: '2001-11'}), {start: 6, from: '2001-10', gap: 'unknown'})
    })

    it('a new, empty log: its horizon is its start; an older id is expired, a newer one unknown', () => {
      const empty = new MessageLog({count: 10, bytes: 0, ageMs: 0}, '5000-0')
      assert.deepEqual(empty.resolve({kind: 'all'}), {start: 0, from: '5000-0'})
      assert.deepEqual(empty.resolve({kind: 'id', id: '5000-0'}), {start: 0, from: '5000-0'})
      assert.deepEqual(empty.resolve({kind: 'id', id: '4999-3'}), {start: 0, from: '5000-0', gap: 'expired'})
      assert.deepEqual(empty.resolve({kind: 'id', id: '5000-1'}), {start: 0, from: '5000-0', gap: 'unknown'})
      assert.deepEqual(empty.resolve({kind: 'time', time: 5000}), {start: 0, from: '5000-0', gap: 'expired'})
      assert.deepEqual(empty.resolve({kind: 'time', time: 5001}), {start: 0, from: '5000-0'})
    })

    it("a replica (--workers, --bus): an id a little ahead of its newest is one on its way, skipped through; one far ahead is still unknown", () => {
      const replica = logWith(3)
      replica.replica = true
      const soon = `${Date.now() + 1000}-4`
      assert.deepEqual(replica.resolve({kind: 'id', id: soon}), {start: 3, from: soon, through: soon})
      assert.deepEqual(replica.resolve({kind: 'id', id: '99999999999999-0'}), {start: 3, from: '1003-0', gap: 'unknown'})
      // Not ahead: as any log.
      assert.deepEqual(replica.resolve({kind: 'id', id: '1002-0'}), {start: 2, from: '1002-0'})
    })

    it('forgetAll (the shared log lost messages): nothing kept, the horizon is the newest, an older resume is expired', () => {
      const holed = logWith(5)
      let told: string | undefined
      holed.onForget = (horizon) => (told = horizon)
      holed.forgetAll()
      assert.deepEqual([holed.size, holed.horizon, told], [0, '1005-0', '1005-0'])
      assert.deepEqual(holed.resolve({kind: 'id', id: '1002-0'}), {start: 5, from: '1005-0', gap: 'expired'})
      holed.append(message(5, '1009-0'))
      assert.deepEqual(holed.resolve({kind: 'id', id: '1005-0'}), {start: 5, from: '1005-0'})
    })

    it('--history 0: nothing kept, the horizon is the newest id; only the newest resumes without a gap', () => {
      const off = new MessageLog({count: 0, bytes: 0, ageMs: 0}, '1000-0')
      const forgotten: string[] = []
      off.onForget = (horizon) => forgotten.push(horizon)
      for (let serial = 0; serial < 3; serial++) off.append(message(serial, `${1001 + serial}-0`))
      assert.deepEqual([off.first, off.end, off.size, off.bytes, off.horizon, off.newest], [3, 3, 0, 0, '1003-0', '1003-0'])
      assert.deepEqual(forgotten, ['1001-0', '1002-0', '1003-0'])
      assert.equal(slots(off).length, 0)
      assert.deepEqual(off.resolve({kind: 'id', id: '1003-0'}), {start: 3, from: '1003-0'})
      assert.deepEqual(off.resolve({kind: 'id', id: '1002-0'}), {start: 3, from: '1003-0', gap: 'expired'})
      assert.deepEqual(off.resolve({kind: 'all'}), {start: 3, from: '1003-0'})
      assert.deepEqual(off.resolve({kind: 'time', time: 1004}), {start: 3, from: '1003-0'})
    })
  })

  describe('limits', () => {
    it('count: the oldest go first; the horizon is the newest dropped; onForget hears it once per append', () => {
      const log = new MessageLog({count: 3, bytes: 0, ageMs: 0}, '1000-0')
      const forgotten: string[] = []
      log.onForget = (horizon) => forgotten.push(horizon)
      for (let serial = 0; serial < 5; serial++) log.append(message(serial, `${1001 + serial}-0`))
      assert.deepEqual([log.first, log.end, log.horizon], [2, 5, '1002-0'])
      assert.deepEqual(forgotten, ['1001-0', '1002-0'])
    })

    it('append refuses a serial out of order', () => {
      const log = logWith(2)
      assert.throws(() => log.append(message(5, '2000-0')), /serial 5, expected 2/)
    })

    it('bytes: bodies and header strings are counted, the oldest dropped past the limit, and the count kept exact', () => {
      const random = randomSource('message-log bytes')
      const limit = 10_000
      const log = new MessageLog({count: 50, bytes: limit, ageMs: 0}, '1000-0')
      const appended: Message[] = []
      for (let serial = 0; serial < 3000; serial++) {
        const size = random.int(4) === 0 ? random.int(12_000) : random.int(600)
        const m = {...message(serial, `${1001 + serial}-${random.int(20)}`, 'b'.repeat(size), `ch${random.int(1000)}`), sender: random.int(2) ? 'alice' : undefined}
        log.append(m)
        appended.push(m)
        const kept = appended.slice(log.first, log.end)
        assert.equal(log.bytes, kept.reduce((sum, k) => sum + keptSize(k), 0), `bytes after ${serial}`)
        assert.ok(log.bytes <= limit && log.size <= 50)
        // Only as many dropped as the limits need: one more would have fitted.
        if (log.first > 0) {
          const before = appended[log.first - 1]!
          assert.ok(log.size + 1 > 50 || log.bytes + keptSize(before) > limit, `message ${log.first - 1} was dropped needlessly`)
        }
      }
    })

    it('keptSize: the body and the strings around it', () => {
      assert.equal(keptSize({...message(0, '1001-0', 'hello', 'chan'), sender: 'bob'}), 5 + 4 + 'text/plain'.length + 3 + '1001-0'.length)
      // A message over the byte limit by itself is not kept at all.
      const log = new MessageLog({count: 10, bytes: 100, ageMs: 0}, '1000-0')
      log.append(message(0, '1001-0', 'x'.repeat(200)))
      assert.deepEqual([log.size, log.bytes, log.horizon], [0, 0, '1001-0'])
    })

    it('age: an append drops what is older than its own time less the age; trim() does it on a quiet log', () => {
      const log = new MessageLog({count: 100, bytes: 0, ageMs: 1000}, '1000-0')
      const forgotten: string[] = []
      log.onForget = (horizon) => forgotten.push(horizon)
      for (const [serial, ms] of [1500, 1800, 2400, 2499].entries()) log.append(message(serial, `${ms}-0`))
      // 2499 - 1000 = 1499: nothing older yet.
      assert.equal(log.size, 4)
      log.append(message(4, '2801-0'))
      assert.deepEqual([log.first, log.horizon], [2, '1800-0'])
      assert.deepEqual(forgotten, ['1800-0'])
      log.trim(3400)
      assert.deepEqual([log.first, log.horizon], [2, '1800-0'], 'messages at the cut-off ms stay')
      log.trim(3500)
      assert.deepEqual([log.first, log.horizon], [4, '2499-0'])
      log.trim(10_000)
      assert.deepEqual([log.size, log.bytes, log.horizon, log.newest], [0, 0, '2801-0', '2801-0'])
      log.trim(20_000)
      assert.deepEqual(forgotten, ['1800-0', '2499-0', '2801-0'], 'trim on an empty log forgets nothing more')
      assert.deepEqual(log.resolve({kind: 'id', id: '2801-0'}), {start: 5, from: '2801-0'})
      assert.deepEqual(log.resolve({kind: 'id', id: '2499-0'}), {start: 5, from: '2801-0', gap: 'expired'})
    })

    it('age 0 and bytes 0 are no limits', () => {
      const log = new MessageLog({count: 5, bytes: 0, ageMs: 0}, '1000-0')
      log.append(message(0, '1001-0', 'x'.repeat(1_000_000)))
      log.append(message(1, '99999999-0'))
      log.trim(Number.MAX_SAFE_INTEGER)
      assert.equal(log.size, 2)
    })
  })

  it('compaction: dropped slots are let go once they outnumber the kept ones past 1,024; every kept message stays where its serial says', () => {
    const log = logWith(0, {count: 100})
    let compactions = 0
    let before = 0
    for (let serial = 0; serial < 10_000; serial++) {
      log.append(message(serial, `${1001 + serial}-0`))
      const length = slots(log).length
      if (length < before) compactions++
      before = length
      assert.ok(length <= 2 * 1024 + 100, `${length} slots for ${log.size} messages`)
      if (serial % 997 === 0 || length < 200) {
        for (let kept = log.first; kept < log.end; kept++) assert.equal(log.at(kept).id, `${1001 + kept}-0`)
      }
    }

    assert.ok(compactions >= 9, `${compactions} compactions`)
    assert.deepEqual([log.first, log.end, log.size], [9900, 10_000, 100])
    assert.equal(log.resolve({kind: 'id', id: `${1001 + 9949}-0`}).start, 9950)
  })

  it('restore: fills a new log, gives serials, keeps the horizon it is given (or later, past the limits)', () => {
    const log = new MessageLog({count: 2, bytes: 0, ageMs: 0}, '5000-0')
    const stored = ['1001-0', '1002-0', '1003-0'].map((id) => {
      const {serial, ...rest} = message(0, id)
      void serial
      return rest
    })
    const restored = log.restore(stored, '1000-0')
    assert.deepEqual(restored.map((m) => m.serial), [0, 1, 2])
    assert.deepEqual([log.first, log.end, log.horizon, log.newest], [1, 3, '1001-0', '1003-0'])
    assert.throws(() => log.restore([], '1000-0'), /only for an empty log/)
  })
})
