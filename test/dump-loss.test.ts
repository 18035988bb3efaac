// `msgbus dump` never loses messages silently (issue 15, points 2 and 3): a
// dump that stops reading is cut by the server as a slow subscriber, says so
// on stderr, resumes, and exits 1 when messages were lost (0 with
// --allow-loss, or when the history had them all); failures that cannot heal
// end it at once with their reason.
import assert from 'node:assert/strict'
import {lookup as dnsLookup} from 'node:dns/promises'
import {once} from 'node:events'
import {readFileSync} from 'node:fs'
import {createServer, type Server, type Socket} from 'node:net'
import {compareMessageIds} from '../src/lib/bus/message-id.js'
import {subscribe, type SubscriptionEvents} from '../src/lib/client/subscribe.js'
import type {BusServer} from '../src/lib/index.js'
import {msgbus, MsgbusProcess, publish, startBus, stopAll, tempFolder, textMessage, until} from './support/harness.js'
import {makeCertificate} from './support/tls.js'

const KiB = 1024
/** How long a CLI process may take to start and subscribe on a busy machine. */
const START = {timeoutMs: 30_000}
/** What dump prints first when the server cuts it. */
const CUT = /^msgbus dump: cut by the server: too slow \((\d+) bytes unsent, behind for \d+\.\d s\); resuming after (\d+-\d+)$/m

/** `msgbus dump --raw` whose stdout nobody reads until `read()`: the pipe fills, dump blocks, its socket backs up. */
function stalledDump(server: BusServer, args: string[] = []): MsgbusProcess & {read: () => void} {
  const dump = new MsgbusProcess(['dump', '--url', server.url(), 'flood', '--raw', ...args]) as MsgbusProcess & {read: () => void}
  dump.child.stdout!.pause()
  dump.read = () => dump.child.stdout!.resume()
  return dump
}

/**
 * Publishes numbered 16 KiB text messages until the server has cut `cuts`
 * slow subscribers (loopback buffers take several MiB first); returns the
 * bodies' first lines, in order.
 */
async function floodUntilCut(server: BusServer, cuts: number): Promise<string[]> {
  const sent: string[] = []
  const padding = 'x'.repeat(16 * KiB)
  while (server.counters().slowDisconnects < cuts) {
    if (sent.length > 16_000) throw new Error(`no slow cut after ${sent.length} messages of 16 KiB`)
    const batch = Array.from({length: 16}, () => {
      const line = `message ${String(sent.length + 1).padStart(6, '0')}`
      sent.push(line)
      return textMessage('flood', `${line} ${padding}\n`)
    })
    await server.bus.publishAll(batch)
    await new Promise((resolve) => setImmediate(resolve))
  }

  return sent
}

/** The numbered lines dump wrote, in order. */
function numbered(dump: MsgbusProcess): string[] {
  return dump.lines().map((line) => line.slice(0, 'message 000000'.length))
}

