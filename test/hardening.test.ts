// Broken and hostile clients: each test asserts the answer it gets, that the
// server lives on, and that a subscriber on another connection saw nothing
// wrong (every message published to it, nothing else).
import assert from 'node:assert/strict'
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {request as httpRequest} from 'node:http'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {makeScryptHash} from '../src/lib/server/access/password-hash.js'
import type {BusServer, BusServerOptions} from '../src/lib/index.js'
import {answers, assertError} from './support/answers.js'
import {msgbus, portOf, publish, RawClient, run, ServeProcess, sleep, startBus, stopAll, Subscription, until, type Reply} from './support/harness.js'

/**
 * A subscriber elsewhere on the server, and a check that it got exactly what
 * was published to it: each check publishes a marker, and what came before
 * it must be the earlier markers and nothing else.
 */
async function witness(server: BusServer): Promise<() => Promise<void>> {
  const subscription = await Subscription.open(server, '/msgbus/witness')
  const sent: string[] = []
  return async () => {
    const body = `still fine ${sent.length}`
    const reply = await publish(server, 'witness', body)
    assert.equal(reply.status, 204, 'the server still answers')
    assert.deepEqual((await subscription.before(body)).map((part) => part.body.toString()), sent)
    sent.push(body)
  }
}

/** Nothing reached `subscription` (of channel `channel`): a marker published now is the first thing it gets. */
async function assertNothingArrived(server: BusServer, subscription: Subscription, channel: string): Promise<void> {
  assert.equal((await publish(server, channel, 'marker')).status, 204)
  assert.deepEqual((await subscription.before('marker')).map((part) => part.body.toString()), [])
}

async function startWithWitness(options: BusServerOptions = {}) {
  const server = await startBus(options)
  return {server, check: await witness(server)}
}

/** Sends bytes on a fresh connection; resolves with what came back once the server closed it. */
async function exchange(server: BusServer, bytes: string, timeoutMs = 3000): Promise<string> {
  const client = await RawClient.open(portOf(server), bytes)
  return client.untilClosed(timeoutMs)
}

/** A publish from a given loopback address (the server counts limits per address). */
function publishFrom(server: BusServer, localAddress: string, body: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      `${server.url()}/msgbus/limited`,
      {method: 'POST', localAddress, agent: false, headers: {'Content-Type': 'text/plain'}},
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (chunk: Buffer) => chunks.push(chunk))
        res.on('end', () => resolve({status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks)}))
      },
    )
    req.on('error', reject)
    req.end(body)
  })
}

