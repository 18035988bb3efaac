// History and resume (issue 14), over real sockets: the seam between a
// replay and live delivery under random disconnects, replays paced by slow
// readers, the limits (count, bytes, age, --history 0), the gap signal in
// every format, filters and the ACL during a replay, the forms of ?since=,
// ?poll=1, and ids across a restart.
import assert from 'node:assert/strict'
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {Agent, request as httpRequest} from 'node:http'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {performance} from 'node:perf_hooks'
import bcrypt from 'bcryptjs'
import {compareMessageIds, type BusServer, type Message} from '../src/lib/index.js'
import {HttpSubscription} from '../src/lib/server/stream/subscription.js'
import {portOf, request, sleep, startBus, stopAll, until} from './support/harness.js'
import {randomSource} from './support/random.js'
import {Publisher} from '../tools/publisher.js'
import {StreamReader, type Format, type StreamEvent, type StreamGap} from './support/stream-reader.js'

const KiB = 1024
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`

/** The server's side of a reader's connection. */
function serverSide(server: BusServer, reader: StreamReader): HttpSubscription | undefined {
  const port = reader.socket.localPort
  return [...server.subscriptions].find((subscription) => subscription.socket.remotePort === port)
}

/** Publishes `count` messages on one pipelined connection; their ids, in order. */
async function fill(server: BusServer, channel: string, count: number, body: (i: number) => string): Promise<string[]> {
  const publisher = await Publisher.open(portOf(server))
  const ids = await publisher.send(channel, Array.from({length: count}, (_, i) => body(i)))
  publisher.close()
  return ids
}

/** A stream's messages must be these ids, in this order, each once. */
function assertIds(reader: StreamReader, expected: string[], what: string): void {
  const ids = reader.ids()
  if (ids.length === expected.length && ids.every((id, i) => id === expected[i])) return
  const at = ids.findIndex((id, i) => id !== expected[i])
  assert.fail(`${what}: ${ids.length} messages for ${expected.length} expected; first difference at ${at}: got ${ids[at]}, expected ${expected[at]}`)
}

/** A one-shot read (`?poll=1`) to its end. */
async function poll(server: BusServer, path: string, options: {format?: Format; headers?: Record<string, string>; keepBytes?: boolean; http10?: boolean} = {}): Promise<StreamReader> {
  const reader = await StreamReader.open(portOf(server), `${path}${path.includes('?') ? '&' : '?'}poll=1`, options)
  await reader.untilClosed()
  return reader
}

const gapOf = (event: StreamEvent | undefined): StreamGap => {
  assert.equal(event?.kind, 'gap', `a gap event: ${JSON.stringify(event)}`)
  return event as StreamGap
}

describe('history and resume', function () {
  this.timeout(60_000)
  afterEach(stopAll)

  // ---------------------------------------------------------------- the seam

  describe('the seam between replay and live delivery', () => {
    /**
     * A publisher at about 1,000 messages a second for `seconds`; one
     * subscriber that the client or the server disconnects at random
     * moments, and that reconnects after a random delay (0 a third of the
     * time) with the last id it received: as Last-Event-ID (what an
     * EventSource sends), ?last_event_id= or ?since=. In the end it must have
     * every message published exactly once, in order, and never a gap.
     */
    async function seam(label: string, formats: Format[], seconds: number): Promise<void> {
      const random = randomSource(label)
      const server = await startBus()
      const port = portOf(server)
      const publisher = await Publisher.open(port)
      const published: string[] = []
      const publishedBodies: string[] = []
      const received: string[] = []
      const receivedBodies: string[] = []
      const problems: string[] = []
      let lastId: string | undefined
      let publishing = true
      const counts = {connections: 0, byServer: 0, byClient: 0, atOnce: 0}

      const publishes = (async () => {
        const started = performance.now()
        const total = seconds * 1000
        for (let sent = 0; sent < total; ) {
          const bodies = Array.from({length: 20}, (_, k) => `${label} ${sent + k}`)
          published.push(...(await publisher.send('seam', bodies)))
          publishedBodies.push(...bodies)
          sent += bodies.length
          // About 1,000 a second: 20 every 20 ms, catching up without a pause when late.
          const ahead = started + sent - performance.now()
          if (ahead > 0) await sleep(ahead)
        }

        publishing = false
      })()

      const subscribing = (async () => {
        for (;;) {
          const format = formats[random.int(formats.length)]!
          const how = lastId === undefined ? 'all' : (['header', 'query', 'since'] as const)[format === 'sse' ? 0 : random.int(3)]
          const path = how === 'all' ? '/msgbus/seam?since=all' : how === 'query' ? `/msgbus/seam?last_event_id=${lastId}` : how === 'since' ? `/msgbus/seam?since=${lastId}` : '/msgbus/seam'
          const asked = lastId
          const reader = await StreamReader.open(port, path, {format, headers: how === 'header' ? {'Last-Event-ID': lastId!} : {}})
          counts.connections++
          reader.onEvent = (event) => {
            if (event.kind !== 'message') {
              problems.push(`a gap event on connection ${counts.connections}: ${event.wire}`)
              return
            }

            if (lastId !== undefined && compareMessageIds(event.id!, lastId) <= 0) problems.push(`${event.id} after ${lastId}`)
            lastId = event.id
            received.push(event.id!)
            receivedBodies.push(event.body)
          }

          await reader.answered()
          assert.equal(reader.status, 200)
          if (asked !== undefined) assert.equal(reader.headers['msgbus-replay-from'], asked)
          assert.equal(reader.headers['msgbus-gap'], undefined)
          if (!publishing) {
            // The last connection: it catches up, and the count is checked below.
            await reader.until(() => lastId === published.at(-1), `the last message, ${published.at(-1)}`)
            reader.close()
            return
          }

          await sleep(random.int(250))
          const side = random.int(2) === 0 ? serverSide(server, reader) : undefined
          if (side) {
            counts.byServer++
            side.socket.destroy()
            // What the server wrote before it cut the connection still arrives.
            await reader.untilClosed()
          } else {
            counts.byClient++
            reader.close()
          }

          const delay = random.int(3) === 0 ? 0 : random.int(150)
          if (delay === 0) counts.atOnce++
          else await sleep(delay)
        }
      })()

      await Promise.all([publishes, subscribing])
      publisher.close()
      assert.deepEqual(problems, [])
      assert.equal(received.length, published.length, 'as many messages received as published')
      assert.deepEqual(received, published)
      assert.deepEqual(receivedBodies, publishedBodies)
      console.log(
        `      (${published.length} messages; ${counts.connections} connections: ${counts.byServer} cut by the server, ` +
          `${counts.byClient} by the client, ${counts.atOnce} reconnects at once)`,
      )
    }

    it('NDJSON, disconnected at random by either side, resumes with every message exactly once, in order @slow', async () => {
      await seam('seam ndjson', ['ndjson'], 2)
    })

    it('multipart, the same, over a longer run @slow', async () => {
      await seam('seam multipart', ['multipart'], 4)
    })

    it('SSE, resuming with Last-Event-ID as an EventSource does @slow', async () => {
      await seam('seam sse', ['sse'], 3)
    })

    it('each reconnect in a format drawn at random @slow', async () => {
      await seam('seam mixed', ['ndjson', 'multipart', 'sse'], 3)
    })
  })

  it('publishes during a long replay, with fan-outs in slices of 2: the replaying subscriber gets backlog then live, nothing twice @slow', async () => {
    const server = await startBus({fanOutSlice: 2, fanOutTurnMs: 0, maxPending: 64 * KiB})
    const port = portOf(server)
    // More than loopback's socket buffers take in: the replay waits for the reader.
    const body = (i: number) => `${i} `.padEnd(4 * KiB, '.')
    const backlog = await fill(server, 'c', 2500, body)
    // 30 live subscribers: each fan-out is 16 turns of the event loop.
    const live = await Promise.all(Array.from({length: 30}, () => StreamReader.open(port, '/msgbus/c', {format: 'ndjson'})))
    await Promise.all(live.map((reader) => reader.answered()))
    await until(() => server.bus.subscriberCount === 30, 'the 30 subscribers')

    // Deliveries to the replaying subscriber while its replay runs (written by the replay from the log), and
    // those that reach it after its replay wrote the message (a fan-out in slices): the ones it must skip.
    let resumingPort = -1
    let duringReplay = 0
    let late = 0
    const deliver = HttpSubscription.prototype.deliver
    HttpSubscription.prototype.deliver = function (this: HttpSubscription, message: Message): boolean {
      if (this.socket.remotePort === resumingPort) {
        if (message.serial <= this.lastSerial) late++
        else if (this.replaying) duringReplay++
      }

      return deliver.call(this, message)
    }

    try {
      const publisher = await Publisher.open(port)
      // One stream of publishes, 8 in flight at all times: there are always messages accepted (in the log) whose fan-out is still going.
      const liveBodies = Array.from({length: 600}, (_, i) => `live ${i}`)
      const publishes = publisher.send('c', liveBodies)
      await until(() => server.bus.log.end >= backlog.length + 50, 'publishes to be under way')
      const resuming = await StreamReader.open(port, '/msgbus/c', {format: 'ndjson', headers: {'Last-Event-ID': backlog[100]!}})
      resumingPort = resuming.socket.localPort!
      // It reads nothing for a while: its replay waits, publishes go on.
      resuming.pause()
      await sleep(300)
      resuming.resume()
      const more = await publishes
      publisher.close()
      const expected = [...backlog.slice(101), ...more]
      await resuming.until(() => resuming.messages.length >= expected.length, `${expected.length} messages`, 30_000)
      assert.equal(resuming.headers['msgbus-replay-from'], backlog[100])
      assert.deepEqual(resuming.gaps, [])
      assertIds(resuming, expected, 'the resuming subscriber')
      assert.deepEqual(resuming.bodies(), [...Array.from({length: 2399}, (_, i) => body(101 + i)), ...liveBodies])
      for (const reader of live) {
        await reader.until(() => reader.messages.length >= more.length, `${more.length} live messages`, 30_000)
        assertIds(reader, more, 'a live subscriber')
      }

      console.log(`      (${duringReplay} live deliveries during its replay, ${late} after its replay had written the message)`)
      assert.ok(duringReplay > 0, 'publishes went on during the replay')
      assert.ok(late > 0, 'fan-outs in slices reached it after its replay had caught up')
    } finally {
      HttpSubscription.prototype.deliver = deliver
    }
  })

  it('a slow reader: a replay of 20,000 messages of 1 KiB waits for it, the server holding about --max-pending for it; then all arrive in order @slow', async () => {
    const maxPending = 256 * KiB
    const server = await startBus({history: 25_000, maxPending})
    const body = (i: number) => `${i} `.padEnd(KiB, 'x')
    const ids = await fill(server, 'slow', 20_000, body)
    const reader = await StreamReader.open(portOf(server), '/msgbus/slow?since=all')
    reader.pause()
    let side: HttpSubscription | undefined
    await until(() => (side = serverSide(server, reader)) !== undefined, 'its subscription')
    // The kernel's buffers fill, then the replay writes up to --max-pending and waits.
    await until(() => side!.socket.writableLength >= maxPending, () => `the replay to reach --max-pending (${side!.socket.writableLength} unsent)`, 20_000)
    // A slice of the replay (256 KiB) and a message past the check at most.
    const bound = maxPending + 256 * KiB + 2 * KiB
    let most = 0
    const replayed = side!.received
    for (let sample = 0; sample < 20; sample++) {
      most = Math.max(most, side!.socket.writableLength)
      await sleep(25)
    }

    assert.ok(most <= bound, `${most} bytes unsent for it, over ${bound}`)
    assert.equal(side!.received, replayed, 'the replay waits while it does not read')
    assert.ok(replayed < ids.length, `the replay waits: ${replayed} of ${ids.length} written`)
    console.log(`      (paused at ${replayed} of ${ids.length} messages, ${most} bytes unsent)`)
    reader.resume()
    await reader.untilMessages(ids.length, 30_000)
    assertIds(reader, ids, 'the slow reader')
    assert.ok(reader.bodies().every((b, i) => b === body(i)))
    // Then live.
    const [next] = await fill(server, 'slow', 1, () => 'live')
    await reader.untilMessages(ids.length + 1)
    assert.equal(reader.messages.at(-1)!.id, next)
  })

  it('a replay is never cut as slow: SSE heartbeats while a stalled reader replays do not make it slow @slow', async () => {
    const server = await startBus({slowTimeout: 1, heartbeat: 1, maxPending: 64 * KiB})
    const ids = await fill(server, 'stall', 1000, (i) => `${i} `.padEnd(8 * KiB, '.'))
    const reader = await StreamReader.open(portOf(server), '/msgbus/stall?since=all', {format: 'sse'})
    reader.pause()
    let side: HttpSubscription | undefined
    await until(() => (side = serverSide(server, reader)) !== undefined, 'its subscription')
    await until(() => side!.socket.writableLength >= 64 * KiB, 'the replay to wait for the reader', 20_000)
    // Heartbeats come while it replays, over --max-pending, for longer than --slow-timeout.
    let heartbeats = 0
    const send = side!.send.bind(side)
    side!.send = (frame) => {
      if (side!.replaying) heartbeats++
      return send(frame)
    }

    await until(() => heartbeats >= 3 || server.counters().slowDisconnects > 0, () => `three heartbeats during the replay (${heartbeats})`, 15_000)
    assert.equal(server.counters().slowDisconnects, 0, 'cut as slow while it replays')
    reader.resume()
    await reader.untilMessages(ids.length, 30_000)
    assertIds(reader, ids, 'the stalled reader')
  })

  it('--max-pending 0: a replay that passes over most of the log still ends (a poll closes), and live delivery follows @slow', async () => {
    const server = await startBus({maxPending: 0})
    // 40 on `wanted` among 4,000: the replay's slices of 2,000 messages each write a few KiB.
    const publisher = await Publisher.open(portOf(server))
    const sent: Array<Promise<string[]>> = []
    for (let i = 0; i < 40; i++) {
      sent.push(publisher.send('other', Array.from({length: 99}, (_, k) => `o${i * 99 + k}`)))
      sent.push(publisher.send('wanted', [`w${i}`]))
    }

    const wanted = (await Promise.all(sent)).filter((_, i) => i % 2 === 1).flat()

    const polled = await poll(server, '/msgbus/wanted?since=all', {format: 'raw'})
    assert.deepEqual(polled.bodies(), Array.from({length: 40}, (_, i) => `w${i}`))
    const follow = await StreamReader.open(portOf(server), '/msgbus/wanted?since=all', {format: 'ndjson'})
    await follow.untilMessages(40)
    const [live] = await publisher.send('wanted', ['live'])
    await follow.untilMessages(41)
    assertIds(follow, [...wanted, live!], 'replay, then live')
    publisher.close()
  })

  // ---------------------------------------------------------------- limits

  describe('limits', () => {
    it('count: the newest --history messages are kept; a resume from before them has an expired gap', async () => {
      const server = await startBus({history: 5})
      const ids = await fill(server, 'n', 8, (i) => `m${i}`)
      const all = await poll(server, '/msgbus/n?since=all', {format: 'ndjson'})
      assert.equal(all.headers['msgbus-replay-from'], ids[2])
      assert.equal(all.headers['msgbus-gap'], undefined)
      assertIds(all, ids.slice(3), 'since=all')
      const old = await poll(server, '/msgbus/n', {format: 'ndjson', headers: {'Last-Event-ID': ids[0]!}})
      assert.equal(old.headers['msgbus-gap'], 'expired')
      assert.equal(old.headers['msgbus-replay-from'], ids[2])
      assert.deepEqual(gapOf(old.events[0]), {...gapOf(old.events[0]), reason: 'expired', after: ids[0], from: ids[2]})
      assertIds(old, ids.slice(3), 'from an expired id')
      // The horizon itself, and any kept id: no gap.
      for (const at of [2, 5, 7]) {
        const resumed = await poll(server, '/msgbus/n', {format: 'ndjson', headers: {'Last-Event-ID': ids[at]!}})
        assert.equal(resumed.headers['msgbus-gap'], undefined, `from ${at}`)
        assert.equal(resumed.headers['msgbus-replay-from'], ids[at])
        assert.deepEqual(resumed.gaps, [])
        assertIds(resumed, ids.slice(at + 1), `from ${at}`)
      }
    })

    it('bytes: --history-bytes drops the oldest past the limit', async () => {
      const server = await startBus({history: 1000, historyBytes: 3300})
      const ids = await fill(server, 'b', 6, (i) => `${i}`.padEnd(1000, '-'))
      const all = await poll(server, '/msgbus/b?since=all', {format: 'ndjson'})
      // Each holds 1,000 bytes of body and about 26 of strings.
      assertIds(all, ids.slice(3), 'since=all')
      assert.equal(all.headers['msgbus-replay-from'], ids[2])
      assert.ok(server.bus.log.bytes <= 3300 && server.bus.log.bytes > 3000, `${server.bus.log.bytes} bytes kept`)
      // One larger than the limit is not kept at all, and takes the rest with it.
      const [big] = await fill(server, 'b', 1, () => 'x'.repeat(4000))
      const after = await poll(server, '/msgbus/b', {format: 'ndjson', headers: {'Last-Event-ID': ids[5]!}})
      assert.equal(after.headers['msgbus-gap'], 'expired')
      assert.equal(after.headers['msgbus-replay-from'], big)
      assertIds(after, [], 'nothing kept')
      assert.equal(server.bus.log.bytes, 0)
    })

    it('age: --history-age lets go of messages on a quiet bus too @slow', async () => {
      const server = await startBus({historyAge: 1})
      const ids = await fill(server, 'age', 3, (i) => `m${i}`)
      // Gone within a few trims (once a second), whatever the machine's speed.
      await until(() => server.bus.log.size === 0, () => `the messages to age out (${server.bus.log.size} kept)`, 15_000)
      const all = await poll(server, '/msgbus/age?since=all', {format: 'ndjson'})
      assertIds(all, [], 'since=all')
      const old = await poll(server, '/msgbus/age', {format: 'ndjson', headers: {'Last-Event-ID': ids[0]!}})
      assert.equal(old.headers['msgbus-gap'], 'expired')
      assert.equal(old.headers['msgbus-replay-from'], ids[2])
      const newest = await poll(server, '/msgbus/age', {format: 'ndjson', headers: {'Last-Event-ID': ids[2]!}})
      assert.equal(newest.headers['msgbus-gap'], undefined)
      const [next] = await fill(server, 'age', 1, () => 'next')
      const resumed = await poll(server, '/msgbus/age', {format: 'ndjson', headers: {'Last-Event-ID': ids[2]!}})
      assertIds(resumed, [next!], 'what came after')
    })

    it('--history 0: a resume from an older id has an expired gap and gets live messages only; from the newest id, no gap', async () => {
      const server = await startBus({history: 0})
      const ids = await fill(server, 'z', 2, (i) => `m${i}`)
      const old = await StreamReader.open(portOf(server), '/msgbus/z', {format: 'ndjson', headers: {'Last-Event-ID': ids[0]!}})
      const newest = await StreamReader.open(portOf(server), '/msgbus/z', {format: 'ndjson', headers: {'Last-Event-ID': ids[1]!}})
      await old.answered()
      await newest.answered()
      assert.equal(old.headers['msgbus-gap'], 'expired')
      assert.equal(old.headers['msgbus-replay-from'], ids[1])
      assert.equal(newest.headers['msgbus-gap'], undefined)
      assert.equal(newest.headers['msgbus-replay-from'], ids[1])
      await until(() => server.bus.subscriberCount === 2, 'both subscriptions')
      const [live] = await fill(server, 'z', 1, () => 'live')
      await old.untilMessages(1)
      await newest.untilMessages(1)
      assert.equal(old.events.length, 2)
      const gap = gapOf(old.events[0])
      assert.deepEqual([gap.reason, gap.after, gap.from], ['expired', ids[0], ids[1]])
      assertIds(old, [live!], 'after an expired id')
      assert.equal(newest.events.length, 1)
      assertIds(newest, [live!], 'after the newest id')
      const all = await poll(server, '/msgbus/z?since=all', {format: 'ndjson'})
      assert.equal(all.headers['msgbus-gap'], undefined)
      assert.equal(all.events.length, 0)
    })
  })

  // ---------------------------------------------------------------- the gap signal

  describe('the gap signal', () => {
    /** A server keeping 3 messages of the 6 published on `g`. */
    async function gapped(): Promise<{server: BusServer; ids: string[]}> {
      const server = await startBus({history: 3, boundary: 'gapboundary'})
      const ids = await fill(server, 'g', 6, (i) => `m${i}`)
      return {server, ids}
    }

    it('SSE: the header, then `event: gap` with its JSON and no id line, then the messages', async () => {
      const {server, ids} = await gapped()
      const reader = await poll(server, '/msgbus/g', {format: 'sse', headers: {'Last-Event-ID': ids[0]!}})
      assert.equal(reader.headers['msgbus-gap'], 'expired')
      assert.equal(reader.headers['msgbus-replay-from'], ids[2])
      const gap = gapOf(reader.events[0])
      assert.equal(gap.wire, `event: gap\ndata: {"event":"gap","reason":"expired","after":"${ids[0]}","from":"${ids[2]}"}`)
      assertIds(reader, ids.slice(3), 'after the gap')
      assert.equal(reader.events.length, 4)
    })

    it('NDJSON: the header, then a line with "event":"gap"', async () => {
      const {server, ids} = await gapped()
      const reader = await poll(server, '/msgbus/g', {format: 'ndjson', headers: {'Last-Event-ID': ids[1]!}})
      assert.equal(reader.headers['msgbus-gap'], 'expired')
      assert.equal(gapOf(reader.events[0]).wire, `{"event":"gap","reason":"expired","after":"${ids[1]}","from":"${ids[2]}"}`)
      assertIds(reader, ids.slice(3), 'after the gap')
    })

    it('multipart: the header always; a gap part only with ?gaps=1; without it the stream is byte for byte one without a gap', async () => {
      const {server, ids} = await gapped()
      const withGap = await poll(server, '/msgbus/g', {headers: {'Last-Event-ID': ids[0]!}, keepBytes: true})
      const noGap = await poll(server, '/msgbus/g', {headers: {'Last-Event-ID': ids[2]!}, keepBytes: true})
      assert.equal(withGap.headers['msgbus-gap'], 'expired')
      assert.equal(noGap.headers['msgbus-gap'], undefined)
      assert.equal(withGap.headers['msgbus-replay-from'], noGap.headers['msgbus-replay-from'])
      assert.deepEqual(withGap.gaps, [])
      assert.ok(withGap.bytes().equals(noGap.bytes()), 'the same bytes after the head')
      assert.ok(Buffer.concat(withGap.raw).equals(Buffer.concat(noGap.raw)), 'the same chunks')
      assertIds(withGap, ids.slice(3), 'after the gap')

      const parts = await poll(server, '/msgbus/g?gaps=1', {headers: {'Last-Event-ID': ids[0]!}})
      const gap = gapOf(parts.events[0])
      const json = `{"event":"gap","reason":"expired","after":"${ids[0]}","from":"${ids[2]}"}`
      assert.equal(gap.wire, `Content-Type: application/json\r\nContent-Length: ${json.length}\r\nMsgbus-Event: gap`)
      assert.deepEqual([gap.reason, gap.after, gap.from], ['expired', ids[0], ids[2]])
      assertIds(parts, ids.slice(3), 'after the gap part')
      assert.ok(parts.closeDelimiter)
      // ?gaps=1 changes nothing when there is no gap.
      const quiet = await poll(server, '/msgbus/g?gaps=1', {headers: {'Last-Event-ID': ids[2]!}, keepBytes: true})
      assert.ok(quiet.bytes().equals(noGap.bytes()))
    })

    it('raw: the header only; the bodies as they are', async () => {
      const {server, ids} = await gapped()
      const reader = await poll(server, '/msgbus/g', {format: 'raw', headers: {'Last-Event-ID': ids[0]!}, keepBytes: true})
      assert.equal(reader.headers['msgbus-gap'], 'expired')
      assert.equal(reader.headers['msgbus-replay-from'], ids[2])
      assert.equal(reader.bytes().toString(), 'm3\nm4\nm5\n')
    })

    it('unknown: an id from the future gets nothing replayed, then live messages', async () => {
      const {server, ids} = await gapped()
      const future = `${Date.now() + 3_600_000}-0`
      const reader = await StreamReader.open(portOf(server), '/msgbus/g', {format: 'ndjson', headers: {'Last-Event-ID': future}})
      await reader.answered()
      assert.equal(reader.headers['msgbus-gap'], 'unknown')
      assert.equal(reader.headers['msgbus-replay-from'], ids[5])
      await reader.until(() => reader.events.length === 1, 'the gap event')
      const gap = gapOf(reader.events[0])
      assert.deepEqual([gap.reason, gap.after, gap.from], ['unknown', future, ids[5]])
      const [live] = await fill(server, 'g', 1, () => 'live')
      await reader.untilMessages(1)
      assertIds(reader, [live!], 'live only')
      // One id past the newest is unknown too; the newest itself is not.
      const [ms, seq] = ids[5]!.split('-')
      const next = await poll(server, '/msgbus/g', {format: 'ndjson', headers: {'Last-Event-ID': `${ms}-${Number(seq) + 5}`}})
      assert.ok(['unknown', undefined].includes(next.headers['msgbus-gap']))
    })

    it('the headers are exposed to CORS readers', async () => {
      const server = await startBus({cors: ['*']})
      const reader = await poll(server, '/msgbus/g?since=all', {headers: {Origin: 'http://example.com'}})
      const exposed = (reader.headers['access-control-expose-headers'] ?? '').split(/,\s*/)
      for (const name of ['Msgbus-Replay-From', 'Msgbus-Gap']) assert.ok(exposed.includes(name), `${name} in ${exposed.join(', ')}`)
    })

    it('expired during a replay: the log drops messages under a paused reader; it gets a gap event mid-stream, then the rest @slow', async () => {
      const server = await startBus({history: 2000, maxPending: 64 * KiB})
      const body = (i: number) => `${i} `.padEnd(8 * KiB, '.')
      const old = await fill(server, 'e', 2000, body)
      const reader = await StreamReader.open(portOf(server), '/msgbus/e?since=all', {format: 'ndjson'})
      reader.pause()
      let side: HttpSubscription | undefined
      await until(() => (side = serverSide(server, reader)) !== undefined, 'its subscription')
      await until(() => side!.socket.writableLength >= 64 * KiB, 'the replay to wait for the reader', 20_000)
      const at = side!.received
      assert.ok(at < old.length, `the replay waits (${at} of ${old.length} written)`)
      // Every message under it goes.
      const newer = await fill(server, 'e', 2000, (i) => `new ${i}`)
      reader.resume()
      const all = [...old, ...newer]
      await reader.until(() => reader.ids().at(-1) === newer.at(-1), 'the last message', 30_000)
      const events = reader.events
      const gapAt = events.findIndex((event) => event.kind === 'gap')
      assert.ok(gapAt > 0, 'a gap event after some messages')
      assert.equal(reader.gaps.length, 1)
      const gap = gapOf(events[gapAt])
      const before = reader.ids().slice(0, gapAt)
      const after = reader.ids().slice(gapAt)
      assert.deepEqual(before, all.slice(0, gapAt), 'the messages before the gap, in order')
      assert.equal(gap.reason, 'expired')
      assert.equal(gap.after, before.at(-1))
      // `from`: the messages that follow come after it, and nothing kept after it is missing.
      const fromAt = all.indexOf(gap.from)
      assert.ok(fromAt >= gapAt, `from ${gap.from} is after what was received`)
      assert.deepEqual(after, all.slice(fromAt + 1), 'every message after `from`, in order')
      console.log(`      (paused at ${at}; ${before.length} before the gap, then from message ${fromAt + 1} on)`)
    })

    it('--slow-policy drop: the reader is told, before the next message, how many were skipped', async () => {
      const maxPending = 64 * KiB
      const server = await startBus({slowPolicy: 'drop', slowTimeout: 0, maxPending})
      const reader = await StreamReader.open(portOf(server), '/msgbus/d', {format: 'ndjson'})
      await reader.answered()
      reader.pause()
      const publisher = await Publisher.open(portOf(server))
      const body = (i: number) => `${i} `.padEnd(64 * KiB, '.')
      const published: string[] = []
      for (let i = 0; server.counters().dropped === 0; i += 4) {
        assert.ok(i < 4096, 'nothing dropped after 256 MiB')
        published.push(...(await publisher.send('d', [0, 1, 2, 3].map((k) => body(i + k)))))
      }

      published.push(...(await publisher.send('d', [0, 1, 2, 3].map((k) => `more ${k}`))))
      reader.resume()
      // Read all it was handed; then a message reaches it (those published while it is still behind are skipped too).
      await until(
        async () => {
          if (reader.gaps.length > 0) return true
          published.push(...(await publisher.send('d', ['caught up?'])))
          return false
        },
        'the gap event',
        {timeoutMs: 30_000, everyMs: 50},
      )
      await reader.until(() => reader.ids().at(-1) === published.at(-1) || reader.events.at(-1)!.kind === 'message', 'a message after the gap')
      publisher.close()
      const events = reader.events
      const gapAt = events.findIndex((event) => event.kind === 'gap')
      const gap = gapOf(events[gapAt])
      const dropped = server.counters().dropped
      assert.equal(gap.reason, 'dropped')
      assert.equal(gap.skipped, dropped, 'skipped: what the server counted')
      assert.equal(events[gapAt + 1]?.kind, 'message', 'a message follows the gap at once')
      const ids = reader.ids()
      assert.deepEqual(ids.slice(0, gapAt), published.slice(0, gapAt), 'before the gap: every message, in order')
      assert.equal(gap.after, ids[gapAt - 1])
      const next = published.indexOf(ids[gapAt]!)
      assert.equal(next - gapAt, dropped, 'the messages between the last before and the first after are the skipped ones')
      assert.equal(gap.from, published[next - 1], 'from: the last skipped')
      assert.deepEqual(ids.slice(gapAt), published.slice(next, next + ids.length - gapAt), 'after the gap: in order')
      console.log(`      (${dropped} skipped after ${gapAt} messages)`)
    })
    it('--slow-policy drop, SSE: heartbeats a slow reader goes without are no lost messages, and bring no gap event @slow', async () => {
      const server = await startBus({slowPolicy: 'drop', slowTimeout: 1, heartbeat: 1, maxPending: 64 * KiB})
      const reader = await StreamReader.open(portOf(server), '/msgbus/hb', {format: 'sse'})
      await reader.answered()
      reader.pause()
      let side: HttpSubscription | undefined
      await until(() => (side = serverSide(server, reader)) !== undefined, 'its subscription')
      // Heartbeats tried while it is slow: behind (over --max-pending) for longer than --slow-timeout.
      const tried: number[] = []
      const send = side!.send.bind(side)
      side!.send = (frame) => {
        if (side!.behindSince >= 0) tried.push(performance.now() - side!.behindSince)
        return send(frame)
      }

      // Publishes until it is behind (the kernel's buffers full, and bytes waiting past --max-pending), and no
      // longer: each is written, as it is behind for less than --slow-timeout.
      const publisher = await Publisher.open(portOf(server))
      const ids: string[] = []
      while (side!.socket.writableLength <= 4 * 64 * KiB) {
        assert.ok(ids.length < 4096, 'not behind after 128 MiB')
        ids.push(...(await publisher.send('hb', Array.from({length: 8}, (_, k) => `${ids.length + k} `.padEnd(32 * KiB, '.')))))
      }

      assert.ok(side!.behindSince >= 0, 'behind')
      assert.equal(server.counters().dropped, 0)
      await until(() => tried.some((ms) => ms >= 1100), () => `a heartbeat tried once it was slow (${tried.map(Math.round).join(', ')} ms behind)`, 10_000)
      assert.equal(server.counters().dropped, 0, 'no message dropped')
      reader.resume()
      await reader.untilMessages(ids.length)
      const [next] = await publisher.send('hb', ['after'])
      publisher.close()
      await reader.untilMessages(ids.length + 1)
      assertIds(reader, [...ids, next!], 'every message')
      assert.deepEqual(reader.gaps, [], 'no gap event')
    })
  })

  // ---------------------------------------------------------------- filters

  describe('filters during a replay', () => {
    it('type= and sender= select what is replayed, as they do live messages', async () => {
      const server = await startBus()
      const publisher = await Publisher.open(portOf(server))
      const kinds: Array<{type: string; sender?: string}> = [{type: 'text/plain', sender: 'alice'}, {type: 'application/json', sender: 'bob'}, {type: 'application/json', sender: 'alice'}, {type: 'text/plain'}]
      const sent: Array<{id: string; type: string; sender?: string}> = []
      for (let i = 0; i < 12; i++) {
        const kind = kinds[i % kinds.length]!
        const headers = {'Content-Type': kind.type, ...(kind.sender ? {Authorization: basic(kind.sender, 'x')} : {})}
        const [id] = await publisher.send('f', [kind.type === 'application/json' ? `{"i":${i}}` : `m${i}`], headers)
        sent.push({id: id!, ...kind})
      }

      const cases: Array<[string, (m: (typeof sent)[number]) => boolean]> = [
        ['type=application/json', (m) => m.type === 'application/json'],
        ['sender=alice', (m) => m.sender === 'alice'],
        ['type=text/*&sender=alice', (m) => m.type === 'text/plain' && m.sender === 'alice'],
      ]
      for (const [query, wants] of cases) {
        const reader = await StreamReader.open(portOf(server), `/msgbus/f?since=${sent[1]!.id}&${query}`, {format: 'ndjson'})
        await reader.answered()
        const expected = sent.slice(2).filter(wants).map((m) => m.id)
        await reader.untilMessages(expected.length)
        assertIds(reader, expected, query)
        // Live: the same filters.
        const [liveMatch] = await publisher.send('f', ['live'], {'Content-Type': 'text/plain', Authorization: basic('alice', 'x')})
        const [liveOther] = await publisher.send('f', ['{}'], {'Content-Type': 'application/json', Authorization: basic('bob', 'x')})
        sent.push({id: liveMatch!, type: 'text/plain', sender: 'alice'}, {id: liveOther!, type: 'application/json', sender: 'bob'})
        const live = [liveMatch!, liveOther!].filter((id) => wants(sent.find((m) => m.id === id)!))
        await reader.untilMessages(expected.length + live.length)
        assertIds(reader, [...expected, ...live], `${query}, then live`)
        reader.close()
      }

      publisher.close()
    })

    it("the ACL: a replay of every channel holds only the channels the user may subscribe to", async () => {
      const dir = mkdtempSync(join(tmpdir(), 'msgbus-history-acl-'))
      try {
        const acl = join(dir, 'acl')
        writeFileSync(acl, `alice ${bcrypt.hashSync('a', 4)} * *\nbob ${bcrypt.hashSync('b', 4)} - chat,news/*\n`)
        const server = await startBus({acl})
        const publisher = await Publisher.open(portOf(server))
        const sent: Array<[string, string]> = []
        for (const channel of ['chat', 'secret', 'news/a', 'chatter', 'news/b', 'secret']) {
          const [id] = await publisher.send(channel, [channel], {Authorization: basic('alice', 'a')})
          sent.push([channel, id!])
        }

        publisher.close()
        const bob = await poll(server, '/msgbus/?since=all', {format: 'ndjson', headers: {Authorization: basic('bob', 'b')}})
        assert.equal(bob.status, 200)
        assertIds(bob, sent.filter(([channel]) => channel === 'chat' || channel.startsWith('news/')).map(([, id]) => id), 'bob, every channel')
        const alice = await poll(server, '/msgbus/?since=all', {format: 'ndjson', headers: {Authorization: basic('alice', 'a')}})
        assertIds(alice, sent.map(([, id]) => id), 'alice, every channel')
        const refused = await request(`${server.url()}/msgbus/secret?since=all&poll=1`, {headers: {Authorization: basic('bob', 'b')}})
        assert.equal(refused.status, 403)
      } finally {
        rmSync(dir, {recursive: true, force: true})
      }
    })

    it('every channel (/msgbus/) resumes across channels, in the order published, with each channel named', async () => {
      const server = await startBus()
      const publisher = await Publisher.open(portOf(server))
      const sent: Array<[string, string]> = []
      for (const channel of ['a', 'b', 'a', 'c/d', 'b']) sent.push([channel, (await publisher.send(channel, [`on ${channel}`]))[0]!])
      const reader = await StreamReader.open(portOf(server), '/msgbus/', {headers: {'Last-Event-ID': sent[0]![1]}})
      await reader.untilMessages(4)
      assertIds(reader, sent.slice(1).map(([, id]) => id), 'every channel')
      assert.deepEqual(
        reader.messages.map((m) => m.channel),
        sent.slice(1).map(([channel]) => channel),
      )
      const [live] = await publisher.send('e', ['live'])
      await reader.untilMessages(5)
      assert.equal(reader.messages[4]!.id, live)
      publisher.close()
    })
  })

  // ---------------------------------------------------------------- positions, poll

  describe('?since= and ?poll=', () => {
    it('since= an id, a time in unix ms, ISO 8601, a duration, all', async () => {
      const server = await startBus()
      const [first] = await fill(server, 's', 1, () => 'first')
      const firstMs = Number(first!.split('-')[0])
      // The next message in a later millisecond, so a time can fall between them.
      await until(() => Date.now() > firstMs, 'the next millisecond')
      const rest = await fill(server, 's', 2, (i) => `m${i}`)
      const secondMs = Number(rest[0]!.split('-')[0])
      const horizon = (await poll(server, '/msgbus/s?since=all')).headers['msgbus-replay-from']!
      assert.ok(compareMessageIds(horizon, first!) < 0)
      const cases: Array<[string, string[], string, string | undefined]> = [
        ['all', [first!, ...rest], horizon, undefined],
        [first!, rest, first!, undefined],
        [String(secondMs), rest, first!, undefined],
        [new Date(secondMs).toISOString(), rest, first!, undefined],
        // (A first message in the millisecond the server started in is at its horizon: a gap, as messages of an earlier run may be missing.)
        [String(firstMs), [first!, ...rest], horizon, firstMs > Number(horizon.split('-')[0]) ? undefined : 'expired'],
        // Before the server started: what it may not have is gone.
        ['1h30m', [first!, ...rest], horizon, 'expired'],
        ['2020-01-01', [first!, ...rest], horizon, 'expired'],
      ]
      for (const [since, expected, from, gap] of cases) {
        const reader = await poll(server, `/msgbus/s?since=${encodeURIComponent(since)}`, {format: 'ndjson'})
        assert.equal(reader.status, 200, since)
        assert.equal(reader.headers['msgbus-replay-from'], from, `since=${since}`)
        assert.equal(reader.headers['msgbus-gap'], gap, `since=${since}`)
        assertIds(reader, expected, `since=${since}`)
      }

      // A duration shorter than the time since the last message: nothing, and no gap.
      const lastMs = Number(rest[1]!.split('-')[0])
      await until(() => Date.now() > lastMs + 5, 'a few milliseconds')
      const recent = await poll(server, '/msgbus/s?since=1ms', {format: 'ndjson'})
      assert.equal(recent.headers['msgbus-gap'], undefined)
      assert.equal(recent.headers['msgbus-replay-from'], rest[1])
      assertIds(recent, [], 'since=1ms')
      // last_event_id= wins over since=, and Last-Event-ID over both.
      const query = await poll(server, `/msgbus/s?since=all&last_event_id=${rest[0]}`, {format: 'ndjson'})
      assertIds(query, [rest[1]!], 'last_event_id=')
      const header = await poll(server, `/msgbus/s?since=all&last_event_id=${first}`, {format: 'ndjson', headers: {'Last-Event-ID': rest[0]!}})
      assertIds(header, [rest[1]!], 'Last-Event-ID')
    })

    it('a bad since=, Last-Event-ID or poll= is a 400 with a one-line reason', async () => {
      const server = await startBus()
      const url = `${server.url()}/msgbus/s`
      for (const since of ['yesterday', '10x', '-5m', '2026-13-45', '1h30', 'all-1', '12-']) {
        const reply = await request(`${url}?since=${encodeURIComponent(since)}`)
        assert.equal(reply.status, 400, since)
        const body = reply.body.toString()
        assert.ok(body.startsWith(`since: not a position: ${JSON.stringify(since)} (`), body)
        assert.equal(body.split('\n').length, 2, `one line: ${JSON.stringify(body)}`)
      }

      for (const id of ['x', '12', '12-x', '-1-2']) {
        const reply = await request(url, {headers: {'Last-Event-ID': id}})
        assert.equal(reply.status, 400, id)
        assert.match(reply.body.toString(), /^Last-Event-ID .* is not a message id/)
        const query = await request(`${url}?last_event_id=${encodeURIComponent(id)}`)
        assert.equal(query.status, 400, id)
      }

      for (const value of ['maybe', '2', 'yes']) {
        const reply = await request(`${url}?poll=${value}`)
        assert.equal(reply.status, 400, value)
        assert.equal(reply.body.toString(), `poll=${JSON.stringify(value)}: say 1 or 0\n`)
      }

      const gaps = await request(`${url}?gaps=maybe`)
      assert.equal(gaps.status, 400)
    })

    it('poll=1 ends each format properly: the closing bytes and the last chunk on HTTP/1.1, the close on HTTP/1.0; without a position it is everything', async () => {
      const server = await startBus({boundary: 'pollboundary'})
      const ids = await fill(server, 'p', 3, (i) => `m${i}`)
      for (const format of ['multipart', 'sse', 'ndjson', 'raw'] as const) {
        const reader = await poll(server, '/msgbus/p', {format, keepBytes: true})
        assert.equal(reader.headers['msgbus-replay-from'], (await poll(server, '/msgbus/p?since=all')).headers['msgbus-replay-from'])
        assert.deepEqual(reader.bodies(), ['m0', 'm1', 'm2'], format)
        if (format !== 'raw') assertIds(reader, ids, format)
        assert.ok(reader.ended, `${format}: the last chunk`)
        assert.ok(Buffer.concat(reader.raw).toString('latin1').endsWith('0\r\n\r\n'), format)
        if (format === 'multipart') assert.ok(reader.bytes().toString('latin1').endsWith('\r\n--pollboundary--\r\n'))

        const old = await poll(server, '/msgbus/p', {format, keepBytes: true, http10: true})
        assert.ok(old.closed && !old.headers['transfer-encoding'])
        assert.deepEqual(old.bodies(), ['m0', 'm1', 'm2'], `${format}, HTTP/1.0`)
        if (format === 'multipart') assert.ok(old.bytes().toString('latin1').endsWith('\r\n--pollboundary--\r\n'))
      }

      // Nothing to replay: it ends at once; a follow (poll=0) does not.
      const empty = await poll(server, `/msgbus/p?since=${ids[2]}`, {format: 'ndjson', keepBytes: true})
      assert.equal(empty.events.length, 0)
      assert.ok(empty.ended)
      const follow = await StreamReader.open(portOf(server), `/msgbus/p?since=${ids[1]}&poll=0`, {format: 'ndjson'})
      await follow.untilMessages(1)
      const [live] = await fill(server, 'p', 1, () => 'live')
      await follow.untilMessages(2)
      assertIds(follow, [ids[2]!, live!], 'poll=0 follows')
      assert.ok(!follow.ended)
      // A poll is no subscriber: nothing published reaches it.
      assert.equal(server.bus.subscriberCount, 1)
    })

    it('a poll says Connection: close, so that a client keeping connections (a keep-alive Agent) does not send its next request on it', async () => {
      const server = await startBus()
      await fill(server, 'k', 2, (i) => `m${i}`)
      const agent = new Agent({keepAlive: true, maxSockets: 1})
      const get = (path: string, method = 'GET') =>
        new Promise<{status: number; body: string; connection: string | undefined}>((resolve, reject) => {
          const req = httpRequest(`${server.url()}${path}`, {method, agent, headers: {'Content-Type': 'text/plain'}}, (res) => {
            let body = ''
            res.setEncoding('utf8')
            res.on('data', (text: string) => (body += text))
            res.on('end', () => resolve({status: res.statusCode!, body, connection: res.headers.connection}))
          })
          req.on('error', reject)
          req.end(method === 'POST' ? 'more' : undefined)
        })
      try {
        for (let i = 0; i < 20; i++) {
          const polled = await get('/msgbus/k?poll=1&format=raw')
          assert.equal(polled.status, 200)
          assert.equal(polled.connection, 'close')
          assert.equal(polled.body.split('\n').length, 3 + i)
          assert.equal((await get('/msgbus/k', 'POST')).status, 204)
        }
      } finally {
        agent.destroy()
      }
    })

    it('HEAD answers the resume headers and nothing else', async () => {
      const server = await startBus({history: 2})
      const ids = await fill(server, 'h', 4, (i) => `m${i}`)
      const reply = await request(`${server.url()}/msgbus/h`, {method: 'HEAD', headers: {'Last-Event-ID': ids[0]!}})
      assert.equal(reply.status, 200)
      assert.equal(reply.headers['msgbus-gap'], 'expired')
      assert.equal(reply.headers['msgbus-replay-from'], ids[1])
      assert.equal(reply.body.length, 0)
    })
  })

  it('ids across a restart without a history dir: the new server issues greater ids, and an id of the old one is expired', async () => {
    const first = await startBus()
    const old = await fill(first, 'r', 5, (i) => `m${i}`)
    await first.stop()
    // A server knows nothing of an earlier run's ids: its first ones are after its start time. Two servers
    // in one process within one millisecond would issue ids in the same millisecond (see the report).
    await until(() => Date.now() > Number(old[4]!.split('-')[0]), 'the next millisecond')
    const second = await startBus()
    assert.notEqual(portOf(second), portOf(first))
    const [next] = await fill(second, 'r', 1, () => 'after the restart')
    assert.ok(compareMessageIds(next!, old[4]!) > 0, `${next} after ${old[4]}`)
    const resumed = await poll(second, '/msgbus/r', {format: 'ndjson', headers: {'Last-Event-ID': old[4]!}})
    assert.equal(resumed.headers['msgbus-gap'], 'expired')
    const gap = gapOf(resumed.events[0])
    assert.deepEqual([gap.reason, gap.after], ['expired', old[4]])
    assert.equal(gap.from, resumed.headers['msgbus-replay-from'])
    assert.ok(compareMessageIds(gap.from, old[4]!) > 0 && compareMessageIds(gap.from, next!) < 0, `the new server's start, ${gap.from}`)
    assertIds(resumed, [next!], 'what the new server has')
  })
})
