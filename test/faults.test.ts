// Faults (issue 6): subscribers that die mid-message, thousands that drop at
// once, and churn, against `msgbus serve` in its own process with real
// sockets and the real load tools (tools/processes.ts, tools/load-run.ts, as
// the soak runs them). Memory is read after a full garbage collection in the
// server (tools/proc.ts GC_PROBE_NODE_ARGS), so a leak of a few MiB shows
// instead of hiding in the heap's saw-tooth. What is asserted is what
// happened (nothing lost, the count back, memory back), not how fast this
// machine did it: the load runs until it has done its amount, however long
// that takes.
import assert from 'node:assert/strict'
import {once} from 'node:events'
import {connect, type Socket} from 'node:net'
import {performance} from 'node:perf_hooks'
import {Churner, drained, pubReport, Serve, startTestPub, stopTestSub, subscribersLive} from '../tools/load-run.js'
import type {GcProbe} from '../tools/proc.js'
import {startTestSub, stop, stopAll} from '../tools/processes.js'
import {Changes} from '../tools/wait.js'
import {BIN, dechunk, request, sleep, splitParts, until, type Part} from './support/harness.js'
import {randomSource} from './support/random.js'

const MiB = 1024 * 1024
const mib = (bytes: number): string => `${(bytes / MiB).toFixed(1)} MiB`

/**
 * Bounds on the server's memory after a fault, against a baseline taken after
 * a warm-up (so compiled code and grown pools are in both). The live heap
 * (after a full GC) came back within 0.3-0.8 MiB in every run here, so +3 MiB
 * leaves room for noise while a leak of 1 KiB per connection (5 MiB for the
 * 5,000 dropped at once, 10 MiB for the 10,000 churned) fails: checked by
 * adding one to a copy of the server (+5.8 and +10.5 MiB, both failed).
 * Buffers (`external`, outside the heap) get the same bound (a leak of a
 * 1 KiB Buffer per connection failed both tests too).
 *
 * RSS comes back only as far as V8 and the allocator give pages back: V8
 * shrinks its heap a few seconds after the garbage goes, and glibc keeps some
 * freed native memory. After the churn it stayed within +30 % here: the bound
 * is +50 %. After 5,000 connections at once it came back to +1 to +50 % of the
 * baseline, sometimes staying near the level with them held: there the bound
 * is that level (with the 5,000 held), so RSS must not grow after they go.
 */
const HEAP_GROWTH = 3 * MiB
const EXTERNAL_GROWTH = 3 * MiB
const RSS_GROWTH = 0.5

function memoryLine(what: string, before: GcProbe, after: GcProbe): string {
  return (
    `${what}: live heap ${mib(before.heap)} → ${mib(after.heap)} (${mib(after.heap - before.heap)}), ` +
    `heap total ${mib(before.heapTotal)} → ${mib(after.heapTotal)}, RSS ${mib(before.rss)} → ${mib(after.rss)}, external ${mib(before.external)} → ${mib(after.external)}`
  )
}

/** The baseline: the least of each figure over three probes a second apart (a transient buffer or page in one probe does not set it). */
async function baselineMemory(server: Serve): Promise<GcProbe> {
  const probes: GcProbe[] = []
  for (let i = 0; i < 3; i++) {
    if (i > 0) await sleep(1000)
    probes.push(await server.probe())
  }

  const least = (key: keyof GcProbe) => Math.min(...probes.map((p) => p[key]))
  return {heap: least('heap'), heapTotal: least('heapTotal'), rss: least('rss'), external: least('external'), arrayBuffers: least('arrayBuffers'), gcMs: least('gcMs')}
}

/**
 * The server's memory once it has settled: V8 gives the pages of a heap that
 * has shrunk back to the system a few seconds after the garbage goes (its
 * memory reducer), so RSS comes down only then. Probes (a full GC each) every
 * second until both figures are within their bounds, or `ms` have passed;
 * returns the last probe, for assertMemoryBack() to judge.
 */
async function settledMemory(server: Serve, baseline: GcProbe, ms = 10_000): Promise<GcProbe> {
  let probe = await server.probe()
  const within = () => probe.heap <= baseline.heap + HEAP_GROWTH && probe.external <= baseline.external + EXTERNAL_GROWTH && probe.rss <= baseline.rss * (1 + RSS_GROWTH)
  await until(async () => within() || ((probe = await server.probe()), within()), 'memory to settle', {timeoutMs: ms, everyMs: 1000}).catch(() => undefined)
  return probe
}

