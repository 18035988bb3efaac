// The history on disk (`--history-dir`, src/lib/history/segment-store.ts):
// segment files written and read back across close and open, the limits on
// reopening (and that start-up reads only what it keeps), torn tails and
// corrupt records, the horizon, the folder's lock, and group commit.
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {once} from 'node:events'
import {appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, truncateSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import type {Message} from '../../src/lib/bus/message.js'
import {compareMessageIds} from '../../src/lib/bus/message-id.js'
import type {HistoryLimits} from '../../src/lib/history/message-log.js'
import {keptSize} from '../../src/lib/history/message-log.js'
import {decodeRecords, encodeRecord} from '../../src/lib/history/record.js'
import {SegmentStore} from '../../src/lib/history/segment-store.js'
import type {HistorySync, StoredMessage} from '../../src/lib/history/store.js'
import type {Logger} from '../../src/lib/server/ops/log.js'
import {MsgbusError} from '../../src/lib/util/errors.js'
import {tempFolder, until} from '../support/harness.js'
import {randomSource} from '../support/random.js'

/** The ids' clock: a fixed past, so that ages are the tests' to choose. */
const T = 1_700_000_000_000
const LOTS: HistoryLimits = {count: 1_000_000, bytes: 0, ageMs: 0}

function message(i: number, body: Buffer | string = `message ${i}`, extra: Partial<Message> = {}): Message {
  return {id: `${T + i}-0`, time: T + i, serial: i, channel: 'c', type: 'text/plain', essence: 'text/plain', body: Buffer.from(body), ...extra}
}

function stored(messages: Message[]): StoredMessage[] {
  return messages.map(({serial: _, ...rest}) => rest)
}

const ids = (messages: Array<{id: string}>) => messages.map((m) => m.id)

/** A logger that keeps its warnings. */
function recording(): Logger & {warnings: string[]} {
  const warnings: string[] = []
  return {level: 0, warnings, log() {}, warn: (tag, text) => warnings.push(`${tag} ${text}`)}
}

/** Changes a file's bytes in place, as a failing disk would; returns them. */
function spoil(path: string, change: (bytes: Buffer) => void): Buffer {
  const bytes = readFileSync(path)
  change(bytes)
  writeFileSync(path, bytes)
  return bytes
}

function segmentsIn(dir: string): string[] {
  return readdirSync(dir)
    .filter((name) => name.endsWith('.seg'))
    .sort()
}

describe('unit: the history on disk', () => {
  const inTemp = tempFolder('msgbus-history-store-')
  let serial = 0
  /** A folder of its own for each test. */
  const freshDir = () => inTemp(`t${serial++}`)
  const open: SegmentStore[] = []

  afterEach(async () => {
    await Promise.all(open.splice(0).map((store) => store.close().catch(() => {})))
  })

  async function openStore(dir: string, options: {limits?: HistoryLimits; now?: number; sync?: HistorySync; segmentBytes?: number; logger?: Logger} = {}) {
    const store = new SegmentStore(dir, options.sync ?? 'always', options.logger ?? recording(), {segmentBytes: options.segmentBytes})
    open.push(store)
    const recovered = await store.open(options.limits ?? LOTS, options.now ?? T + 1_000_000)
    return {store, recovered}
  }

  /** A folder holding `count` messages, appended one at a time (so segments roll over between them). */
  async function filled(dir: string, count: number, segmentBytes?: number, body = (i: number) => `message ${i} `.padEnd(100, '.')): Promise<Message[]> {
    const {store} = await openStore(dir, {segmentBytes, now: T - 1})
    const messages = Array.from({length: count}, (_, i) => message(i, body(i)))
    for (const m of messages) await store.append(m)
    await store.close()
    return messages
  }

  it('a record: encoded and decoded back as it was; a cut or a flipped byte ends the decoding there', () => {
    const messages = [message(1), message(2, Buffer.from([0, 255, 10, 13]), {sender: 'alice', type: 'application/octet-stream; x=1', essence: 'application/octet-stream'}), message(3, '', {channel: 'ünï/cødé'})]
    const bytes = Buffer.concat(messages.map(encodeRecord))
    const whole = decodeRecords(bytes)
    assert.equal(whole.end, bytes.length)
    assert.equal(whole.stop, undefined)
    assert.deepEqual(
      whole.records.map((r) => (r.kind === 'message' ? r.message : r)),
      stored(messages),
    )

    const firstTwo = encodeRecord(messages[0]).length + encodeRecord(messages[1]).length
    const cut = decodeRecords(bytes.subarray(0, bytes.length - 3))
    assert.deepEqual([cut.records.length, cut.end, cut.stop], [2, firstTwo, 'torn'])
    const flipped = Buffer.from(bytes)
    flipped[encodeRecord(messages[0]).length + 20] ^= 1
    const corrupt = decodeRecords(flipped)
    assert.deepEqual([corrupt.records.length, corrupt.end, corrupt.stop], [1, encodeRecord(messages[0]).length, 'corrupt'])
  })

  it('a new folder is made (mode 0700) with its first segment; nothing in it, the horizon the time it was opened', async () => {
    const dir = join(freshDir(), 'deeper')
    const {recovered} = await openStore(dir, {now: T + 5})
    assert.deepEqual(recovered, {messages: [], horizon: `${T + 5}-0`})
    assert.equal(statSync(dir).mode & 0o777, 0o700)
    assert.deepEqual(segmentsIn(dir), [`${String(T + 5).padStart(16, '0')}-${'0'.padStart(16, '0')}.seg`])
    // Closed and opened again later, the horizon is the one on disk, not the new time.
    await open.pop()!.close()
    assert.equal((await openStore(dir, {now: T + 99})).recovered.horizon, `${T + 5}-0`)
  })

  it('round trip: every message back after close and open, oldest first, byte for byte', async () => {
    const dir = freshDir()
    const random = randomSource('history store round trip')
    const messages = Array.from({length: 200}, (_, i) =>
      message(i, random.bytes(random.int(3000)), i % 3 === 0 ? {sender: `user${i}`, type: 'application/octet-stream', essence: 'application/octet-stream'} : {}),
    )
    const {store} = await openStore(dir, {now: T - 1})
    await Promise.all(messages.map((m) => store.append(m)))
    await store.close()
    const {recovered} = await openStore(dir)
    assert.deepEqual(recovered.messages, stored(messages))
    assert.equal(recovered.horizon, `${T - 1}-0`)
  })

  it('appends over many turns, in batches of any size, come back in order across segment rollovers', async () => {
    const dir = freshDir()
    const random = randomSource('history store batches')
    const messages = Array.from({length: 300}, (_, i) => message(i, random.bytes(random.int(500))))
    const {store} = await openStore(dir, {now: T - 1, segmentBytes: 4096})
    for (let i = 0; i < messages.length; ) {
      const size = 1 + random.int(12)
      await Promise.all(messages.slice(i, i + size).map((m) => store.append(m)))
      i += size
    }

    await store.close()
    const names = segmentsIn(dir)
    assert.ok(names.length > 5, `${names.length} segments`)
    const {recovered} = await openStore(dir)
    assert.deepEqual(recovered.messages, stored(messages))
  })

  for (const sync of ['always', 'interval', 'never'] as const) {
    it(`group commit (${sync}): appends made in one turn are written in one batch, in order, and every promise resolves`, async () => {
      const dir = freshDir()
      const {store} = await openStore(dir, {now: T - 1, sync})
      const messages = Array.from({length: 1000}, (_, i) => message(i))
      const settled: string[] = []
      await Promise.all(messages.map((m) => store.append(m).then(() => settled.push(m.id))))
      assert.deepEqual(settled, ids(messages))
      // One batch: one fdatasync under always, none under the others (interval's comes within a second).
      assert.equal(store.syncs, sync === 'always' ? 1 : 0)
      await store.close()
      const {recovered} = await openStore(dir, {sync})
      assert.deepEqual(ids(recovered.messages), ids(messages))
    })
  }

  it('interval: the sync of every second comes even while appends never stop', async function () {
    this.timeout(30_000)
    const dir = freshDir()
    const {store} = await openStore(dir, {now: T - 1, sync: 'interval'})
    let next = 0
    let synced = false
    const publisher = async () => {
      while (!synced) await store.append(message(next++))
    }

    const publishers = Array.from({length: 8}, publisher)
    // Three, a second apart: one could come from a moment when the queue happened to be empty.
    await until(() => store.syncs >= 3, () => `3 syncs among ${next} appends (${store.syncs})`, 15_000)
    synced = true
    await Promise.all(publishers)
  })

  it('reopened within smaller limits: the newest by count, by bytes, by age; the horizon the newest left out', async () => {
    const dir = freshDir()
    const messages = await filled(dir, 60, 2048)
    const size = keptSize(messages[0])

    const byCount = await openStore(dir, {limits: {count: 10, bytes: 0, ageMs: 0}})
    assert.deepEqual(ids(byCount.recovered.messages), ids(messages.slice(-10)))
    assert.equal(byCount.recovered.horizon, messages[49].id)
    await open.pop()!.close()

    // Ten messages' bytes, less one: nine fit.
    const byBytes = await openStore(dir, {limits: {count: 1000, bytes: 10 * size - 1, ageMs: 0}})
    assert.deepEqual(ids(byBytes.recovered.messages), ids(messages.slice(-9)))
    assert.equal(byBytes.recovered.horizon, messages[50].id)
    await open.pop()!.close()

    // Messages of the last 5 ms, at T + 59: those of T + 54 to T + 59.
    const byAge = await openStore(dir, {limits: {count: 1000, bytes: 0, ageMs: 5}, now: T + 59})
    assert.deepEqual(ids(byAge.recovered.messages), ids(messages.slice(-6)))
    assert.equal(byAge.recovered.horizon, messages[53].id)
  })

  it('reopened within smaller limits: the segments older than what is kept are deleted, unread', async () => {
    const dir = freshDir()
    const logger = recording()
    const messages = await filled(dir, 60, 2048)
    const before = segmentsIn(dir)
    assert.ok(before.length >= 5, `${before.length} segments`)
    // The oldest segment's bytes spoilt: a start-up that read it would say so.
    spoil(join(dir, before[0]), (bytes) => bytes.fill(0x5a, 40))

    const {recovered} = await openStore(dir, {limits: {count: 5, bytes: 0, ageMs: 0}, logger})
    assert.deepEqual(ids(recovered.messages), ids(messages.slice(-5)))
    assert.deepEqual(logger.warnings, [], 'the spoilt segment was never read')
    // Deleted after open(), in the background: close() waits for it.
    await open.pop()!.close()
    const after = segmentsIn(dir)
    assert.ok(!after.includes(before[0]), 'the spoilt segment is gone')
    assert.ok(after.length <= 2, `only the segments holding the 5 kept, not ${after.join(' ')}`)
    assert.deepEqual(after, before.slice(before.length - after.length), 'the newest ones stay')
  })

  it('a torn tail (a record cut in half, as by kill -9 mid-write) is cut back: every whole record is back, and a warning says how much was cut', async () => {
    const dir = freshDir()
    const messages = await filled(dir, 20, 2048)
    const newest = join(dir, segmentsIn(dir).at(-1)!)
    const whole = statSync(newest).size
    const half = encodeRecord(message(20)).subarray(0, 50)
    appendFileSync(newest, half)

    const logger = recording()
    const {store, recovered} = await openStore(dir, {logger})
    assert.deepEqual(ids(recovered.messages), ids(messages))
    assert.equal(statSync(newest).size, whole, 'truncated to its last whole record')
    assert.equal(logger.warnings.length, 1, logger.warnings.join('\n'))
    assert.match(logger.warnings[0], new RegExp(`^history ${newest.replace(/[.]/g, '\\.')}: cut 50 bytes after its last whole record, at byte ${whole} \\(a record cut short\\)$`))
    // Appends go on after the cut, and read back whole.
    await store.append(message(21))
    await store.close()
    assert.deepEqual(ids((await openStore(dir)).recovered.messages), [...ids(messages), message(21).id])
  })

  it('garbage after the last record, or the last record missing its end, is cut the same way', async () => {
    for (const spoil of ['garbage', 'cut'] as const) {
      const dir = freshDir()
      const messages = await filled(dir, 10)
      const newest = join(dir, segmentsIn(dir).at(-1)!)
      const whole = statSync(newest).size
      if (spoil === 'garbage') appendFileSync(newest, randomSource('history store garbage').bytes(777))
      else truncateSync(newest, whole - 7)
      const logger = recording()
      const {recovered} = await openStore(dir, {logger})
      const expected = spoil === 'garbage' ? messages : messages.slice(0, -1)
      assert.deepEqual(ids(recovered.messages), ids(expected), spoil)
      const cut = spoil === 'garbage' ? 777 : encodeRecord(messages[9]).length - 7
      assert.match(logger.warnings.join('\n'), new RegExp(`cut ${cut} bytes`), spoil)
      assert.equal(statSync(newest).size, spoil === 'garbage' ? whole : whole - encodeRecord(messages[9]).length)
      await open.pop()!.close()
    }
  })

  it('a corrupt record in an older segment: what is before it is kept, the reading goes on, the file is left as it is', async () => {
    const dir = freshDir()
    const messages = await filled(dir, 40, 2048)
    const names = segmentsIn(dir)
    assert.ok(names.length >= 3, `${names.length} segments`)
    // The middle segment's third message (its fourth record, after the header): the last byte of its body flipped.
    const middle = join(dir, names[1])
    let inMiddle: string[] = []
    let at = 0
    const bytes = spoil(middle, (bytes) => {
      inMiddle = decodeRecords(bytes).records.flatMap((r) => (r.kind === 'message' ? [r.message.id] : []))
      for (let k = 0; k < 3; k++) at += bytes.readUInt32LE(at) + 8
      bytes[at + bytes.readUInt32LE(at) + 8 - 1] ^= 0xff
    })

    const logger = recording()
    const {recovered} = await openStore(dir, {logger})
    const lost = new Set(inMiddle.slice(2))
    assert.deepEqual(ids(recovered.messages), ids(messages).filter((id) => !lost.has(id)))
    assert.equal(logger.warnings.length, 1, logger.warnings.join('\n'))
    assert.match(logger.warnings[0], new RegExp(`${names[1]}: a record that does not check out at byte ${at}: the ${bytes.length - at} bytes from there on are not read`))
    assert.equal(statSync(middle).size, bytes.length, 'an older segment is not cut')
  })

  it('the newest segment without a whole header (made as the process stopped) is removed; the one before goes on', async () => {
    const dir = freshDir()
    const messages = await filled(dir, 30, 2048)
    const names = segmentsIn(dir)
    const stray = `${String(T + 999).padStart(16, '0')}-${'0'.padStart(16, '0')}.seg`
    writeFileSync(join(dir, stray), Buffer.from([9, 0, 0]))
    const logger = recording()
    const {store, recovered} = await openStore(dir, {logger})
    assert.deepEqual(ids(recovered.messages), ids(messages))
    assert.match(logger.warnings.join('\n'), /removed, a segment without a whole header \(3 bytes\)/)
    assert.deepEqual(segmentsIn(dir), names)
    await store.append(message(30))
    await store.close()
    assert.equal((await openStore(dir)).recovered.messages.length, 31)
  })

  it('forget() deletes the segments whose messages are all forgotten, never the current one; a reopen starts after them', async () => {
    const dir = freshDir()
    const {store} = await openStore(dir, {now: T - 1, segmentBytes: 2048})
    const messages = Array.from({length: 60}, (_, i) => message(i, `message ${i} `.padEnd(100, '.')))
    for (const m of messages) await store.append(m)
    const names = segmentsIn(dir)
    assert.ok(names.length >= 5, `${names.length} segments`)
    // Nothing can go before the first segment's last message is forgotten.
    store.forget(messages[0].id)
    // The third segment's first message is forgotten: the first two segments hold only forgotten ones.
    const thirdAfter = names[2].split('.')[0].split('-').map(Number)
    const thirdFirst = messages.findIndex((m) => compareMessageIds(m.id, `${thirdAfter[0]}-${thirdAfter[1]}`) > 0)
    store.forget(messages[thirdFirst].id)
    await store.close()
    assert.deepEqual(segmentsIn(dir), names.slice(2))
    const {recovered} = await openStore(dir)
    assert.deepEqual(ids(recovered.messages), ids(messages.slice(thirdFirst)))
    assert.equal(recovered.horizon, messages[thirdFirst - 1].id, 'the horizon: the newest message of the segments deleted')
    await open.pop()!.close()

    // Everything forgotten: all but the segment written to go.
    const {store: third} = await openStore(dir, {segmentBytes: 2048})
    third.forget(messages.at(-1)!.id)
    await third.close()
    assert.deepEqual(segmentsIn(dir), names.slice(-1))
  })

  it('the lock: a second store on the same folder is refused while the first is open, and opens once it is closed', async () => {
    const dir = freshDir()
    const {store} = await openStore(dir)
    const second = new SegmentStore(dir, 'always', recording())
    await assert.rejects(second.open(LOTS, T), (error: MsgbusError) => {
      assert.equal(error.code, 'ERR_MSGBUS_HISTORY_FAILED')
      assert.equal(error.message, `history dir ${dir} is in use by process ${process.pid} (this one)`)
      return true
    })
    await store.close()
    assert.ok(!existsSync(join(dir, 'lock')), 'released')
    await second.open(LOTS, T)
    open.push(second)
  })

  it('the lock: held by another process that runs, the folder is refused; left by one that no longer runs, it is taken over', async () => {
    const dir = freshDir()
    mkdirSync(dir)
    // The process that runs mocha runs as long as this test.
    writeFileSync(join(dir, 'lock'), `${process.ppid}\n`)
    await assert.rejects(new SegmentStore(dir, 'always', recording()).open(LOTS, T), {
      code: 'ERR_MSGBUS_HISTORY_FAILED',
      message: `history dir ${dir} is in use by process ${process.ppid}`,
    })

    const child = spawn(process.execPath, ['-e', ''], {stdio: 'ignore'})
    await once(child, 'exit')
    for (const [holder, said] of [
      [String(child.pid), `process ${child.pid}, which no longer runs`],
      // A previous process with this one's pid (a container's pid 1, restarted).
      [String(process.pid), `process ${process.pid}, which no longer runs`],
      ['', 'a lock file without a pid'],
    ]) {
      writeFileSync(join(dir, 'lock'), `${holder}\n`)
      const logger = recording()
      const {store} = await openStore(dir, {logger})
      assert.deepEqual(logger.warnings, [`history ${dir}: took over the lock of ${said}`])
      assert.equal(readFileSync(join(dir, 'lock'), 'latin1'), `${process.pid}\n`)
      await store.close()
      open.pop()
    }
  })

  it('an unusable folder: a one-line ERR_MSGBUS_HISTORY_FAILED naming it and the system error', async () => {
    const file = join(freshDir(), 'a-file')
    mkdirSync(join(file, '..'), {recursive: true})
    writeFileSync(file, 'not a folder')
    const dir = join(file, 'history')
    await assert.rejects(new SegmentStore(dir, 'always', recording()).open(LOTS, T), (error: MsgbusError) => {
      assert.equal(error.code, 'ERR_MSGBUS_HISTORY_FAILED')
      assert.equal(error.message, `history dir ${dir}: cannot make the folder: ENOTDIR`)
      assert.equal((error.cause as NodeJS.ErrnoException).code, 'ENOTDIR')
      return true
    })
  })

  it('a write that fails rejects its batch with ERR_MSGBUS_HISTORY_FAILED and is logged; later appends go to a new segment and are kept', async () => {
    const dir = freshDir()
    const logger = recording()
    const {store} = await openStore(dir, {now: T - 1, logger})
    await store.append(message(0))
    // The file taken from under the writer: its next write fails (EBADF), as a full or failing disk's would.
    await (store as unknown as {writer: {target: {handle: {close(): Promise<void>}}}}).writer.target.handle.close()
    const failed = [store.append(message(1)), store.append(message(2))]
    for (const result of await Promise.allSettled(failed)) {
      assert.equal(result.status, 'rejected')
      assert.equal((result.reason as MsgbusError).code, 'ERR_MSGBUS_HISTORY_FAILED')
      assert.match((result.reason as MsgbusError).message, new RegExp(`^history dir ${dir}: cannot write 2 messages: EBADF$`))
    }

    assert.match(logger.warnings.join('\n'), /cannot write 2 messages: EBADF/)
    await store.append(message(3))
    await store.close()
    assert.equal(segmentsIn(dir).length, 2, 'a new segment after the broken one')
    assert.deepEqual(ids((await openStore(dir)).recovered.messages), [message(0).id, message(3).id])
  })

  it('after close(), appends are refused; close() twice is harmless', async () => {
    const dir = freshDir()
    const {store} = await openStore(dir)
    await store.close()
    await store.close()
    await assert.rejects(store.append(message(1)), {code: 'ERR_MSGBUS_HISTORY_FAILED'})
  })
})