describe('hardening: bad input', function () {
  this.timeout(15000)
  afterEach(stopAll)

  const malformed: Array<[string, string, RegExp]> = [
    ['not HTTP at all', 'GARBAGE\r\n\r\n', /^bad request: invalid method/],
    ['an unknown HTTP version', 'GET /msgbus/foo HTTP/9.9\r\nHost: x\r\n\r\n', /^bad request: invalid HTTP version/],
    ['junk after the version', 'GET /msgbus/foo HTTP/1.1 junk\r\nHost: x\r\n\r\n', /^bad request: expected CRLF after version/],
    ['a control character in the target', 'GET /msgbus/\x01 HTTP/1.1\r\nHost: x\r\n\r\n', /^bad request: invalid char in url/],
    ['a header line without a colon', 'GET /msgbus/foo HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n', /^bad request: invalid header token/],
    ['a folded header (obs-fold) smuggling a From: line', 'POST /msgbus/foo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n From: mallory\r\nContent-Length: 1\r\n\r\nx', /^bad request: /],
    ['two Content-Lengths', 'POST /msgbus/foo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy', /^bad request: duplicate Content-Length/],
    [
      'Content-Length and Transfer-Encoding together (request smuggling)',
      'POST /msgbus/foo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n',
      /^bad request: Transfer-Encoding can't be present with Content-Length/,
    ],
    [
      'chunked twice',
      'POST /msgbus/foo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
      /^bad request: invalid `Transfer-Encoding` header value/,
    ],
    ['a broken chunk size', 'POST /msgbus/foo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n', /^bad request: invalid character in chunk size/],
  ]
  for (const [what, bytes, reason] of malformed) {
    it(`${what}: 400 with a one-line reason, the connection closed, nothing published`, async () => {
      const {server, check} = await startWithWitness()
      const foo = await Subscription.open(server, '/msgbus/foo')
      const [answer] = answers(await exchange(server, bytes))
      assertError(answer, 400, reason, what)
      assert.equal(answer.headers.connection, 'close')
      assert.equal(server.counters().published, 0)
      await check()
      await assertNothingArrived(server, foo, 'foo')
    })
  }

  const refusedFraming: Array<[string, string, number, RegExp]> = [
    [
      'a transfer coding besides chunked (gzip bytes would be published as they are)',
      'POST /msgbus/foo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
      501,
      /^transfer coding "gzip" is not supported \(only chunked\)/,
    ],
    ['two Host headers', 'POST /msgbus/foo HTTP/1.1\r\nHost: a\r\nHost: b\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello', 400, /^more than one Host header/],
    ['an HTTP/1.1 request without Host', 'POST /msgbus/foo HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello', 400, /^an HTTP\/1\.1 request needs a Host header/],
    ['an Expect other than 100-continue', 'POST /msgbus/foo HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello', 417, /^expectation "200-ok" is not supported \(only 100-continue\)/],
    ['CONNECT (this is no proxy)', 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n', 405, /^method CONNECT is not allowed: this is not a proxy/],
    ['HTTP/2.0 in an HTTP/1 request line', 'GET /msgbus/foo HTTP/2.0\r\nHost: x\r\n\r\n', 505, /^HTTP\/2\.0 is not supported here: msgbus speaks HTTP\/1\.0 and HTTP\/1\.1/],
  ]
  for (const [what, bytes, status, reason] of refusedFraming) {
    it(`${what}: ${status} with a one-line reason, the connection closed, nothing published or subscribed`, async () => {
      const {server, check} = await startWithWitness()
      const foo = await Subscription.open(server, '/msgbus/foo')
      const [answer, more] = answers(await exchange(server, bytes))
      assertError(answer, status, reason, what)
      assert.equal(answer.headers.connection, 'close')
      assert.equal(more, undefined, 'nothing after the refusal')
      assert.equal(server.counters().published, 0)
      assert.equal(server.bus.subscriberCount, 2, 'the witness and foo only')
      await check()
      await assertNothingArrived(server, foo, 'foo')
    })
  }

  it('the body-stall log line names the client, address and port @slow', async () => {
    const warnings: string[] = []
    const {server, check} = await startWithWitness({bodyTimeout: 1, logger: {level: 0, log() {}, warn: (event, detail) => warnings.push(`${event} ${detail}`)}})
    const client = await RawClient.open(portOf(server), 'POST /msgbus/foo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\nonly this')
    const port = client.socket.localPort
    await client.untilClosed(4000)
    assert.deepEqual(warnings, [`stall 127.0.0.1:${port}: no body byte for 1 s, dropped`])
    await check()
  })

  it('a request target over 8 KiB: 414; a head over 16 KiB: 431', async () => {
    const {server, check} = await startWithWitness()
    const [long] = answers(await exchange(server, `GET /msgbus/${'a'.repeat(9000)} HTTP/1.1\r\nHost: x\r\n\r\n`))
    assertError(long, 414, /^request target longer than 8192 bytes/)
    const [huge] = answers(await exchange(server, `GET /msgbus/${'a'.repeat(20000)} HTTP/1.1\r\nHost: x\r\n\r\n`))
    assertError(huge, 431)
    await check()
  })

  it('Content-Length shorter than the body: that many bytes are the message, the rest is a bad next request', async () => {
    const {server, check} = await startWithWitness()
    const foo = await Subscription.open(server, '/msgbus/foo')
    const bytes = await exchange(server, 'POST /msgbus/foo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nabcdef\r\n\r\n')
    const [published, refused] = answers(bytes)
    assert.equal(published.status, 204)
    assertError(refused, 400, /^bad request: /)
    assert.equal((await publish(server, 'foo', 'marker')).status, 204)
    assert.deepEqual((await foo.before('marker')).map((part) => part.body.toString()), ['abc'])
    await check()
  })

  it('Content-Length longer than the body: dropped after the body timeout, no answer, nothing published @slow', async () => {
    const {server, check} = await startWithWitness({bodyTimeout: 1})
    const client = await RawClient.open(portOf(server), 'POST /msgbus/foo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\nonly this')
    const started = Date.now()
    assert.equal(await client.untilClosed(4000), '')
    assert.ok(Date.now() - started >= 900, 'not before the timeout')
    assert.equal(server.counters().published, 0)
    await check()
  })

  it('a chunked publisher that stalls mid-body: dropped after the body timeout while bytes that keep coming are fine @slow', async () => {
    const {server, check} = await startWithWitness({bodyTimeout: 1})
    const staller = await RawClient.open(portOf(server), 'POST /msgbus/foo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n')
    // A slow but steady publisher: a chunk every 400 ms for 2 s is never idle for a whole second.
    const steady = await RawClient.open(portOf(server), 'POST /msgbus/foo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n')
    for (let i = 0; i < 5; i++) {
      await sleep(400)
      steady.socket.write('1\r\nx\r\n')
    }

    steady.socket.write('0\r\n\r\n')
    assert.equal((await steady.until((t) => t.includes('\r\n\r\n')), answers(steady.text())[0].status), 204)
    assert.equal(await staller.untilClosed(3000), '')
    assert.equal(server.counters().published, 1)
    await check()
  })

  it('slowloris: a head trickled a byte at a time is cut off with 408 after the header timeout @slow', async () => {
    const {server, check} = await startWithWitness({headerTimeout: 1})
    const client = await RawClient.open(portOf(server), 'GET /msgbus/foo HTTP/1.1\r\n')
    const drip = setInterval(() => client.socket.writable && client.socket.write('X'), 100)
    try {
      const started = Date.now()
      const [answer] = answers(await client.untilClosed(5000))
      assertError(answer, 408, /^request head not received within 1 s/)
      assert.ok(Date.now() - started < 3500, `cut off after ${Date.now() - started} ms`)
    } finally {
      clearInterval(drip)
    }

    await check()
  })

  it('a connection that never sends anything is closed after the header timeout @slow', async () => {
    const {server, check} = await startWithWitness({headerTimeout: 1})
    const [answer] = answers(await exchange(server, '', 5000))
    assertError(answer, 408)
    await check()
  })

  it('idle keep-alive connections close after the idle timeout; subscriptions, idle as long, stay @slow', async () => {
    const {server, check} = await startWithWitness({idleTimeout: 1, headerTimeout: 1})
    const quiet = await Subscription.open(server, '/msgbus/quiet')
    const client = await RawClient.open(portOf(server), 'POST /msgbus/foo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 1\r\n\r\nx')
    await client.until((t) => answers(t).length === 1)
    const started = Date.now()
    await client.untilClosed(4000)
    assert.ok(Date.now() - started >= 900)
    // The subscription has been idle longer than the connection just closed (it opened before it): had the
    // idle timeout applied to it, it would have been closed first. It still streams.
    assert.equal(quiet.client.closed, false, 'the subscription is still open')
    await publish(server, 'quiet', 'after a quiet while')
    assert.deepEqual((await quiet.waitParts(1)).map((part) => part.body.toString()), ['after a quiet while'])
    await check()
  })

  it('a form with 500 tiny parts is published whole; one with 501 or 5,000 is refused with 413 and nothing published', async () => {
    const {server, check} = await startWithWitness()
    const form = (count: number) => {
      let body = ''
      for (let i = 0; i < count; i++) body += `--B\r\nContent-Disposition: form-data; name="p${i}"\r\n\r\n${i}\r\n`
      return `${body}--B--\r\n`
    }

    const many = await publish(server, 'forms', form(500), 'multipart/form-data; boundary=B')
    assert.equal(many.status, 204)
    assert.equal(String(many.headers['msgbus-id']).split(', ').length, 500)
    for (const count of [501, 5000]) {
      const tooMany = await publish(server, 'forms', form(count), 'multipart/form-data; boundary=B')
      assertError(tooMany, 413, /^a form has at most 500 parts/)
    }

    assert.equal(server.counters().published, 500)
    await check()
  })

  it('a subscription pipelined behind other requests starts once their answers are out, and streams', async () => {
    const {server, check} = await startWithWitness()
    for (const before of ['GET /nope HTTP/1.1\r\nHost: x\r\n\r\n', 'POST /msgbus/y HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi']) {
      const client = await RawClient.open(portOf(server), `${before}GET /msgbus/piped HTTP/1.1\r\nHost: x\r\n\r\n`)
      await client.until((t) => t.includes('HTTP/1.1 200 OK'))
      assert.match(client.text(), /^HTTP\/1\.1 (404|204) /, 'the first answer comes first')
      const reply = await publish(server, 'piped', 'through')
      assert.equal(reply.status, 204)
      await client.until((t) => t.includes('\r\n\r\nthrough\r\n'))
      client.close()
    }

    await check()
  })

  it('bytes after a subscription began close it: garbage, a bad request behind an HTTP/1.0 one, a request behind one with a body', async () => {
    await bytesAfterASubscription({})
  })

  it('the same while the subscription waits for its password to be hashed (--acl)', async function () {
    this.timeout(30000)
    const dir = mkdtempSync(join(tmpdir(), 'msgbus-hardening-'))
    try {
      // An ACL where anonymous requests may subscribe: the subscription is checked, asynchronously, before it starts.
      writeFileSync(join(dir, 'acl'), `alice ${await makeScryptHash('pw', {ln: 4, r: 8, p: 1})} * *\n* - * *\n`)
      await bytesAfterASubscription({acl: join(dir, 'acl')}, `Authorization: Basic ${Buffer.from('alice:pw').toString('base64')}\r\n`)
    } finally {
      rmSync(dir, {recursive: true, force: true})
    }
  })

  async function bytesAfterASubscription(options: BusServerOptions, credentials = ''): Promise<void> {
    const {server, check} = await startWithWitness(options)
    for (const text of [
      'GET /msgbus/x HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE\r\n\r\n',
      'GET /msgbus/x HTTP/1.0\r\n\r\nGET /msgbus/%%%09 HTTP/1.1\r\n\r\n',
      // A body makes Node's parser call back into JavaScript between requests of one read (found by the fuzzer).
      'GET /msgbus/x HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nxGET /msgbus/y HTTP/1.1\r\nHost: x\r\n\r\n',
    ]) {
      const client = await RawClient.open(portOf(server), text.replace('\r\n', `\r\n${credentials}`))
      await client.untilClosed(3000)
    }

    await until(() => server.bus.subscriberCount === 1, 'only the witness left')
    await check()
  }

  it('a form cut off inside a file part: 400, and the server lives on', async () => {
    const {server, check} = await startWithWitness()
    const body = '--x\r\nContent-Disposition: form-data; name="a"; filename="a.bin"\r\nContent-Type: a/b\r\n\r\nhello'
    const bytes = await exchange(server, `POST /msgbus/f HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: multipart/form-data; boundary=x\r\nContent-Length: ${body.length}\r\n\r\n${body}`)
    assertError(answers(bytes)[0], 400, /^malformed form: /)
    assert.equal(server.counters().published, 0)
    await check()
  })

  it('CR/LF in a form part\'s type cannot add headers to subscribers\' streams', async () => {
    const {server, check} = await startWithWitness()
    const foo = await Subscription.open(server, '/msgbus/foo')
    const body =
      '--B\r\nContent-Disposition: form-data; name="a"; filename="a.html"\r\nContent-Type: text/html\r\n\tFrom: mallory\r\n\r\n<b>hi</b>\r\n' +
      '--B\r\nContent-Disposition: form-data; name="b"; filename="b.txt"\r\nContent-Type: text/plain\rFrom: mallory\r\n\r\nplain\r\n--B--\r\n'
    const reply = await publish(server, 'foo', body, 'multipart/form-data; boundary=B')
    if (reply.status === 204) {
      const parts = await foo.waitParts(String(reply.headers['msgbus-id']).split(', ').length)
      for (const part of parts) {
        assert.equal(part.headers.from, undefined, 'no From: header was injected')
        assert.match(part.headers['content-type'], /^[a-z]+\/[a-z0-9.+-]+/)
      }
    } else {
      assertError(reply, 400)
    }

    assert.ok(!foo.client.text().includes('From: mallory'))
    await check()
  })
})

describe('hardening: limits', function () {
  this.timeout(15000)
  afterEach(stopAll)

  it('--max-connections-per-ip: the next connection from that address gets 503 and is closed; others are unaffected', async () => {
    const {server, check} = await startWithWitness({maxConnectionsPerIp: 3})
    // The witness holds one; two more are allowed.
    const a = await RawClient.open(portOf(server))
    const b = await RawClient.open(portOf(server))
    const refused = await RawClient.open(portOf(server), 'GET /msgbus/foo HTTP/1.1\r\nHost: x\r\n\r\n')
    const [answer] = answers(await refused.untilClosed(4000))
    assertError(answer, 503, /^too many connections from 127\.0\.0\.1 \(the limit is 3\)/)
    assert.equal(answer.headers['retry-after'], '5')
    assert.equal(server.bus.subscriberCount, 1, 'the refused request was never handled')
    const other = await publishFrom(server, '127.0.0.2', 'from another address')
    assert.equal(other.status, 204)
    a.close()
    await until(() => server.counters().connections === 2, () => `the server to let a go (${server.counters().connections} connections)`)
    // A freed place can be taken again; the witness's publish uses it.
    b.close()
    await until(() => server.counters().connections === 1, () => `the server to let b go (${server.counters().connections} connections)`)
    await check()
  })

  it('--rate-limit: a burst of N publishes, then 429 with Retry-After; one more after 1/N s; other addresses unaffected', async () => {
    const {server} = await startWithWitness({rateLimit: 5})
    const replies = []
    for (let i = 0; i < 6; i++) replies.push(await publishFrom(server, '127.0.0.3', `m${i}`))
    assert.deepEqual(replies.map((reply) => reply.status), [204, 204, 204, 204, 204, 429])
    assertError(replies[5], 429, /^more than 5 publishes a second from 127\.0\.0\.3/)
    assert.equal(replies[5].headers['retry-after'], '1')
    assert.equal((await publishFrom(server, '127.0.0.4', 'elsewhere')).status, 204)
    // The bucket refills one publish every 1/5 s: past that, one more goes.
    await sleep(250)
    assert.equal((await publishFrom(server, '127.0.0.3', 'later')).status, 204)
    assert.equal(server.counters().published, 7)
  })

  it('--max-channels: a subscription to one more channel gets 503; more subscribers of a channel and every-channel ones are fine', async () => {
    const server = await startBus({maxChannels: 2})
    const a = await Subscription.open(server, '/msgbus/a')
    await Subscription.open(server, '/msgbus/b')
    await Subscription.open(server, '/msgbus/a')
    await Subscription.open(server, '/msgbus/')
    const [answer] = answers(await exchange(server, 'GET /msgbus/c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'))
    assertError(answer, 503, /^too many channels \(the limit is 2\)/)
    a.close()
    await until(() => server.bus.subscriberCount === 3, 'the server to let the first subscriber of a go')
    // Channel a still has a subscriber, so c is still one too many.
    const [still] = answers(await exchange(server, 'GET /msgbus/c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'))
    assert.equal(still.status, 503)
  })

  it('msgbus serve takes the limit and timeout flags @slow', async () => {
    const serve = await ServeProcess.start(['--port', '0', '--address', '127.0.0.1', '--rate-limit', '1', '--header-timeout', '1', '--max-channels', '1'])
    try {
      const url = `http://127.0.0.1:${serve.port()}/msgbus/foo`
      const statuses = []
      for (let i = 0; i < 2; i++) {
        const result = await run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '-H', 'Content-Type: text/plain', '-d', 'x', url])
        statuses.push(result.stdout)
      }

      assert.deepEqual(statuses, ['204', '429'])
      const silent = await RawClient.open(serve.port())
      const [answer] = answers(await silent.untilClosed(5000))
      assert.equal(answer.status, 408)
    } finally {
      await serve.stop()
    }
  })

  it('a bad limit flag is a usage error naming the flag @slow', async () => {
    const result = await msgbus(['serve', '--rate-limit', '-3'])
    assert.equal(result.code, 2)
    assert.match(result.stderr, /rate-limit/)
  })
})
