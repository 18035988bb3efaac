// The load tools' options for other servers and other stream formats
// (`npm run bench -- --peer nchan`): test-sub --format sse and --accept,
// test-pub --marker body and nginx+nchan's 201/202 answers. Against a real
// msgbus (in this process) and, when it is installed, a real nginx with the
// nchan module (bench/nchan/nginx.conf, started as the bench starts it).
import assert from 'node:assert/strict'
import {existsSync} from 'node:fs'
import {connect} from 'node:net'
import type {BusServer} from '../src/lib/index.js'
import type {TestPubReport as PubReport, TestSubReport as SubReport} from '../src/lib/load/report.js'
import {parseHead} from '../src/lib/load/response-reader.js'
import {streamReaderFor} from '../src/lib/load/stream-choice.js'
import type {MessageSink} from '../src/lib/load/stream-reader.js'
import {startNchan, type BenchServer} from '../bench/nchan.js'
import {documentOf, msgbus, MsgbusProcess, portOf, startBus, stopAll, Subscription, until, type RunResult} from './support/harness.js'
import {unreceived} from './support/sockets.js'

const NCHAN_MISSING = !existsSync('/usr/sbin/nginx') || !existsSync('/usr/lib/nginx/modules/ngx_nchan_module.so')

/** test-sub in the background, once its progress line says every subscription is live (any server: it reads no counters). */
async function liveTestSub(url: string, channel: string, connections: number, args: string[]): Promise<MsgbusProcess> {
  const sub = new MsgbusProcess(['test-sub', '--url', url, '-c', channel, '-n', String(connections), '--interval', '1', '--json', ...args])
  await sub.until(() => new RegExp(`connected ${connections}/${connections} `).test(sub.stderr), `${connections} subscriptions live`, 20_000)
  return sub
}

/** Publishes `count` messages with test-pub; returns its report, after checking it exited 0. */
async function publish(url: string, channel: string, count: number, args: string[] = []): Promise<PubReport> {
  const result = await msgbus(['test-pub', '--url', url, '-c', channel, '--count', String(count), '-r', '0', '--size', '64', '--json', ...args], {timeoutMs: 20_000})
  assert.equal(result.code, 0, result.stderr)
  return documentOf<PubReport>(result)
}

/** Ends test-subs with SIGINT once nothing the server on `port` wrote waits unread, and reads their reports. */
async function reports(port: number, subs: MsgbusProcess[], due: () => boolean = () => true): Promise<SubReport[]> {
  await until(() => due() && unreceived(port) === 0, () => `every delivery to be read (${unreceived(port)} bytes unread)`, {timeoutMs: 20_000, everyMs: 50})
  return Promise.all(
    subs.map(async (sub) => {
      sub.child.kill('SIGINT')
      return documentOf<SubReport>(await sub.exit(15_000))
    }),
  )
}

/** Every message received once, none lost, bodies of 64 bytes, and a latency measured (so every marker was read). */
function assertWhole(report: SubReport, expected: number, what: string): void {
  assert.equal(report.received, expected, `${what}: received`)
  assert.equal(report.lost, 0, `${what}: lost`)
  assert.equal(report.duplicates, 0, `${what}: duplicates`)
  assert.equal(report.out_of_order, 0, `${what}: out of order`)
  assert.equal(report.connections.failed, 0, `${what}: failed connections ${JSON.stringify(report)}`)
  assert.equal(report.bytes, expected * 64, `${what}: bytes (the bodies')`)
  assert.ok(report.latency_ms.max > 0, `${what}: a latency was measured, so the markers were read: ${JSON.stringify(report.latency_ms)}`)
}

