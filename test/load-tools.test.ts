// `msgbus test-pub` and `msgbus test-sub`, the load tools: the built CLI in
// its own processes against real servers (in this process, or `msgbus serve`
// in its own), and small stand-in servers on raw sockets whose streams carry
// crafted markers, so loss, duplicates, order and reconnects are known.
//
// test-sub is stopped with SIGINT (it reports and exits) once every message
// due has reached it, rather than given a -d that a busy machine may outrun:
// the -d tests say what -d does.
import assert from 'node:assert/strict'
import {once} from 'node:events'
import {chmodSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync} from 'node:fs'
import {createServer, type Server, type Socket} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import type {BusServer} from '../src/lib/index.js'
import type {TestPubReport as PubReport, TestSubReport as SubReport} from '../src/lib/load/report.js'
import {BatchReader, nativeReader} from '../src/lib/load/batch-reader.js'
import {LatencyHistogram} from '../src/lib/load/latency.js'
import {nowMicros} from '../src/lib/load/marker.js'
import {SubscriptionStream} from '../src/lib/load/stream-reader.js'
import {BIN, documentOf, dropStreams, msgbus, MsgbusProcess, portOf, ROOT, run, ServeProcess, startBus, stopAll, streamsBesides, Subscription, textMessage, until, type RunResult} from './support/harness.js'
import {unreceived} from './support/sockets.js'

const MARKER = /^(.+); msgbus-load=(\d+)\.(\d+)\.(\d+)$/

const serves = new Set<ServeProcess>()
const fakes = new Set<Server>()
const dirs: string[] = []

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'msgbus-load-'))
  dirs.push(dir)
  return dir
}

async function serve(args: string[] = [], port = 0): Promise<ServeProcess> {
  const process = await ServeProcess.start(['-p', String(port), '-l', '127.0.0.1', ...args])
  serves.add(process)
  return process
}

function urlOf(serveProcess: ServeProcess): string {
  return `http://127.0.0.1:${serveProcess.port()}`
}

/**
 * Ends a test-sub with SIGINT (it then reports and exits) once all it is due
 * has reached it: the server on `port` has handed the kernel every delivery
 * (`delivered()` holds) and nothing it wrote waits unread in a socket queue.
 * test-sub counts what it reads as it reads it, so its report then holds
 * every message, however slow this machine was.
 */
async function stopOnceDelivered(sub: MsgbusProcess, port: number, delivered: () => boolean = () => true): Promise<RunResult> {
  await until(() => delivered() && unreceived(port) === 0, () => `every delivery to be read (${unreceived(port)} bytes unread)`, {timeoutMs: 60_000, everyMs: 50})
  sub.child.kill('SIGINT')
  return sub.exit()
}

/** test-sub in the background against an in-process bus, once the server counts every subscription. */
async function subscribed(server: BusServer, args: string[], connections: number, env: NodeJS.ProcessEnv = {}): Promise<MsgbusProcess> {
  const before = server.bus.subscriberCount
  const sub = new MsgbusProcess(['test-sub', '--url', server.url(), '-n', String(connections), ...args], env)
  await sub.until(() => server.bus.subscriberCount >= before + connections, `${connections} subscriptions`, 60_000)
  return sub
}

/** How test-sub reads by default here: through an io_uring where the kernel's reads as recv(2) would (read-many.c's probe), as a reader opened here finds. */
const NATIVE_READS = (() => {
  const {functions, why} = nativeReader()
  return functions ? new BatchReader(functions, true).how() : `Node (native reader: ${why})`
})()

/** The in-process bus has handed out `count` deliveries since `before` (counters().delivered then). */
function deliveredSince(server: BusServer, before: number, count: number): () => boolean {
  return () => server.counters().delivered - before >= count
}

/** The default bodies test-pub sends, `<h1>hello world N</h1>`, in bytes for messages 0..count-1. */
function defaultBodyBytes(count: number): number {
  let bytes = 0
  for (let n = 0; n < count; n++) bytes += `<h1>hello world ${n}</h1>`.length
  return bytes
}

/** A stream a stand-in server sends: multipart parts with markers, in chunks. */
class FakeStream {
  constructor(readonly socket: Socket) {}

  private chunk(data: string | Buffer): void {
    const bytes = Buffer.from(data)
    this.socket.write(Buffer.concat([Buffer.from(`${bytes.length.toString(16)}\r\n`), bytes, Buffer.from('\r\n')]))
  }

  /** One message of `publisher`, sequence number `seq`, sent just now. */
  part(seq: number, publisher = 7, body = `message ${seq}`): void {
    const type = `text/plain; msgbus-load=${publisher}.${seq}.${Date.now() * 1000}`
    const length = Buffer.byteLength(body)
    this.chunk(`Content-Type: ${type}\r\nContent-Length: ${length}\r\nContent-Location: /msgbus/flood\r\nMessage-ID: 1-${seq}\r\n\r\n${body}\r\n--B\r\n`)
  }
}

/**
 * A stand-in for `msgbus serve` on a raw socket: answers each GET with a
 * chunked multipart/x-mixed-replace stream and hands it to `onStream` with the
 * connection's number (0, 1, ...).
 */
async function fakeBus(onStream: (stream: FakeStream, index: number) => void): Promise<string> {
  let connections = 0
  const server = createServer((socket) => {
    socket.on('error', () => {})
    let head = ''
    const onData = (chunk: Buffer) => {
      head += chunk.toString('latin1')
      if (!head.includes('\r\n\r\n')) return
      socket.off('data', onData)
      assert.match(head, /^GET \/msgbus\/flood\?gaps=1 HTTP\/1\.1\r\n/)
      socket.write('HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace;boundary=B\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n--B\r\n\r\n')
      onStream(new FakeStream(socket), connections++)
    }

    socket.on('data', onData)
  })
  fakes.add(server)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const address = server.address() as {port: number}
  return `http://127.0.0.1:${address.port}`
}

/**
 * A loopback port nothing listens on: tcpmux's, below the ephemeral range, so
 * no other connection on a busy machine takes it in the meantime.
 */
const CLOSED_PORT = 1

function assertSubKeys(report: SubReport): void {
  const counts = ['received', 'lost', 'duplicates', 'out_of_order', 'reconnects', 'bytes'] as const
  for (const key of counts) assert.ok(Number.isInteger(report[key]) && report[key] >= 0, `${key}: ${report[key]}`)
  for (const key of ['requested', 'connected', 'failed'] as const) {
    assert.ok(Number.isInteger(report.connections[key]) && report.connections[key] >= 0, `connections.${key}: ${report.connections[key]}`)
  }

  for (const key of ['p50', 'p90', 'p99', 'max'] as const) assert.equal(typeof report.latency_ms[key], 'number', `latency_ms.${key}`)
  for (const key of ['rate', 'cpu_s', 'duration_s', 'window_s'] as const) assert.equal(typeof report[key], 'number', key)
  const {p50, p90, p99, max} = report.latency_ms
  assert.ok(p50 <= p90 && p90 <= p99 && p99 <= max, `percentiles in order: ${JSON.stringify(report.latency_ms)}`)
}