function assertMemoryBack(what: string, before: GcProbe, after: GcProbe, rssLimit = before.rss * (1 + RSS_GROWTH)): void {
  const line = memoryLine(what, before, after)
  process.stderr.write(`      ${line}\n`)
  assert.ok(after.heap <= before.heap + HEAP_GROWTH, `${line}: the live heap grew more than ${mib(HEAP_GROWTH)}`)
  assert.ok(after.external <= before.external + EXTERNAL_GROWTH, `${line}: external memory (buffers) grew more than ${mib(EXTERNAL_GROWTH)}`)
  assert.ok(after.rss <= rssLimit, `${line}: RSS over ${mib(rssLimit)}`)
}

/** The server did not crash, and said nothing alarming. */
function assertHealthy(server: Serve): void {
  assert.ok(server.alive, `the server exited (${server.exitCode}):\n${server.cli.lines.slice(-15).join('\n')}`)
  const alarming = server.warnings.filter((line) => /uncaught|unhandled|exception|TypeError|RangeError|EMFILE|ENFILE|heap out of memory/i.test(line))
  assert.deepEqual(alarming, [], 'the server logged errors')
}

/**
 * A subscription on a raw socket that keeps what it receives without copying
 * it on every read (8 MiB arrives in hundreds of reads), and parses it once.
 */