/** A subscription on a raw socket, its answer's bytes kept whole: what a server really sends, to feed a reader in any split. */
async function rawStream(port: number, path: string, accept: string): Promise<{bytes: () => Buffer; close: () => void}> {
  const chunks: Buffer[] = []
  const socket = connect({host: '127.0.0.1', port})
  socket.on('data', (chunk: Buffer) => chunks.push(chunk))
  socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: ${accept}\r\n\r\n`)
  await until(() => Buffer.concat(chunks).includes('\r\n\r\n'), 'the stream to open', 5000)
  return {bytes: () => Buffer.concat(chunks), close: () => socket.destroy()}
}

/** What a reader made of the stream: every body's size and every marker's seq. */
function recording(): MessageSink & {sizes: number[]; seqs: number[]} {
  const sizes: number[] = []
  const seqs: number[] = []
  return {sizes, seqs, received: (bytes) => sizes.push(bytes), marker: (_publisher, seq) => seqs.push(seq), id() {}, gap() {}}
}

/** Feeds the answer to the reader test-sub would pick, split in two at every byte, each piece through a reused buffer as test-sub's reads are. */
function assertReadInAnySplit(answer: Buffer, count: number, what: string): void {
  const headEnd = answer.indexOf('\r\n\r\n')
  const head = parseHead(answer.toString('latin1', 0, headEnd))
  const stream = answer.subarray(headEnd + 4)
  const shared = Buffer.alloc(stream.length + 16)
  for (let split = 0; split <= stream.length; split++) {
    const sink = recording()
    const reader = streamReaderFor(head, sink)
    assert.ok(reader, `${what}: a reader for ${JSON.stringify(head.headers['content-type'])}`)
    for (const [from, to] of [[0, split], [split, stream.length]]) {
      shared.fill(0x2d)
      stream.copy(shared, 0, from, to)
      reader.write(shared, to - from)
    }

    assert.deepEqual(sink.seqs, Array.from({length: count}, (_, i) => i), `${what}, split at ${split}: markers`)
    assert.deepEqual(sink.sizes, Array.from({length: count}, () => 64), `${what}, split at ${split}: body sizes`)
  }
}

describe('load tools for other servers and formats', function () {
  this.timeout(60_000)

  afterEach(async () => {
    MsgbusProcess.killAll()
    await stopAll()
  })

  describe('against msgbus', () => {
    let server: BusServer

    beforeEach(async () => {
      server = await startBus()
    })

    it('test-sub --format sse reads msgbus\'s SSE stream, markers in the JSON type or (--marker body) in its body', async () => {
      const port = Number(new URL(server.url()).port)
      for (const marker of ['type', 'body']) {
        const channel = `sse-${marker}`
        const sub = await liveTestSub(server.url(), channel, 3, ['--format', 'sse'])
        const before = server.counters().delivered
        // text/plain: a body that is not text goes into the JSON in base64, a marker at its start with it.
        const published = await publish(server.url(), channel, 50, ['--marker', marker, '-t', 'text/plain'])
        assert.equal(published.published, 50)
        const [report] = await reports(port, [sub], () => server.counters().delivered - before >= 150)
        assertWhole(report!, 150, `--marker ${marker}`)
      }
    })

    it('msgbus\'s SSE stream is read whole however the reads split it', async () => {
      const sse = await rawStream(portOf(server), '/msgbus/split', 'text/event-stream')
      await publish(server.url(), 'split', 3, ['--marker', 'body', '-t', 'text/plain'])
      await until(() => (sse.bytes().toString().match(/event: message/g) ?? []).length >= 3, 'three events', 5000)
      sse.close()
      assertReadInAnySplit(sse.bytes(), 3, 'msgbus SSE')
    })

    it('test-pub --marker body opens each body with the marker, then the body as given, cut or padded to --size; the type left as given', async () => {
      const subscription = await Subscription.open(server, '/msgbus/bodies')
      await publish(server.url(), 'bodies', 3, ['--marker', 'body', '-t', 'text/plain'])
      const parts = await subscription.waitParts(3)
      for (const [seq, part] of parts.entries()) {
        assert.equal(part.headers['content-type'], 'text/plain')
        assert.equal(part.body.length, 64)
        const text = part.body.toString()
        const marker = new RegExp(`^msgbus-load=\\d+\\.${seq}\\.\\d+ `).exec(text)
        assert.ok(marker, text)
        assert.equal(text.slice(marker[0].length), `<h1>hello world ${seq}</h1>`.padEnd(64).slice(0, 64 - marker[0].length))
      }

      subscription.close()
    })
  })

  describe('against nginx+nchan', () => {
    let nchan: BenchServer | undefined

    before(function () {
      if (NCHAN_MISSING) {
        console.log('      skipped: nginx with the nchan module is not installed (apt-get install nginx-light libnginx-mod-nchan)')
        this.skip()
      }
    })

    beforeEach(async () => {
      nchan = await startNchan(60_000)
    })

    afterEach(async () => {
      await nchan?.stop(5000)
    })

    it('test-pub counts nchan\'s 201 (subscribers there) and 202 (none) as published', async () => {
      const none = await publish(nchan!.url, 'nobody', 5)
      assert.deepEqual([none.published, none.errors], [5, 0])
      const sub = await liveTestSub(nchan!.url, 'somebody', 1, ['--accept', 'multipart/mixed'])
      const some = await publish(nchan!.url, 'somebody', 5, ['--marker', 'body'])
      assert.deepEqual([some.published, some.errors], [5, 0])
      await reports(nchan!.port, [sub])
    })

    it('nchan\'s multipart/mixed and SSE streams are read whole however the reads split them', async () => {
      const multipart = await rawStream(nchan!.port, '/msgbus/split', 'multipart/mixed')
      const sse = await rawStream(nchan!.port, '/msgbus/split', 'text/event-stream')
      await publish(nchan!.url, 'split', 3, ['--marker', 'body'])
      await until(() => (multipart.bytes().toString().match(/msgbus-load=/g) ?? []).length >= 3 && (sse.bytes().toString().match(/msgbus-load=/g) ?? []).length >= 3, 'three messages on each', 5000)
      multipart.close()
      sse.close()
      assertReadInAnySplit(multipart.bytes(), 3, 'nchan multipart/mixed')
      assertReadInAnySplit(sse.bytes(), 3, 'nchan SSE')
    })

    it('test-sub --accept reads nchan\'s multipart/mixed and SSE streams, pipelined publishes over several connections', async () => {
      const multipart = await liveTestSub(nchan!.url, 'peer', 4, ['--accept', 'multipart/mixed'])
      const sse = await liveTestSub(nchan!.url, 'peer', 4, ['--accept', 'text/event-stream'])
      const published = await publish(nchan!.url, 'peer', 200, ['--marker', 'body', '--connections', '2', '--pipeline', '4'])
      assert.deepEqual([published.published, published.errors], [200, 0])
      const [fromMultipart, fromSse] = await reports(nchan!.port, [multipart, sse])
      assertWhole(fromMultipart!, 800, 'multipart/mixed')
      assertWhole(fromSse!, 800, 'text/event-stream')
    })
  })
})