describe('load tools: test-pub and test-sub', function () {
  this.timeout(20000)

  afterEach(async () => {
    MsgbusProcess.killAll()
    await Promise.all([...serves].map((process) => process.stop('SIGKILL')))
    serves.clear()
    for (const server of fakes) server.close()
    fakes.clear()
    await stopAll()
  })

  after(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, {recursive: true, force: true})
  })

  describe('test-pub', () => {
    it('-r 200 -d 5 publishes 1000 messages (within 1%) and reports a rate within 1% of 200 @slow', async () => {
      const server = await startBus()
      const result = await msgbus(['test-pub', '--url', server.url(), '-r', '200', '-d', '5', '--json'], {timeoutMs: 15000})
      assert.equal(result.code, 0, result.stderr)
      const report = documentOf<PubReport>(result)
      assert.ok(report.published >= 990 && report.published <= 1010, `published ${report.published}`)
      assert.ok(Math.abs(report.rate - 200) <= 2, `rate ${report.rate}`)
      assert.ok(Math.abs(report.duration_s - 5) <= 0.1, `duration_s ${report.duration_s}`)
      assert.equal(report.errors, 0)
      assert.equal(report.requested_rate, 200)
      assert.equal(server.counters().published, report.published, 'what the server accepted')
    })

    it('--count N stops at N, paced or flat out @slow', async () => {
      const server = await startBus()
      const flat = documentOf<PubReport>(await msgbus(['test-pub', '--url', server.url(), '--count', '37', '--json']))
      assert.equal(flat.published, 37)
      assert.equal(server.counters().published, 37)
      const started = Date.now()
      const paced = await msgbus(['test-pub', '--url', server.url(), '-r', '100', '--count', '20', '-d', '60', '--json'])
      assert.equal(paced.code, 0, paced.stderr)
      assert.equal(documentOf<PubReport>(paced).published, 20)
      assert.equal(server.counters().published, 57)
      // 20 at 100/s is 0.2 s; the duration, 60 s. A busy machine may take seconds to start the CLI, never 60.
      assert.ok(Date.now() - started < 15_000, 'the count ends it, not the duration')
    })

    it('--connections 4 --pipeline 8 -r 0 --count 2000 publishes exactly 2000, each connection in order from 0 @slow', async () => {
      const server = await startBus()
      const subscription = await Subscription.open(server, '/msgbus/flood')
      const result = await msgbus(['test-pub', '--url', server.url(), '--connections', '4', '--pipeline', '8', '-r', '0', '--count', '2000', '--json'])
      assert.equal(result.code, 0, result.stderr)
      const report = documentOf<PubReport>(result)
      assert.equal(report.published, 2000)
      assert.equal(report.errors, 0)
      assert.equal(report.connections, 4)
      assert.equal(server.counters().published, 2000)

      const parts = await subscription.waitParts(2000)
      const perPublisher = new Map<string, number[]>()
      for (const part of parts) {
        const match = MARKER.exec(part.headers['content-type'])
        assert.ok(match, part.headers['content-type'])
        perPublisher.set(match[2], [...(perPublisher.get(match[2]) ?? []), Number(match[3])])
      }

      // The marker's sequence numbers count per publisher connection, so a subscriber sees 0, 1, 2... from each.
      assert.equal(perPublisher.size, 4, [...perPublisher.keys()].join(' '))
      for (const [publisher, seqs] of perPublisher) assert.deepEqual(seqs, seqs.map((_, i) => i), `publisher ${publisher}`)
      subscription.close()
    })

    it('-f FILE: bodies arrive byte for byte; -t kept, the marker only in the content type @slow', async () => {
      const server = await startBus()
      const dir = tempDir()
      const file = join(dir, 'frame.png')
      // Binary, with what a careless framer might trip on: CR LF, a delimiter-like line, NULs.
      const bytes = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0]), Buffer.from('\r\n--B\r\n\r\n'), Buffer.alloc(4000, 0xa5)])
      writeFileSync(file, bytes)
      const subscription = await Subscription.open(server, '/msgbus/pictures')
      const result = await msgbus(['test-pub', '--url', server.url(), '-c', 'pictures', '-f', file, '-t', 'image/png', '--count', '3', '--json'])
      assert.equal(result.code, 0, result.stderr)
      const parts = await subscription.waitParts(3)
      assert.equal(parts.length, 3)
      parts.forEach((part, i) => {
        assert.ok(part.body.equals(bytes), `body ${i} byte for byte`)
        const match = MARKER.exec(part.headers['content-type'])
        assert.ok(match, part.headers['content-type'])
        assert.equal(match[1], 'image/png')
        assert.equal(Number(match[3]), i)
        const sent = Number(match[4]) / 1000
        assert.ok(Math.abs(sent - Date.now()) < 10000, `send time ${sent} is a wall-clock time in µs`)
      })
      subscription.close()
    })

    it('--size pads bodies (with spaces) or cuts them to that many bytes @slow', async () => {
      const server = await startBus()
      const subscription = await Subscription.open(server, '/msgbus/flood')
      const padded = await msgbus(['test-pub', '--url', server.url(), '--size', '1000', '--count', '2'])
      assert.equal(padded.code, 0, padded.stderr)
      const cut = await msgbus(['test-pub', '--url', server.url(), '--size', '5', '--count', '1'])
      assert.equal(cut.code, 0, cut.stderr)
      const parts = await subscription.waitParts(3)
      for (const [i, part] of parts.slice(0, 2).entries()) {
        assert.equal(part.body.length, 1000)
        const head = `<h1>hello world ${i}</h1>`
        assert.equal(part.body.toString(), head + ' '.repeat(1000 - head.length))
        assert.match(part.headers['content-type'], /^text\/html; msgbus-load=/)
      }

      assert.equal(parts[2].body.toString(), '<h1>h')
      subscription.close()
    })

    it('a message over the server limit: errors in the JSON, the reason on stderr, non-zero exit', async () => {
      const server = await startBus({maxMessageSize: 100})
      const result = await msgbus(['test-pub', '--url', server.url(), '--size', '1000', '--count', '5', '--json'])
      assert.notEqual(result.code, 0)
      const report = documentOf<PubReport>(result)
      assert.ok(report.errors > 0, `errors ${report.errors}`)
      assert.equal(report.published, 0)
      assert.ok(report.reasons?.some((reason) => reason.startsWith('413 ')), JSON.stringify(report.reasons))
      assert.match(result.stderr, /^msgbus test-pub: .*413 /m)
      assert.equal(server.counters().published, 0)
    })

    it('a closed port: what it set out to do, then one line for the failure on stderr, non-zero exit', async () => {
      const result = await msgbus(['test-pub', '--url', `http://127.0.0.1:${CLOSED_PORT}`, '--count', '3', '--json'])
      assert.notEqual(result.code, 0)
      assert.equal(result.stdout, '')
      assert.match(result.stderr, /^publishing as fast as the server takes them \(no --rate.*\nmsgbus test-pub: .*ECONNREFUSED.*\n$/)
      assert.equal(result.stderr.split('\n').length, 3, result.stderr)
    })

    it('a server that goes away mid-run is an error, not a quiet early exit @slow', async () => {
      const server = await serve()
      const watcher = await Subscription.open(server.port(), '/msgbus/flood')
      const pub = new MsgbusProcess(['test-pub', '--url', urlOf(server), '-r', '50', '-d', '10', '--json'])
      // Mid-run: once its first message is through.
      await watcher.waitParts(1, 15_000)
      await server.stop()
      const result = await pub.exit(5000)
      assert.notEqual(result.code, 0, result.stdout)
      const report = documentOf<PubReport>(result)
      assert.ok(report.published > 0 && report.published < 500, `published ${report.published}`)
      assert.ok(report.errors > 0, JSON.stringify(report))
      assert.match(result.stderr, /^msgbus test-pub: .*closed/m)
    })
  })

  describe('test-sub', () => {
    it('--channels 3 on both: messages go to c-0, c-1, c-2 in turn, each connection gets its channel\'s, nothing counted lost @slow', async () => {
      const server = await startBus()
      const watcher = await Subscription.open(server, '/msgbus/c-1')
      const sub = await subscribed(server, ['-c', 'c', '--channels', '3', '--json'], 30)
      const before = server.counters().delivered
      const pub = await msgbus(['test-pub', '--url', server.url(), '-c', 'c', '--channels', '3', '--connections', '2', '--count', '90', '--json'])
      assert.equal(pub.code, 0, pub.stderr)
      assert.equal(documentOf<PubReport>(pub).published, 90)
      // 30 messages a channel to its 10 connections, and the 30 of c-1 to the watcher.
      const result = await stopOnceDelivered(sub, portOf(server), deliveredSince(server, before, 90 * 10 + 30))
      assert.equal(result.code, 0, result.stderr)
      const report = documentOf<SubReport>(result)
      // 30 messages a channel, 10 connections a channel.
      assert.equal(report.received, 90 * 10)
      assert.deepEqual([report.lost, report.duplicates, report.out_of_order], [0, 0, 0])
      assert.equal((await watcher.waitParts(30)).length, 30)
      assert.ok(watcher.parts().every((part) => part.headers['content-location'] === '/msgbus/c-1'))
    })

    // The native batch reader is the default where it is built (test/batch-reader.test.ts tests it alone); these are its switches.
    // Which way it read shows in read(2) calls (/proc/PID/io syscr): Node reads a socket with read(2), the native reader with an io_uring or recv(2), which that count leaves out.
    for (const [how, env, node, reads] of [
      ['the native reader (the default)', {}, false, NATIVE_READS],
      ['MSGBUS_NATIVE_READ=recv: the native reader, a recv(2) a socket', {MSGBUS_NATIVE_READ: 'recv'}, false, 'native reader, recv(2) a socket (not asked for)'],
      ['MSGBUS_NATIVE_READ=0: every socket through Node', {MSGBUS_NATIVE_READ: '0'}, true, 'Node (MSGBUS_NATIVE_READ=0)'],
    ] as const) {
      it(`reads the same through ${how}: every message to every connection, bytes included @slow`, async () => {
        const server = await startBus()
        const sub = await subscribed(server, ['--json'], 50, env)
        const readCalls = () => Number(/syscr: (\d+)/.exec(readFileSync(`/proc/${sub.child.pid}/io`, 'utf8'))![1])
        const readsBefore = readCalls()
        const before = server.counters().delivered
        const pub = await msgbus(['test-pub', '--url', server.url(), '--connections', '2', '--count', '200', '--json'])
        assert.equal(pub.code, 0, pub.stderr)
        let readCount = 0
        const result = await stopOnceDelivered(sub, portOf(server), () => {
          // Counted before test-sub stops: its end reads files of its own.
          readCount = readCalls() - readsBefore
          return deliveredSince(server, before, 50 * 200)()
        })
        assert.equal(result.code, 0, result.stderr)
        const report = documentOf<SubReport>(result)
        assert.equal(report.received, 50 * 200)
        assert.deepEqual([report.lost, report.duplicates, report.out_of_order, report.reconnects], [0, 0, 0, 0])
        assert.equal(report.reads, reads)
        if (node) assert.ok(readCount >= 50, `through Node: ${readCount} read(2) calls for 10,000 messages on 50 sockets`)
        else assert.ok(readCount < 50, `natively: ${readCount} read(2) calls for 10,000 messages on 50 sockets`)
        assert.equal(report.bytes, 50 * defaultBodyBytes(200))
      })
    }

    it('against a server that frames every stream the 2007 way (serve --framing 2007): every message counted, bytes included @slow', async () => {
      const server = await startBus({framing: '2007'})
      const sub = await subscribed(server, ['--json'], 20)
      const before = server.counters().delivered
      const pub = await msgbus(['test-pub', '--url', server.url(), '--connections', '2', '--count', '100', '--json'])
      assert.equal(pub.code, 0, pub.stderr)
      const result = await stopOnceDelivered(sub, portOf(server), deliveredSince(server, before, 20 * 100))
      assert.equal(result.code, 0, result.stderr)
      const report = documentOf<SubReport>(result)
      assert.equal(report.received, 20 * 100)
      assert.deepEqual([report.lost, report.duplicates, report.out_of_order], [0, 0, 0])
      assert.equal(report.bytes, 20 * defaultBodyBytes(100))
    })

    it('-n 1000 --json while test-pub -r 100 -d 3 runs, then SIGINT: every message to every connection, nothing lost, every key @slow', async function () {
      this.timeout(120_000)
      const started = Date.now()
      const server = await startBus()
      const sub = await subscribed(server, ['--json'], 1000)
      const before = server.counters().delivered
      const pub = await msgbus(['test-pub', '--url', server.url(), '-r', '100', '-d', '3', '--json'])
      assert.equal(pub.code, 0, pub.stderr)
      const published = documentOf<PubReport>(pub).published
      // Paced at 100/s for 3 s: never more; fewer when a busy machine cannot keep test-pub's pace while the bus writes
      // to 1,000 subscribers (138 of 300 once beside two busy loops). The pace itself is the test-pub tests'.
      assert.ok(published >= 1 && published <= 303, `published ${published}`)
      const result = await stopOnceDelivered(sub, portOf(server), deliveredSince(server, before, 1000 * published))
      const wallSeconds = (Date.now() - started) / 1000
      assert.equal(result.code, 0, result.stderr)
      const report = documentOf<SubReport>(result)
      assertSubKeys(report)
      assert.deepEqual(report.connections, {requested: 1000, connected: 1000, failed: 0})
      assert.equal(report.received, 1000 * published)
      assert.equal(report.lost, 0)
      assert.equal(report.duplicates, 0)
      assert.equal(report.out_of_order, 0)
      assert.equal(report.reconnects, 0)
      assert.equal(report.bytes, 1000 * defaultBodyBytes(published))
      // It ran from before test-pub's 3 s until the SIGINT, inside this test's time.
      assert.ok(report.duration_s >= 3 && report.duration_s <= wallSeconds, `duration_s ${report.duration_s} (the test took ${wallSeconds} s)`)
      // The rate is over the publishing window: the first message received to the last, inside the run.
      assert.ok(report.window_s > 0 && report.window_s < report.duration_s, `window_s ${report.window_s}, duration_s ${report.duration_s}`)
      assert.ok(Math.abs(report.rate - report.received / report.window_s) <= 0.01 * report.rate, `rate ${report.rate}`)
      // In ms (not µs, not s): a message's latency is more than nothing and less than the time test-sub ran.
      assert.ok(report.latency_ms.p50 > 0 && report.latency_ms.max <= report.duration_s * 1000, JSON.stringify(report.latency_ms))
      assert.ok(report.cpu_s > 0, `cpu_s ${report.cpu_s}`)
      assert.equal(report.errors, undefined)
    })

    it('the final rate leaves out the idle time before the first message and after the last; the summary is not a progress line @slow', async () => {
      const server = await startBus()
      const sub = await subscribed(server, ['--interval', '1'], 2)
      // Idle first: a progress line, at 0 msg/s, before anything is published.
      await sub.until(() => /^connected 2\/2 failed 0 \| 0 msg\/s /m.test(sub.stderr), 'a progress line', 15_000)
      const before = server.counters().delivered
      const pub = await msgbus(['test-pub', '--url', server.url(), '-r', '20', '--count', '10', '--json'])
      assert.equal(pub.code, 0, pub.stderr)
      const published = documentOf<PubReport>(pub).published
      // Idle after: another progress line once everything has arrived.
      const seen = sub.stderr.length
      await until(deliveredSince(server, before, 2 * published), 'the deliveries', {timeoutMs: 30_000})
      await sub.until(() => /^connected /m.test(sub.stderr.slice(seen)), 'a progress line after the messages', 15_000)
      const result = await stopOnceDelivered(sub, portOf(server))
      assert.equal(result.code, 0, result.stderr)
      const [first, ...rest] = result.stdout.trimEnd().split('\n')
      assert.match(first, new RegExp(`^total: ${2 * published} msgs received \\(\\d+ bytes\\) in [\\d.]+ s, 2/2 connected, 0 failed$`))
      const window = Number(/^ {2}rate: ([\d.]+) msg\/s, [\d.]+ MB\/s from the first message to the last \(([\d.]+) s\)$/.exec(rest[0])?.[2])
      const duration = Number(/ in ([\d.]+) s,/.exec(first)?.[1])
      // Messages went out over 10 / 20 s; test-sub ran from before the first progress line until after the second.
      assert.ok(window > 0 && window < duration, `window ${window} s, the run ${duration} s:\n${result.stdout}`)
      assert.deepEqual(rest.slice(1).map((line) => line.replace(/[\d.]+/g, 'N')), [
        '  lost N, duplicates N, out of order N, reconnects N, recovered N, gaps N',
        '  latency ms: pN N pN N pN N max N',
        `  cpu: N s (reads: ${NATIVE_READS.replace(/[\d.]+/g, 'N')})`,
      ])
    })

    it('several test-pub runs, at once and one after another, with several connections each: nothing lost or repeated @slow', async () => {
      const server = await startBus()
      const sub = await subscribed(server, ['--json'], 3)
      const before = server.counters().delivered
      const [a, b] = await Promise.all([
        msgbus(['test-pub', '--url', server.url(), '--connections', '4', '-r', '400', '-d', '1', '--json']),
        msgbus(['test-pub', '--url', server.url(), '--connections', '2', '--pipeline', '4', '--count', '500', '--json']),
      ])
      const c = await msgbus(['test-pub', '--url', server.url(), '--count', '100', '--json'])
      const published = [a, b, c].reduce((sum, result) => {
        assert.equal(result.code, 0, result.stderr)
        return sum + documentOf<PubReport>(result).published
      }, 0)
      const result = await stopOnceDelivered(sub, portOf(server), deliveredSince(server, before, 3 * published))
      const report = documentOf<SubReport>(result)
      assert.equal(result.code, 0, result.stdout + result.stderr)
      assert.equal(report.received, 3 * published)
      assert.equal(report.lost, 0)
      assert.equal(report.duplicates, 0)
      assert.equal(report.out_of_order, 0)
    })

    describe('loss, duplicates and order, from crafted markers', () => {
      async function against(seqs: number[]): Promise<{result: RunResult; report: SubReport}> {
        const url = await fakeBus((stream) => {
          for (const seq of seqs) stream.part(seq)
        })
        const result = await msgbus(['test-sub', '--url', url, '-d', '1', '--json'])
        return {result, report: documentOf<SubReport>(result)}
      }

      it('a gap is loss (non-zero exit); a repeat a duplicate; a late one out of order, not lost @slow', async () => {
        const [gap, repeat, late] = await Promise.all([against([0, 1, 2, 4, 5]), against([0, 1, 1, 2]), against([0, 2, 1, 3])])

        assert.equal(gap.report.received, 5)
        assert.deepEqual([gap.report.lost, gap.report.duplicates, gap.report.out_of_order], [1, 0, 0])
        assert.notEqual(gap.result.code, 0)
        assert.match(gap.result.stderr, /: 1 message lost\n$/)

        assert.equal(repeat.report.received, 4)
        assert.deepEqual([repeat.report.lost, repeat.report.duplicates, repeat.report.out_of_order], [0, 1, 0])
        assert.equal(repeat.result.code, 0, repeat.result.stderr)

        assert.equal(late.report.received, 4)
        assert.deepEqual([late.report.lost, late.report.duplicates, late.report.out_of_order], [0, 0, 1])
        assert.equal(late.result.code, 0, late.result.stderr)

        for (const {report} of [gap, repeat, late]) {
          assertSubKeys(report)
          assert.deepEqual(report.connections, {requested: 1, connected: 1, failed: 0})
          // In ms: the parts were sent while it ran, so none took longer than its run.
          assert.ok(report.latency_ms.max <= report.duration_s * 1000, JSON.stringify(report.latency_ms))
        }
      })

      it('publishers are told apart: interleaved sequences are each checked on their own @slow', async () => {
        const url = await fakeBus((stream) => {
          for (const [publisher, seq] of [[1, 0], [2, 0], [2, 1], [1, 1], [1, 2], [2, 2], [2, 4]]) stream.part(seq, publisher)
        })
        const result = await msgbus(['test-sub', '--url', url, '-d', '1', '--json'])
        const report = documentOf<SubReport>(result)
        assert.deepEqual([report.received, report.lost, report.duplicates, report.out_of_order], [7, 1, 0, 0])
      })
    })

    it('a stream the server closes mid-run is reopened and counted as a reconnect; what it missed meanwhile is lost @slow', async () => {
      let reopened = false
      const url = await fakeBus((stream, index) => {
        if (index === 0) {
          stream.part(0)
          stream.part(1)
          setTimeout(() => stream.socket.destroy(), 200)
        } else {
          // 2 went out while this subscriber was away.
          stream.part(3)
          stream.part(4)
          reopened = true
        }
      })
      const sub = new MsgbusProcess(['test-sub', '--url', url, '--json'])
      const result = await stopOnceDelivered(sub, Number(new URL(url).port), () => reopened)
      const report = documentOf<SubReport>(result)
      assert.equal(report.reconnects, 1)
      assert.deepEqual(report.connections, {requested: 1, connected: 1, failed: 0})
      assert.deepEqual([report.received, report.lost, report.duplicates, report.out_of_order], [4, 1, 0, 0])
      assert.notEqual(result.code, 0)
    })

    describe('resume after the server drops the subscriptions', () => {
      /** A message of publisher 7 with sequence number `seq`, sent now, as test-pub marks its messages. */
      const marked = (seq: number) => textMessage('flood', `injected ${seq}`, `text/plain; msgbus-load=7.${seq}.${nowMicros()}`)

      /** Drops every subscription and, before test-sub can come back (it waits 100 ms), publishes `count` marked messages from `seq` on. */
      const dropAndInject = (server: BusServer, seq: number, count: number) => dropStreams(server, Array.from({length: count}, (_, k) => marked(seq + k))).dropped

      /** `count` streams are back, and the server has written each of them the newest message. */
      const caughtUp = (server: BusServer, dropped: Socket[], count: number) => () =>
        streamsBesides(server, dropped) === count && [...server.subscriptions].every((stream) => stream.lastId === server.bus.log.newest)

      it('dropped twice while test-pub runs: each connection resumes after its last id, nothing lost, what came meanwhile recovered @slow', async function () {
        this.timeout(60_000)
        const server = await startBus()
        const sub = await subscribed(server, ['--json', '--interval', '1'], 3)
        const pub = new MsgbusProcess(['test-pub', '--url', server.url(), '-r', '200', '--count', '600'])
        const dropped: Socket[] = []
        for (let drop = 0; drop < 2; drop++) {
          await until(() => server.counters().published >= (drop + 1) * 200 && streamsBesides(server, dropped) === 3, 'published messages, and the subscriptions back', 30_000)
          dropped.push(...dropAndInject(server, drop * 10, 10))
        }

        assert.equal((await pub.exit(30_000)).code, 0, pub.stderr)
        const total = 600 + 20
        const result = await stopOnceDelivered(sub, portOf(server), () => server.counters().published === total && caughtUp(server, dropped, 3)())
        assert.equal(result.code, 0, result.stderr)
        const report = documentOf<SubReport>(result)
        assert.deepEqual([report.received, report.lost, report.duplicates, report.out_of_order, report.gaps], [3 * total, 0, 0, 0, 0])
        assert.equal(report.reconnects, 6)
        // At least the messages injected while each connection was away.
        assert.ok(report.recovered >= 3 * 20, `recovered ${report.recovered}`)
        assert.match(result.stderr, /\| reconnects \d+ recovered \d+ gaps 0 \|/)
      })

      it('dropped before their first message: each connection resumes from where its stream began, nothing lost @slow', async () => {
        const server = await startBus()
        const sub = await subscribed(server, ['--json'], 2)
        const dropped = dropAndInject(server, 0, 10)
        const result = await stopOnceDelivered(sub, portOf(server), caughtUp(server, dropped, 2))
        assert.equal(result.code, 0, result.stderr)
        const report = documentOf<SubReport>(result)
        assert.deepEqual([report.received, report.lost, report.duplicates, report.gaps, report.reconnects], [2 * 10, 0, 0, 0, 2])
      })

      it('a resume past what the server keeps: a gap per connection, and what it took counted lost @slow', async () => {
        const server = await startBus({history: 5})
        const sub = await subscribed(server, ['--json'], 2)
        await server.bus.publish(marked(0))
        // Queued for both (the publish's answer); dropped once it is on their sockets, so each has had it.
        await until(() => [...server.subscriptions].every((stream) => stream.outboxBytes === 0), 'message 0 written to both')
        const dropped = dropAndInject(server, 1, 20)
        // The history keeps 16 to 20: 1 to 15 are gone.
        const result = await stopOnceDelivered(sub, portOf(server), caughtUp(server, dropped, 2))
        assert.notEqual(result.code, 0)
        const report = documentOf<SubReport>(result)
        assert.deepEqual([report.received, report.lost, report.duplicates, report.gaps, report.reconnects], [2 * 6, 2 * 15, 0, 2, 2])
        assert.equal(report.recovered, 2 * 5)
      })
    })

    it('msgbus serve restarted on the same port: the subscriptions come back (reconnects), and get every message after @slow', async () => {
      let server = await serve()
      const port = server.port()
      const url = urlOf(server)
      const sub = new MsgbusProcess(['test-sub', '--url', url, '-n', '3', '--interval', '1', '--json'])
      await sub.until(() => /connected 3\/3/.test(sub.stderr), 'the subscriptions', 15_000)
      assert.equal((await msgbus(['test-pub', '--url', url, '--count', '5'])).code, 0)
      await server.stop()
      serves.delete(server)
      const down = sub.stderr.length
      server = await serve([], port)
      await sub.until(() => /connected 3\/3/.test(sub.stderr.slice(down)), 'the subscriptions back', 15_000)
      // test-pub has every answer: the server wrote each message before answering it.
      assert.equal((await msgbus(['test-pub', '--url', url, '--count', '5'])).code, 0)
      const result = await stopOnceDelivered(sub, port)
      const report = documentOf<SubReport>(result)
      assert.equal(result.code, 0, result.stderr)
      assert.equal(report.reconnects, 3)
      assert.deepEqual(report.connections, {requested: 3, connected: 3, failed: 0})
      assert.deepEqual([report.received, report.lost, report.duplicates], [30, 0, 0])
    })

    it('a dropped subscription that cannot come back by the end counts as failed @slow', async () => {
      const server = await serve()
      const sub = new MsgbusProcess(['test-sub', '--url', urlOf(server), '-n', '2', '-d', '2', '--interval', '1', '--json'])
      await sub.until(() => /connected 2\/2/.test(sub.stderr), 'the subscriptions', 5000)
      await server.stop()
      const result = await sub.exit()
      assert.notEqual(result.code, 0)
      const report = documentOf<SubReport>(result)
      assert.deepEqual(report.connections, {requested: 2, connected: 0, failed: 2})
      assert.ok(report.errors?.some((reason) => /^dropped and not reopened: ECONNREFUSED/.test(reason)), JSON.stringify(report.errors))
      assert.match(result.stderr, /2 connections failed/)
    })

    it('past the server\'s --max-subscribers: failed connections, the 503 in errors, non-zero exit @slow', async () => {
      const server = await startBus({maxSubscribers: 5})
      const result = await msgbus(['test-sub', '--url', server.url(), '-n', '10', '-d', '1', '--json'])
      assert.notEqual(result.code, 0)
      const report = documentOf<SubReport>(result)
      assert.deepEqual(report.connections, {requested: 10, connected: 5, failed: 5})
      assert.ok(report.errors?.some((reason) => /^503 too many subscribers/.test(reason)), JSON.stringify(report.errors))
      assert.match(result.stderr, /^msgbus test-sub: 5 connections failed \(503 too many subscribers/m)
    })

    it('connections not open by the end count as failed, and the run still ends on time @slow', async () => {
      // A server that accepts and never answers: the subscriptions stay half open.
      const silent = createServer((socket) => socket.on('error', () => {}))
      fakes.add(silent)
      silent.listen(0, '127.0.0.1')
      await once(silent, 'listening')
      const started = Date.now()
      const stalled = await msgbus(['test-sub', '--url', `http://127.0.0.1:${(silent.address() as {port: number}).port}`, '-n', '3', '-d', '1', '--json'])
      // 1 s and the CLI's start and end; one that waited on the silent server would run until killed (15 s).
      assert.ok(Date.now() - started < 8000, `ended after ${Date.now() - started} ms`)
      assert.notEqual(stalled.code, 0)
      const report = documentOf<SubReport>(stalled)
      assert.deepEqual(report.connections, {requested: 3, connected: 0, failed: 3})
      assert.deepEqual(report.errors, ['not connected by the end'])

      // --ramp slower than the duration allows: what was not opened failed, and nothing is opened after the end.
      const server = await startBus()
      let opened = 0
      server.bus.on('subscribed', () => opened++)
      const ramped = await msgbus(['test-sub', '--url', server.url(), '-n', '40', '--ramp', '10', '-d', '1', '--json'], {timeoutMs: 8000})
      assert.equal(ramped.signal, null, 'ended by itself')
      assert.notEqual(ramped.code, 0)
      const {connections} = documentOf<SubReport>(ramped)
      assert.ok(connections.connected >= 5 && connections.connected <= 12, JSON.stringify(connections))
      assert.equal(connections.connected + connections.failed, 40)
      // Once the server has seen every connection of it go, it has counted every subscription it made: those the
      // report counts, and at most one whose answer was on its way at the end.
      await until(() => server.counters().connections === 0, () => `its connections to go (${server.counters().connections} open)`)
      assert.equal(server.bus.subscriberCount, 0)
      assert.ok(opened >= connections.connected && opened <= connections.connected + 1, `the server counted ${opened} subscriptions for ${connections.connected} connected`)
    })

    it('a closed port: every connection failed, non-zero exit @slow', async () => {
      const result = await msgbus(['test-sub', '--url', `http://127.0.0.1:${CLOSED_PORT}`, '-n', '3', '-d', '1', '--json'])
      assert.notEqual(result.code, 0)
      const report = documentOf<SubReport>(result)
      assert.deepEqual(report.connections, {requested: 3, connected: 0, failed: 3})
      assert.deepEqual(report.errors, ['ECONNREFUSED'])
    })

    it('--print prints each message of the first connection as `channel type sender [body]` @slow', async () => {
      const server = await startBus()
      const sub = await subscribed(server, ['-c', 'news', '--print'], 3)
      const before = server.counters().delivered
      const alice = `Basic ${Buffer.from('alice:x').toString('base64')}`
      const post = (type: string, body: Buffer | string, headers: Record<string, string> = {}) =>
        fetch(`${server.url()}/msgbus/news`, {method: 'POST', headers: {'Content-Type': type, ...headers}, body})
      assert.equal((await post('text/plain; charset=utf-8', 'hello\nworld', {Authorization: alice})).status, 204)
      assert.equal((await post('image/png', Buffer.alloc(300, 0xff))).status, 204)
      const pub = await msgbus(['test-pub', '--url', server.url(), '-c', 'news', '--count', '1'])
      assert.equal(pub.code, 0, pub.stderr)
      const result = await stopOnceDelivered(sub, portOf(server), deliveredSince(server, before, 3 * 3))
      assert.equal(result.code, 0, result.stderr)
      const lines = result.stdout.trimEnd().split('\n')
      assert.equal(lines.length, 3 + 5, result.stdout)
      assert.equal(lines[0], 'news text/plain;charset=utf-8 alice [hello\\nworld]')
      assert.equal(lines[1], 'news image/png - [300 bytes]')
      assert.match(lines[2], /^news text\/html;msgbus-load=\d+\.0\.\d+ - \[<h1>hello world 0<\/h1>\]$/)
      // Then the summary, a block unlike the progress lines: 3 messages to each of the 3 connections.
      assert.match(lines[3], /^total: 9 msgs received \(999 bytes\) in [\d.]+ s, 3\/3 connected, 0 failed$/, 'then the summary')
      assert.match(lines[4], /^ {2}rate: [\d.]+ msg\/s, [\d.]+ MB\/s from the first message to the last \([\d.]+ s\)$/)
    })

    it('--print against a 2007 msgbus (no Content-Location): each line names the channel subscribed to @slow', async () => {
      // The recorded 2007 stream, replayed to whoever subscribes; the connection then stays open.
      const raw = readFileSync(join(ROOT, 'test/fixtures/msgbus2007-channel-http11.raw'))
      const old = createServer((socket: Socket) => {
        socket.on('error', () => {})
        socket.once('data', () => socket.write(raw))
      })
      await new Promise<void>((resolve) => old.listen(0, '127.0.0.1', resolve))
      try {
        const url = `http://127.0.0.1:${(old.address() as {port: number}).port}`
        const result = await msgbus(['test-sub', '--url', url, '-c', 'interop', '--print', '-n', '1', '-d', '2'])
        assert.equal(result.code, 0, result.stderr)
        assert.deepEqual(result.stdout.trimEnd().split('\n').slice(0, 4), [
          'interop text/plain - [hello from 2007]',
          'interop text/html - [<h1>hello world</h1>]',
          'interop application/octet-stream - [300 bytes]',
          'interop text/plain alice [from alice]',
        ])
      } finally {
        old.close()
      }
    })

    it('10,000 subscriptions in one process, inside the 20000-file limit @slow', async function () {
      this.timeout(150_000)
      const server = await serve()
      const url = urlOf(server)
      // About 3 s to open them all when idle, 8 s beside two busy loops, 15 s and more when the machine is busier still:
      // the bound is for connections that never come.
      const sub = new MsgbusProcess(['test-sub', '--url', url, '-n', '10000', '--interval', '1', '--json'])
      await sub.until(() => /connected 10000\/10000/.test(sub.stderr), '10,000 subscriptions', 100_000)
      const pub = await msgbus(['test-pub', '--url', url, '-r', '20', '--count', '5', '--json'])
      assert.equal(pub.code, 0, pub.stderr)
      const published = documentOf<PubReport>(pub).published
      assert.equal(published, 5)
      const result = await stopOnceDelivered(sub, server.port())
      assert.equal(result.code, 0, result.stderr)
      const report = documentOf<SubReport>(result)
      assert.deepEqual(report.connections, {requested: 10000, connected: 10000, failed: 0})
      assert.equal(report.received, 10000 * published)
      assert.equal(report.lost, 0)
      assert.equal(report.duplicates, 0)
    })
  })

  describe("the README's load test", () => {
    /** The script under "## Load tests" in README.md, as written there. */
    function script(): string {
      const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
      const section = readme.slice(readme.indexOf('\n## Load tests\n'))
      assert.ok(section.length > 0, 'README has a "Load tests" section')
      const start = section.indexOf('    #!/usr/bin/env bash\n')
      assert.ok(start >= 0, 'the section has a bash script')
      const lines: string[] = []
      for (const line of section.slice(start).split('\n')) {
        if (line !== '' && !line.startsWith('    ')) break
        if (line === '' && lines.at(-1) === '') break
        lines.push(line.slice(4))
      }

      return lines.join('\n').trimEnd() + '\n'
    }

    /** Runs the script in a fresh directory, with `msgbus` on the PATH. */
    async function runScript(url: string, env: NodeJS.ProcessEnv): Promise<RunResult & {dir: string}> {
      const dir = tempDir()
      const path = join(dir, 'load-test.sh')
      writeFileSync(path, script())
      chmodSync(path, 0o755)
      symlinkSync(BIN, join(dir, 'msgbus'))
      const result = await run('bash', ['-c', 'cd "$1" && exec ./load-test.sh', 'bash', dir], {
        env: {...env, MSGBUS_URL: url, PATH: `${dir}:${process.env.PATH}`},
        timeoutMs: 15000,
      })
      return {...result, dir}
    }

    it('uses only test-sub, test-pub, &, wait and jq', () => {
      const text = script()
      assert.match(text, /msgbus test-sub .*--json > sub\.json &\n/)
      assert.match(text, /\nwait \$sub\n/)
      assert.match(text, /jq -e /)
      const commands = text.split('\n').filter((line) => /^\s*(msgbus|jq)\b/.test(line))
      assert.ok(commands.length >= 4, text)
    })

    it('passes against msgbus serve, with every message counted @slow', async () => {
      const server = await serve()
      const result = await runScript(urlOf(server), {N: '200', RATE: '100', SECS: '3'})
      assert.equal(result.code, 0, result.stdout + result.stderr)
      // 100/s for 3 s is 300, or fewer when a busy machine cannot keep the pace; every one reaches all 200.
      const published = Number(/^published (\d+) at [\d.]+ msgs\/s, 0 errors\n/.exec(result.stdout)?.[1])
      assert.ok(published >= 1 && published <= 303, result.stdout)
      assert.match(result.stdout, new RegExp(`\nreceived ${published * 200} on 200/200 connections, lost 0\n`))
      assert.match(result.stdout, /\nPASS\n$/)
      const sub = JSON.parse(readFileSync(join(result.dir, 'sub.json'), 'utf8')) as SubReport
      assert.equal(sub.received, published * 200)
    })

    it('fails (exit 1) when connections fail @slow', async () => {
      const server = await serve(['--max-subscribers', '5'])
      const result = await runScript(urlOf(server), {N: '10', RATE: '50', SECS: '1'})
      assert.equal(result.code, 1, result.stdout + result.stderr)
      assert.match(result.stdout, /received \d+ on 5\/10 connections/)
      assert.match(result.stdout, /\nFAIL\n$/)
    })
  })
})