class StreamClient {
  readonly chunks: Buffer[] = []
  bytes = 0
  closed = false
  onData?: () => void
  private readonly changes = new Changes()

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk)
      this.bytes += chunk.length
      this.onData?.()
      this.changes.notify()
    })
    socket.on('close', () => {
      this.closed = true
      this.changes.notify()
    })
    socket.on('error', () => {})
  }

  static async open(port: number, path: string): Promise<StreamClient> {
    const socket = connect({host: '127.0.0.1', port})
    await once(socket, 'connect')
    const client = new StreamClient(socket)
    socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`)
    await client.until(() => {
      const data = client.data()
      const headEnd = data.indexOf('\r\n\r\n')
      return headEnd > 0 && dechunk(data.subarray(headEnd + 4)).payload.length > 0
    }, 5000, 'the stream to open')
    return client
  }

  data(): Buffer {
    if (this.chunks.length > 1) this.chunks.splice(0, this.chunks.length, Buffer.concat(this.chunks))
    return this.chunks[0] ?? Buffer.alloc(0)
  }

  parts(): Part[] {
    const data = this.data()
    const headEnd = data.indexOf('\r\n\r\n')
    const boundary = /boundary=([^\r\n;]+)/.exec(data.subarray(0, headEnd).toString('latin1'))![1]!
    return splitParts(dechunk(data.subarray(headEnd + 4)).payload, boundary)
  }

  until(test: () => boolean, timeoutMs: number, what: string): Promise<void> {
    return until(test, () => `${what} (${this.bytes} bytes)`, {timeoutMs, everyMs: 100, changes: this.changes, stop: () => this.closed && 'the connection closed'})
  }
}

function post(server: Serve, channel: string, body: Buffer | string, type = 'application/octet-stream') {
  return request(`${server.url}/msgbus/${channel}`, {method: 'POST', headers: {'Content-Type': type}, body})
}

describe('faults @slow', function () {
  // Bounds on a defect, not estimates: each test takes 15-25 s here, longer on a busy machine, as its load runs until done.
  this.timeout(240_000)
  let sockets: Socket[] = []

  afterEach(async () => {
    for (const socket of sockets) socket.destroy()
    sockets = []
    await stopAll(2000)
  })

  it('a subscriber reset part-way through an 8 MiB message: the server lives, the others get it whole and the next ones too', async () => {
    const server = await Serve.start(BIN, ['--stats', '1'], 200_000)
    const keepers = await Promise.all([1, 2, 3].map(() => StreamClient.open(server.port, '/msgbus/big')))
    const reset = await StreamClient.open(server.port, '/msgbus/big')
    const dropped = await StreamClient.open(server.port, '/msgbus/big')
    const everyone = [...keepers, reset, dropped]
    sockets = everyone.map((c) => c.socket)
    // Nobody reads: the server hands the message to every subscriber, and holds most of it, unsent, for each.
    for (const client of everyone) client.socket.pause()
    const random = randomSource('faults: 8 MiB reset')
    const first = random.bytes(8 * MiB)
    const published = await post(server, 'big', first)
    assert.equal(published.status, 204)
    assert.equal(published.headers['msgbus-subscribers'], '5')

    // One reads 1 MiB of it and resets the connection (RST) right there; another is closed without reading any.
    const resetFrom = reset.bytes
    reset.onData = () => {
      if (reset.bytes - resetFrom >= MiB && !reset.socket.destroyed) reset.socket.resetAndDestroy()
    }
    reset.socket.resume()
    await reset.until(() => reset.closed, 10_000, 'the reset')
    assert.ok(reset.bytes - resetFrom < first.length, `the reset subscriber read ${reset.bytes - resetFrom} bytes: the whole message, not part of it`)
    dropped.socket.destroy()

    // The others now read: the message whole, byte for byte.
    for (const client of keepers) client.socket.resume()
    await Promise.all(keepers.map((c) => c.until(() => c.bytes >= first.length, 20_000, 'the 8 MiB message')))
    await server.statsUntil((v) => v.subscribers === 3, 15_000, 'subscribers=3 after the two left')
    for (const client of keepers) {
      await client.until(() => client.parts().length >= 1, 5000, 'the whole first part')
      assert.ok(client.parts()[0]!.body.equals(first), 'the 8 MiB body, byte for byte')
    }

    // And the next messages, to the three left.
    const second = Buffer.from('after the reset')
    const third = random.bytes(4 * MiB)
    for (const body of [second, third]) {
      const reply = await post(server, 'big', body)
      assert.equal(reply.status, 204)
      assert.equal(reply.headers['msgbus-subscribers'], '3')
    }

    for (const client of keepers) {
      await client.until(() => client.bytes > first.length + third.length && client.parts().length >= 3, 20_000, 'three parts')
      const parts = client.parts()
      assert.equal(parts.length, 3)
      assert.ok(parts[1]!.body.equals(second))
      assert.ok(parts[2]!.body.equals(third))
    }

    assertHealthy(server)
    server.cli.child.kill('SIGTERM')
    assert.equal(await server.cli.exit, 0, 'a graceful stop')
  })

  it('5,000 subscribers killed at once: the count comes back within seconds, a steady subscriber misses nothing, memory comes back', async () => {
    const server = await Serve.start(BIN, ['--stats', '1'], 230_000)
    const steady = startTestSub(BIN, server.url, 'steady', 1, 'test-sub steady', 220)
    await subscribersLive([steady], 20_000)

    // Warm-up: 300 subscribers come and are killed, so that the baseline has the code and pools they need.
    const warm = startTestSub(BIN, server.url, 'herd', 300, 'test-sub warm-up', 30)
    await subscribersLive([warm], 20_000)
    warm.cli.child.kill('SIGKILL')
    await server.statsUntil((v) => v.subscribers === 1, 30_000, 'subscribers=1 after the warm-up')
    const baseline = await baselineMemory(server)

    const herd = startTestSub(BIN, server.url, 'herd', 5000, 'test-sub herd', 200)
    await subscribersLive([herd], 100_000)
    await server.statsUntil((v) => v.subscribers === 5001, 30_000, 'subscribers=5001')
    const held = await server.probe()
    process.stderr.write(`      with 5,000 more subscribers: live heap ${mib(held.heap)}, RSS ${mib(held.rss)}\n`)

    const pub = startTestPub(BIN, server.url, 'steady', 100, 6)
    // Once the steady subscriber is receiving: the kill comes while the server publishes.
    await until(() => steady.lastBusyAt > 0, 'the steady subscriber to receive', 20_000)
    // Kill them while the server writes to them: a message to every one of them, then SIGKILL.
    const toHerd = post(server, 'herd', 'x'.repeat(4096), 'text/plain')
    herd.cli.child.kill('SIGKILL')
    const killedAt = performance.now()
    await toHerd.catch(() => undefined)
    // The kernel closes their 5,000 sockets: the server must see every one go (a server that noticed only on its next
    // write to them would keep counting them: nothing more is published to them).
    const back = await server.statsUntil((v) => v.subscribers === 1, 30_000, 'subscribers=1 after the kill')
    process.stderr.write(`      5,000 killed: the server counted 1 subscriber again ${((back.at - killedAt) / 1000).toFixed(1)} s later (stats every 1 s)\n`)

    const {report: published, code: pubCode} = await pubReport(pub)
    assert.equal(pubCode, 0, `test-pub: ${JSON.stringify(published)}`)
    assert.ok(await drained([steady], performance.now(), 30_000, server.port), 'the steady subscriber was still receiving')
    const {report, code} = await stopTestSub(steady)
    const figures = JSON.stringify(report)
    assert.equal(code, 0, figures)
    assert.equal(report.received, published.published, `received every message: ${figures}`)
    assert.equal(report.lost, 0, figures)
    assert.equal(report.duplicates, 0, figures)
    assert.equal(report.out_of_order, 0, figures)
    assert.equal(report.reconnects, 0, figures)
    assert.equal(report.connections.failed, 0, figures)
    // No stall either: the server's event loop was not held up for seconds while the 5,000 went (tens of ms here,
    // hundreds beside two busy loops; the bound is for a server that blocks, not for a busy machine).
    assert.ok(report.latency_ms.max < 5000, `latency max ${report.latency_ms.max} ms: ${figures}`)

    assertMemoryBack('5,000 dropped', baseline, await settledMemory(server, baseline), Math.max(baseline.rss * (1 + RSS_GROWTH), held.rss))
    assertHealthy(server)
  })

  it('churn of 10,000 subscriptions at up to 1,000 a second (RST, FIN, mid-head) under 100 msg/s: 200 steady subscribers miss nothing, every FIN is answered, memory comes back', async () => {
    const server = await Serve.start(BIN, ['--stats', '1'], 230_000)
    const steady = startTestSub(BIN, server.url, 'churn', 200, 'test-sub steady', 220)
    await subscribersLive([steady], 30_000)
    // Up to 1,000 a second, each held 0-500 ms from the server's answer, at most 300 at once (about what 1,000 a second
    // needs): a server that falls behind slows the churn instead of being handed a backlog it cannot read for seconds.
    const churner = new Churner(server.port, '/msgbus/churn', 1000, {random: randomSource('faults: churn holds').next, maxOpen: 300, holdFrom: 'answer'})

    // Warm-up: 2 s of the same, then the baseline.
    churner.start()
    const warmPub = startTestPub(BIN, server.url, 'churn', 100, 2, 'test-pub warm-up')
    const warmPublished = (await pubReport(warmPub)).report.published
    await churner.stop()
    await server.statsUntil((v) => v.subscribers === 200, 30_000, 'subscribers=200 after the warm-up')
    const baseline = await baselineMemory(server)
    const warmOpened = churner.counts.opened

    // 10,000 churned connections (10 s here; longer when the machine cannot open 1,000 a second), publishing all along.
    churner.start()
    const pub = startTestPub(BIN, server.url, 'churn', 100, 150)
    const churnedSoFar = () => churner.counts.opened - warmOpened
    await until(() => churnedSoFar() >= 10_000, () => `10,000 churned connections (${churnedSoFar()} so far)`, {timeoutMs: 150_000, everyMs: 100})
    // SIGTERM: test-pub stops, waits for the answers to what it sent, and reports.
    await stop(pub.child, 15_000)
    const {report: published, code: pubCode} = await pubReport(pub)
    const counts = await churner.stop()
    const churned = counts.opened - warmOpened
    process.stderr.write(
      `      churned ${churned} connections (all: ${counts.rst} RST, ${counts.fin} FIN, ${counts.midHead} mid-head, ${counts.streamed} streamed); ` +
        `connect → 200 ms p50 ${counts.answerMs.p50} p99 ${counts.answerMs.p99} max ${counts.answerMs.max}; ` +
        `FIN → close ms p99 ${counts.finCloseMs.p99} max ${counts.finCloseMs.max}\n`,
    )
    assert.equal(pubCode, 0, `test-pub: ${JSON.stringify(published)}`)
    assert.ok(published.published > 0, 'test-pub published meanwhile')
    assert.deepEqual(
      {connectErrors: counts.connectErrors, refused: counts.refused, finUnanswered: counts.finUnanswered, errors: counts.errors},
      {connectErrors: 0, refused: 0, finUnanswered: 0, errors: []},
    )
    assert.ok(counts.streamed > churned / 3, `only ${counts.streamed} churned subscriptions opened before they left`)
    await server.statsUntil((v) => v.subscribers === 200, 30_000, 'subscribers=200 after the churn')

    assert.ok(await drained([steady], performance.now(), 30_000, server.port), 'the steady subscribers were still receiving')
    // Memory as at the baseline: the 200 steady subscribers connected, nothing else.
    const after = await settledMemory(server, baseline)
    const {report, code} = await stopTestSub(steady)
    const figures = JSON.stringify(report)
    assert.equal(code, 0, figures)
    assert.equal(report.received, (warmPublished + published.published) * 200, `every subscriber received every message: ${figures}`)
    assert.equal(report.lost, 0, figures)
    assert.equal(report.duplicates, 0, figures)
    assert.equal(report.out_of_order, 0, figures)
    assert.equal(report.reconnects, 0, figures)
    assert.equal(report.connections.failed, 0, figures)
    assertMemoryBack(`${churned} churned`, baseline, after)
    assertHealthy(server)
  })
})