describe('msgbus dump: losses are never silent', function () {
  this.timeout(60_000)

  afterEach(async () => {
    MsgbusProcess.killAll()
    await stopAll()
  })

  it('cut as slow with the history on (the default): it warns, resumes after the last message it had, and loses nothing (exit 0) @slow', async () => {
    const server = await startBus({maxPending: 64 * KiB, slowTimeout: 0})
    const dump = stalledDump(server)
    await until(() => server.bus.subscriberCount === 1, 'the subscription', START)
    const sent = await floodUntilCut(server, 1)
    dump.read()
    await dump.until(() => CUT.test(dump.stderr), 'the warning that it was cut', 20_000)
    const [, unsent, after] = CUT.exec(dump.stderr)!
    assert.ok(Number(unsent) > 64 * KiB, `${unsent} bytes unsent`)
    const last = (await server.bus.publish(textMessage('flood', 'message 999999 last\n'))).message.id
    await dump.until(() => dump.stdout.endsWith('message 999999 last\n'), 'every message, the last one too', 30_000)
    assert.ok(compareMessageIds(after, last) < 0, 'it resumes after a message it had')
    assert.deepEqual(numbered(dump), [...sent, 'message 999999'], 'every message once, in order')
    dump.child.kill('SIGINT')
    const {code} = await dump.exit()
    assert.equal(code, 0, dump.stderr)
    assert.match(dump.stderr, /^msgbus dump: lost nothing; cut by the server as too slow 1 time$/m)
    assert.doesNotMatch(dump.stderr, /gap/)
  })

  it('cut as slow by a server with --history 0: the messages in between are lost, said so, and dump exits 1; with --allow-loss, 0 @slow', async () => {
    const server = await startBus({maxPending: 64 * KiB, slowTimeout: 0, history: 0})
    const strict = stalledDump(server)
    const lenient = stalledDump(server, ['--allow-loss'])
    await until(() => server.bus.subscriberCount === 2, 'the subscriptions', START)
    await floodUntilCut(server, 2)
    for (const dump of [strict, lenient]) dump.read()
    for (const dump of [strict, lenient]) {
      await dump.until(() => CUT.test(dump.stderr) && /gap \(expired\)/.test(dump.stderr), 'the cut and the gap', 20_000)
    }

    await until(() => server.bus.subscriberCount === 2, 'both back', START)
    await server.bus.publish(textMessage('flood', 'message 999999 last\n'))
    for (const dump of [strict, lenient]) {
      await dump.until(() => dump.stdout.endsWith('message 999999 last\n'), 'the message after the resume', 20_000)
      dump.child.kill('SIGINT')
    }

    const [strictExit, lenientExit] = await Promise.all([strict.exit(), lenient.exit()])
    for (const dump of [strict, lenient]) assert.match(dump.stderr, /^msgbus dump: lost an unknown number at 1 point; cut by the server as too slow 1 time$/m)
    assert.equal(strictExit.code, 1, strict.stderr)
    assert.equal(lenientExit.code, 0, lenient.stderr)
  })

  it('the library, read slowly after a cut: every message written before the cut and the `slow` notice still arrive @slow', async () => {
    // The stream ends cut short (no last chunk) while the reader is still
    // behind: what had arrived but was not read yet must not go with it.
    const server = await startBus({maxPending: 64 * KiB, slowTimeout: 0, history: 0})
    const stop = new AbortController()
    const subscription = subscribe(`${server.url()}/msgbus/flood`, {reconnect: false, signal: stop.signal})
    const disconnects: Array<SubscriptionEvents['disconnect'][0]> = []
    subscription.on('disconnect', (info) => disconnects.push(info))
    const iterator = subscription[Symbol.asyncIterator]()
    const first = iterator.next()
    await until(() => server.bus.subscriberCount === 1, 'the subscription')
    const sent = await floodUntilCut(server, 1)
    const read = [(await first).value!]
    for (;;) {
      // A reader slower than the socket: the stream's end comes while some of it is unread.
      await new Promise((resolve) => setTimeout(resolve, 1))
      const next = await iterator.next()
      if (next.done) break
      read.push(next.value)
    }

    assert.equal(disconnects.length, 1)
    assert.equal(disconnects[0].reason, 'slow', `the notice: ${JSON.stringify(disconnects[0])}`)
    assert.equal(disconnects[0].notice!.after, read.at(-1)!.id, 'the notice names the last message read')
    assert.deepEqual(
      read.map((message) => message.body.toString('utf8').slice(0, 'message 000000'.length)),
      sent.slice(0, read.length),
      'the messages before the cut, in order',
    )
    stop.abort()
  })

  it('the library: a shutdown is a `disconnect` with reason `shutdown` and the last id, which it resumes after', async () => {
    const server = await startBus()
    const stop = new AbortController()
    const subscription = subscribe(`${server.url()}/msgbus/s`, {minDelayMs: 10, maxDelayMs: 50, signal: stop.signal})
    const disconnects: Array<SubscriptionEvents['disconnect'][0]> = []
    subscription.on('disconnect', (info) => disconnects.push(info))
    const iterator = subscription[Symbol.asyncIterator]()
    const first = iterator.next()
    await until(() => server.bus.subscriberCount === 1, 'the subscription')
    const id = (await publish(server, 's', 'one')).headers['msgbus-id'] as string
    assert.equal((await first).value!.id, id)
    const next = iterator.next()
    await server.stop()
    await until(() => disconnects.length > 0, 'the disconnect event')
    assert.equal(disconnects[0].reason, 'shutdown')
    assert.equal(disconnects[0].error, undefined, 'an end the server announced is no failure')
    assert.deepEqual(disconnects[0].notice, {reason: 'shutdown', after: id})
    assert.equal(subscription.resumesAfter, id)
    stop.abort()
    assert.equal((await next).done, true)
  })

  it('a server that gives no ids (the 2007 msgbus): each reconnect may have lost messages, so dump says so and exits 1', async () => {
    // As the 2007 msgbus frames a message (LF header lines, no Message-ID); then it goes away, as a restart would.
    const part = 'Content-Type: text/plain\n\nhello--00MsgBus00\n'
    const chunk = (text: string) => `${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n`
    const old: Server = createServer((socket: Socket) => {
      socket.on('error', () => {})
      socket.once('data', () => {
        socket.end('HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace;boundary=00MsgBus00\r\nTransfer-Encoding: chunked\r\n\r\n' + chunk('--00MsgBus00\n') + chunk(part))
      })
    })
    old.listen(0, '127.0.0.1')
    await once(old, 'listening')
    try {
      const url = `http://127.0.0.1:${(old.address() as {port: number}).port}`
      const result = await msgbus(['dump', '--url', url, 'old', '--raw', '-n', '2'], {timeoutMs: 15_000})
      assert.equal(result.stdout, 'hello\nhello\n')
      assert.equal(
        result.stderr,
        'msgbus dump: reconnected with no message id to resume from (the server gives none): what was published meanwhile is lost\n' +
          'msgbus dump: lost an unknown number at 1 point\n',
      )
      assert.equal(result.code, 1)
    } finally {
      old.close()
    }
  })

  describe('failures that cannot heal end it at once, with the reason', () => {
    const inTemp = tempFolder('msgbus-dump-loss-')

    it('an HTTPS server whose certificate is not trusted (self-signed): the TLS reason, exit 1, no retries', async () => {
      const {certFile, keyFile} = await makeCertificate(inTemp())
      const server = await startBus({cert: readFileSync(certFile), key: readFileSync(keyFile)})
      const url = server.url('https')
      const started = Date.now()
      const result = await msgbus(['dump', '--url', url, 'x'], {timeoutMs: 15_000})
      assert.equal(result.code, 1)
      assert.equal(result.stdout, '')
      assert.equal(result.stderr, `msgbus dump: ${url}/msgbus/x: TLS: self-signed certificate (use --cacert FILE or --insecure)\n`)
      assert.ok(Date.now() - started < 10_000, 'not retried')
    })

    it('a host that does not exist: host not found, exit 1, no retries', async function () {
      // Where no name server answers at all, the lookup fails with EAI_AGAIN, which may heal and is retried: nothing to test then.
      const lookup = await dnsLookup('no-such-host.invalid').catch((error: NodeJS.ErrnoException) => error.code)
      if (lookup === 'EAI_AGAIN') this.skip()
      const result = await msgbus(['dump', '--url', 'http://no-such-host.invalid:8888', 'x'], {timeoutMs: 15_000})
      assert.equal(result.code, 1)
      assert.equal(result.stdout, '')
      assert.equal(result.stderr, 'msgbus dump: http://no-such-host.invalid:8888/msgbus/x: host not found\n')
    })
  })
})