describe("test-sub's stream reader", () => {
  const chunk = (payload: string, extension = '') => `${Buffer.byteLength(payload).toString(16)}${extension}\r\n${payload}\r\n`
  const payload = (type: string, body: string, more = '') => `${type}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${more}Message-ID: 1\r\n\r\n${body}\r\n--B\r\n`
  const part = (type: string, body: string, more = '') => chunk(payload(type, body, more))
  const marked = (seq: number, publisher = 7) => part(`Content-Type: text/plain; msgbus-load=${publisher}.${seq}.1795755609293512`, `message ${seq}`)

  /**
   * What a SubscriptionStream reports for `stream` written in pieces (cut at
   * `cuts`), each through one reused buffer as the sockets' shared one is;
   * `general`: through the library's parser alone (as test-sub --print reads).
   */
  function events(stream: string, cuts: number[], general = false): string[] {
    const seen: string[] = []
    const sink = {
      received: (bytes: number) => seen.push(`${bytes} bytes`),
      marker: (...fields: number[]) => seen.push(fields.join('.')),
      id: (ms: number, seq: number) => seen.push(`id ${ms}-${seq}`),
      gap: () => seen.push('gap'),
    }
    const reader = new SubscriptionStream('B', true, sink, general ? () => {} : undefined)
    const bytes = Buffer.from(stream)
    const shared = Buffer.alloc(bytes.length)
    let from = 0
    for (const cut of [...cuts, bytes.length]) {
      const end = bytes.copy(shared, 0, from, cut)
      reader.write(shared, end)
      shared.fill('x')
      from = cut
    }

    return seen
  }

  function assertAnySplit(stream: string, expected: string[]): void {
    assert.deepEqual(events(stream, [], true), expected, 'the general path')
    assert.deepEqual(events(stream, []), expected, 'in one piece')
    const length = Buffer.byteLength(stream)
    for (let cut = 1; cut < length; cut++) assert.deepEqual(events(stream, [cut]), expected, `cut at ${cut}`)
    assert.deepEqual(events(stream, Array.from({length: length - 1}, (_, i) => i + 1)), expected, 'byte by byte')
  }

  it("msgbus's own stream, split anywhere: every message, its body's length and its marker", () => {
    const stream = chunk('--B\r\n') + marked(0) + part('Content-Type: text/plain', 'no marker') + marked(1) + marked(12, 96207618179075)
    assertAnySplit(stream, ['9 bytes', '7.0.1795755609293512', '9 bytes', '9 bytes', '7.1.1795755609293512', '10 bytes', '96207618179075.12.1795755609293512'])
  })

  it('other shapes read as the parser reads them: then the rest of the stream goes its way', () => {
    const shapes = {
      'a marker outside Content-Type': part('Content-Type: text/plain', 'x', 'X-Note: a; msgbus-load=1.2.3\r\n') + marked(1),
      'Content-Type not first': chunk('Content-Length: 1\r\nContent-Type: a/b; msgbus-load=5.1.2\r\n\r\nx\r\n--B\r\n') + marked(1),
      'a bare LF in the headers': part('Content-Type: a/b; msgbus-load=1.2.3\nX-Note: y', 'x') + marked(1),
      'a 17-digit number': part('Content-Type: a/b; msgbus-load=1.2.12345678901234567', 'x') + marked(1),
      'a part over two chunks': chunk('Content-Type: a/b; msgbus-load=1.2.3\r\n\r\nx') + chunk('y\r\n--B\r\n') + marked(1),
      'a chunk extension': chunk(payload('content-type: a/b;msgbus-load=1.2.3', 'x'), ';ext=1') + marked(1),
      'the close delimiter and the last chunk': marked(1) + chunk('\r\n--B--\r\n') + '0\r\n\r\n' + marked(2),
    }
    for (const [what, shape] of Object.entries(shapes)) {
      const stream = chunk('--B\r\n') + marked(0) + shape
      const expected = events(stream, [], true)
      assert.ok(expected.length >= 4, `${what}: ${JSON.stringify(expected)}`)
      assertAnySplit(stream, expected)
    }
  })

  it('ids (`<ms>-<seq>` only, any case of the name) and gap parts (not messages), split anywhere', () => {
    const identified = (seq: number, id: string, name = 'Message-ID') =>
      chunk(`Content-Type: text/plain; msgbus-load=7.${seq}.1795755609293512\r\nContent-Length: 9\r\nContent-Location: /msgbus/flood\r\n${name}: ${id}\r\n\r\nmessage ${seq}\r\n--B\r\n`)
    const event = (kind: string) => {
      const json = JSON.stringify({event: kind, reason: 'expired', after: '1795755609293-0', from: '1795755609293-5'})
      return chunk(`Content-Type: application/json\r\nContent-Length: ${json.length}\r\nMsgbus-Event: ${kind}\r\n\r\n${json}\r\n--B\r\n`)
    }

    const stream = chunk('--B\r\n') + identified(0, '1795755609293-0') + event('gap') + identified(1, '1795755609293-6') + identified(2, 'abc-1') + event('other') + identified(3, '1795755609300-12', 'message-id')
    assertAnySplit(stream, [
      '9 bytes', '7.0.1795755609293512', 'id 1795755609293-0',
      'gap',
      '9 bytes', '7.1.1795755609293512', 'id 1795755609293-6',
      '9 bytes', '7.2.1795755609293512',
      '9 bytes', '7.3.1795755609293512', 'id 1795755609300-12',
    ])
  })

  it("parts exactly as msgbus writes them (read a word at a time), and near misses of that shape, split anywhere: as the parser reads them", () => {
    // Content-Type, Content-Length, Content-Location, Message-ID, maybe From, as multipart-encoder.ts writes them.
    const exact = (type: string, body: string, {id = '1795755609293-0', from = '', location = '/msgbus/flood', length = Buffer.byteLength(body)} = {}) =>
      chunk(`Content-Type: ${type}\r\nContent-Length: ${length}\r\nContent-Location: ${location}\r\nMessage-ID: ${id}\r\n${from}\r\n${body}\r\n--B\r\n`)
    const type = (seq: number) => `text/plain; msgbus-load=7.${seq}.1795755609293512`
    const own = exact(type(0), 'message 0') + exact(type(1), 'body\r\n\r\nContent-Length: 3\r\n', {id: '1795755609293-1', from: 'From: bob\r\n'}) + exact('text/plain', 'no marker', {id: '1795755609294-0'})
    assertAnySplit(chunk('--B\r\n') + own, [
      '9 bytes', '7.0.1795755609293512', 'id 1795755609293-0',
      '27 bytes', '7.1.1795755609293512', 'id 1795755609293-1',
      '9 bytes', 'id 1795755609294-0',
    ])

    const shapes = {
      'another parameter before the marker': exact(`text/plain; charset=utf-8; q=1; ${type(1).slice(12)}`, 'x'),
      'a marker name not after a semicolon': exact('text/plain;x=msgbus-load=1.2.3', 'x'),
      'the marker in a longer name': exact('text/plain; my-msgbus-load=1.2.3; msgbus-load=7.1.5', 'x'),
      'blanks around the marker': exact('text/plain;\t msgbus-load=7.1.5 ', 'x'),
      'a 17-digit marker number': exact('text/plain; msgbus-load=7.1.12345678901234567', 'x'),
      'a 17-digit id': exact(type(1), 'x', {id: '17957556092930000-1'}),
      'an id that is not one': exact(type(1), 'x', {id: '1795755609293-1x'}),
      'a blank after the id': exact(type(1), 'x', {id: '1795755609293-1 '}),
      'names in another case': chunk(`content-type: ${type(1)}\r\nContent-Length: 1\r\nContent-Location: /msgbus/flood\r\nmessage-id: 1795755609293-1\r\n\r\nx\r\n--B\r\n`),
      'a header after the id': exact(type(1), 'x', {from: 'X-Extra: 1\r\n'}),
      'a gap event after the id': exact(type(1), 'x', {from: 'Msgbus-Event: gap\r\n'}),
      'a bare LF in From': exact(type(1), 'x', {from: 'From: a\nb\r\n'}),
      'a bare CR in the location': exact(type(1), 'x', {location: '/msgbus/a\rb'}),
      'an empty body': exact(type(1), ''),
    }
    for (const [what, shape] of Object.entries(shapes)) {
      const stream = chunk('--B\r\n') + exact(type(0), 'message 0') + shape + exact(type(2), 'message 2', {id: '1795755609293-2'})
      const expected = events(stream, [], true)
      assert.ok(expected.length >= 6, `${what}: ${JSON.stringify(expected)}`)
      assertAnySplit(stream, expected)
    }
  })

  it('a stream that opens otherwise (a preamble) is the parser\'s from the start', () => {
    assertAnySplit(chunk('preamble\r\n--B\r\n') + marked(0) + marked(1), ['9 bytes', '7.0.1795755609293512', '9 bytes', '7.1.1795755609293512'])
  })
})

describe("test-sub's latency histogram", () => {
  it('percentiles to 3 significant digits, the exact max, halves merged; below 1 µs is 1 µs, above an hour an hour', () => {
    const low = new LatencyHistogram()
    const high = new LatencyHistogram()
    for (let micros = 1; micros <= 100_000; micros++) (micros % 2 ? low : high).record(micros)
    low.add(high)
    assert.equal(low.count, 100_000)
    const {p50, p90, p99, max} = low.summary()
    for (const [got, want] of [[p50, 50], [p90, 90], [p99, 99]]) assert.ok(Math.abs(got - want) <= want * 0.001, `${got} ms for ${want} ms`)
    assert.equal(max, 100)

    const edges = new LatencyHistogram()
    edges.record(-40)
    edges.record(0.2)
    assert.deepEqual(edges.summary(), {p50: 0.001, p90: 0.001, p99: 0.001, max: 0.001})
    edges.record(5e12)
    assert.equal(edges.summary().max, 3_600_000)
    assert.deepEqual(new LatencyHistogram().summary(), {p50: 0, p90: 0, p99: 0, max: 0})
  })
})
